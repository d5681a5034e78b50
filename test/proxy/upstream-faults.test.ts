// Upstream faults and callers that go away: 502/504 JSON while there is still time for one, an
// aborted response once headers are out, the upstream request aborted when its caller leaves,
// and nothing left behind (sockets, memory) after many failures.

import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { closeServer } from '../../src/demo/token-server.js';
import { audit, call } from '../helpers/audit.js';
import { freePort, issue as issueToken, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';
import { eventually, route, startSidecar, type TestSidecar } from '../helpers/sidecar.js';

/** How the upstream saw one request end: whole, or cut before its end. */
interface Seen {
  readonly url: string;
  requestEnded: boolean;
  responseFinished: boolean;
  closed: boolean;
}

/** An upstream whose behaviour each path chooses; it records how every request ended. */
async function startFaultyUpstream(): Promise<{ url: string; seen: Seen[]; openSockets(): number; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };
  const server: Server = createServer((req: IncomingMessage, res) => {
    const record: Seen = { url: req.url ?? '', requestEnded: false, responseFinished: false, closed: false };
    seen.push(record);
    req.on('end', () => (record.requestEnded = true));
    res.on('finish', () => (record.responseFinished = true));
    res.on('close', () => (record.closed = true));
    const path = (req.url ?? '').split('?')[0];
    if (path === '/upload') return void req.resume(); // reads forever, answers never
    req.resume();
    if (path === '/reset-before-headers') return void req.socket.destroy();
    if (path === '/reset-mid-body') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '100000' });
      res.write(Buffer.alloc(1000, 'a'));
      return later(20, () => req.socket.destroy());
    }
    if (path === '/stall-body') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '100000' });
      return void res.write(Buffer.alloc(1000, 'a'));
    }
    if (path === '/slow') return; // never answers
    if (path === '/download') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 'd');
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      return pump();
    }
    res.end('ok');
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    openSockets: () => sockets.size,
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      await closeServer(server);
    },
  };
}

/** Sends a request and destroys it after `whenToLeave` resolves; never throws. */
/**
 * A caller that leaves: after `readBytes` of the response, after `afterMs`, or once `leaveWhen()`
 * holds (polled; e.g. once the upstream has the request, which on a loaded machine may take longer
 * than any fixed delay when the sidecar first fetches a token).
 */
function leaveEarly(url: string, options: { method?: string; headers?: Record<string, string>; upload?: boolean; readBytes?: number; afterMs?: number; leaveWhen?: () => boolean }): Promise<{ received: number }> {
  return new Promise((resolve) => {
    let received = 0;
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      res.on('data', (d: Buffer) => {
        received += d.length;
        if (options.readBytes !== undefined && received >= options.readBytes) {
          req.destroy();
          resolve({ received });
        }
      });
      res.on('error', () => {});
    });
    req.on('error', () => {});
    if (options.upload) req.write(Buffer.alloc(16 * 1024, 'u'));
    else req.end();
    if (options.afterMs !== undefined) {
      setTimeout(() => {
        req.destroy();
        resolve({ received });
      }, options.afterMs);
    }
    const { leaveWhen } = options;
    if (leaveWhen !== undefined) {
      const poll = setInterval(() => {
        if (!leaveWhen()) return;
        clearInterval(poll);
        req.destroy();
        resolve({ received });
      }, 5).unref();
    }
  });
}

describe('upstream faults and callers that leave', () => {
  let tokens: ScriptedTokenServer;
  let upstream: Awaited<ReturnType<typeof startFaultyUpstream>>;
  let sidecar: TestSidecar;
  before(async () => {
    tokens = await startScriptedTokenServer();
    upstream = await startFaultyUpstream();
    const unreachable = `http://127.0.0.1:${await freePort()}`;
    sidecar = await startSidecar({
      routes: [
        route(tokens.url, upstream.url, { responseTimeoutMs: 300 }),
        { ...route(tokens.url, unreachable, { prefix: '/down', connectTimeoutMs: 500 }), name: 'down' },
      ],
    });
  });
  after(async () => {
    await sidecar.close();
    await Promise.all([tokens.close(), upstream.close()]);
  });

  const healthy = async () => {
    assert.equal((await call(`${sidecar.proxyUrl}/ok`)).status, 200, 'the sidecar still forwards');
    assert.equal((await call(`${sidecar.adminUrl}/livez`)).status, 200);
  };

  test('reset before the headers: 502 upstream_reset JSON', async () => {
    const response = await call(`${sidecar.proxyUrl}/reset-before-headers`);
    assert.equal(response.status, 502);
    assert.equal(response.json().error, 'upstream_reset');
    assert.equal(response.json().route, 'api');
    await healthy();
  });

  test('unreachable: 502 upstream_unreachable JSON, fast', async () => {
    const started = Date.now();
    const response = await call(`${sidecar.proxyUrl}/down/x`);
    assert.equal(response.status, 502);
    assert.equal(response.json().error, 'upstream_unreachable');
    assert.ok(Date.now() - started < 2000);
  });

  test('no answer within responseTimeoutMs: 504 upstream_timeout JSON', async () => {
    const started = Date.now();
    const response = await call(`${sidecar.proxyUrl}/slow`);
    assert.equal(response.status, 504);
    assert.equal(response.json().error, 'upstream_timeout');
    assert.ok(Date.now() - started < 3000);
  });

  test('reset in the middle of the body: headers are out, so the caller sees the response aborted; it is counted and logged; the sidecar stays healthy', async () => {
    const resets = async () => {
      const text = await sidecar.sidecar.metrics.registry.metrics();
      return Number(/bearer_sidecar_upstream_errors_total\{route="api",kind="reset"\} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const before = await resets();
    const response = await fetch(`${sidecar.proxyUrl}/reset-mid-body`);
    assert.equal(response.status, 200);
    await assert.rejects(response.arrayBuffer(), 'the body does not end normally');
    await eventually(async () => (await resets()) === before + 1, 3000);
    assert.ok(sidecar.logs.some((line) => line.includes('upstream failed mid-response')), 'a warn line says why the response was cut');
    await healthy();
  });

  test('the body stalls longer than responseTimeoutMs: the caller sees the response aborted in bounded time', async () => {
    const started = Date.now();
    const response = await fetch(`${sidecar.proxyUrl}/stall-body`);
    await assert.rejects(response.arrayBuffer());
    assert.ok(Date.now() - started < 3000, `cut after ${Date.now() - started} ms`);
    await healthy();
  });

  const lastSeen = (url: string) => upstream.seen.filter((s) => s.url === url).at(-1);

  test('the caller leaves mid-upload: the upstream request is aborted before its end', async () => {
    await leaveEarly(`${sidecar.proxyUrl}/upload`, { method: 'POST', headers: { 'transfer-encoding': 'chunked' }, upload: true, afterMs: 200 });
    await eventually(() => lastSeen('/upload')?.closed === true, 3000);
    assert.equal(lastSeen('/upload')?.requestEnded, false, 'the upload was cut, not completed');
  });

  test('the caller leaves mid-upload of a small body (one kept for a replay): nothing reaches the upstream', async () => {
    const before = upstream.seen.length;
    await leaveEarly(`${sidecar.proxyUrl}/upload?small`, { method: 'POST', headers: { 'content-length': '60000' }, upload: true, afterMs: 200 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(upstream.seen.length, before);
    await healthy();
  });

  test('the caller leaves while the first token is awaited: nothing reaches the upstream, and shutdown is not held up', async () => {
    let release: () => void = () => {};
    const slowTokens = await startScriptedTokenServer(() => new Promise((resolve) => (release = () => resolve({ status: 200, body: issueToken(3600) }))));
    const cold = await startSidecar({ routes: [route(slowTokens.url, upstream.url, { responseTimeoutMs: 30_000 })] });
    try {
      const before = upstream.seen.length;
      await leaveEarly(`${cold.proxyUrl}/download?cold`, { afterMs: 100 });
      await eventually(() => slowTokens.requests.length === 1, 3000);
      release();
      await eventually(async () => (await call(`${cold.adminUrl}/readyz`)).status === 200, 3000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(upstream.seen.length, before, 'the request of a caller who left was not sent');
    } finally {
      const started = Date.now();
      await cold.close();
      await slowTokens.close();
      assert.ok(Date.now() - started < 1500, `closed in ${Date.now() - started} ms`);
    }
  });

  test('the caller leaves mid-download: the upstream response is aborted before its end', async () => {
    const { received } = await leaveEarly(`${sidecar.proxyUrl}/download`, { readBytes: 200_000 });
    assert.ok(received >= 200_000);
    await eventually(() => lastSeen('/download')?.closed === true, 3000);
    assert.equal(lastSeen('/download')?.responseFinished, false);
  });

  test('the caller leaves while the upstream is thinking: the upstream request is aborted at once, not at responseTimeoutMs', async () => {
    const slowSidecar = await startSidecar({ routes: [route(tokens.url, upstream.url, { responseTimeoutMs: 30_000 })] });
    try {
      // Leave once the upstream has the request (the sidecar fetches its first token before sending it).
      await Promise.race([
        leaveEarly(`${slowSidecar.proxyUrl}/slow?leave`, { leaveWhen: () => lastSeen('/slow?leave') !== undefined }),
        new Promise((_, reject) => setTimeout(() => reject(new Error('the upstream never received the request')), 10_000).unref()),
      ]);
      const left = Date.now();
      await eventually(() => lastSeen('/slow?leave')?.closed === true, 3000);
      assert.ok(Date.now() - left < 3000, `the upstream request was aborted ${Date.now() - left} ms after the caller left`);
    } finally {
      await slowSidecar.close();
    }
  });

  test('after 500 failures of every kind and 100 callers that left: upstream sockets back to idle, requests collected, heap flat', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const collected = { count: 0 };
    const registry = new FinalizationRegistry<null>(() => (collected.count += 1));
    let registered = 0;
    const track = (req: IncomingMessage) => {
      registry.register(req, null);
      registered += 1;
    };
    const settle = async () => {
      for (let i = 0; i < 5; i++) {
        gc();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    // Timeouts hold a connection for responseTimeoutMs (undici's timers are coarse): fewer of them.
    const kinds = ['/reset-before-headers', '/down/x', '/reset-mid-body', '/slow', '/reset-before-headers', '/down/x', '/reset-mid-body', '/stall-body'];
    const burst = async (n: number) => {
      for (let i = 0; i < n; i += 250) {
        await Promise.all(
          Array.from({ length: Math.min(250, n - i) }, (_, j) =>
            fetch(`${sidecar.proxyUrl}${kinds[(i + j) % kinds.length]}`)
              .then((r) => r.arrayBuffer())
              .catch(() => undefined),
          ),
        );
      }
      await Promise.all(Array.from({ length: 100 }, (_, j) => leaveEarly(`${sidecar.proxyUrl}${j % 2 ? '/slow' : '/download'}`, { afterMs: 50 })));
    };

    await burst(100); // warm up: JIT, pools, lazy modules
    await settle();
    const heapBefore = process.memoryUsage().heapUsed;
    sidecar.sidecar.proxy.server.on('request', track);
    await burst(500);
    sidecar.sidecar.proxy.server.off('request', track);
    await eventually(() => upstream.openSockets() <= 2, 5000).catch(() => assert.fail(`${upstream.openSockets()} upstream sockets still open`));
    await settle();
    await eventually(
      async () => {
        await settle();
        return collected.count >= registered * 0.95;
      },
      10_000,
    ).catch(() => assert.fail(`only ${collected.count} of ${registered} requests were garbage-collected`));
    const growthBytes = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(registered >= 500, `${registered} requests tracked`);
    assert.ok(growthBytes < 4 * 1024 * 1024, `heap grew ${Math.round(growthBytes / 1024)} KiB`);
    await healthy();
  });
});

test('no client secret or issued token in any log line, error body or /readyz of the faults above', () => audit.assertNothingLeaked());
