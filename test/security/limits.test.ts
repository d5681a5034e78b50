// Limits: request head size (431), body size (413, checked up front or counted while streaming),
// and requests in flight (503 overloaded, with slots always given back).

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { closeServer } from '../../src/demo/token-server.js';
import { rawRequest } from '../helpers/security.js';
import { startScriptedTokenServer } from '../helpers/servers.js';
import { eventually, startSidecar, type TestSidecar } from '../helpers/sidecar.js';

/** An upstream that records each request's body size once complete, or "aborted", and can hold its answers. */
async function startCountingUpstream() {
  const bodies: (number | 'aborted')[] = [];
  const held: ServerResponse[] = [];
  let hold = false;
  const server = createServer((req: IncomingMessage, res) => {
    let size = 0;
    req.on('data', (chunk: Buffer) => (size += chunk.length));
    req.on('end', () => {
      bodies.push(size);
      if (hold) held.push(res);
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ bytes: size }));
    });
    req.on('aborted', () => bodies.push('aborted'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    held,
    hold(on: boolean) {
      hold = on;
    },
    release() {
      for (const res of held.splice(0)) res.writeHead(200).end('{}');
    },
    close: () => {
      for (const res of held.splice(0)) res.destroy();
      return closeServer(server);
    },
  };
}

async function withSidecar(config: { listen?: Record<string, unknown>; route?: Record<string, unknown> }, run: (sidecar: TestSidecar, upstream: Awaited<ReturnType<typeof startCountingUpstream>>) => Promise<void>): Promise<void> {
  const upstream = await startCountingUpstream();
  const tokens = await startScriptedTokenServer();
  const sidecar = await startSidecar({
    listen: { port: 0, ...config.listen },
    routes: [{ name: 'r', upstream: upstream.url, auth: { tokenUrl: tokens.url, clientId: 'i', clientSecret: 's' }, ...config.route }],
  });
  try {
    await run(sidecar, upstream);
  } finally {
    await sidecar.close();
    await Promise.all([upstream.close(), tokens.close()]);
  }
}

const portOf = (sidecar: TestSidecar) => Number(new URL(sidecar.proxyUrl).port);

describe('listen.maxHeaderBytes', () => {
  test('a request head over the limit gets 431 JSON and a closed connection; the next request works', async () => {
    await withSidecar({ listen: { maxHeaderBytes: 2048 } }, async (sidecar, upstream) => {
      const response = await rawRequest(portOf(sidecar), `GET /x HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(4000)}\r\n\r\n`);
      assert.equal(response.status, 431);
      assert.deepEqual(JSON.parse(response.body), { error: 'headers_too_large', message: 'the request line and headers are larger than 2048 bytes' });
      assert.match(response.head, /connection: close/i);
      assert.equal(upstream.bodies.length, 0);
      assert.equal((await fetch(`${sidecar.proxyUrl}/x`, { headers: { 'x-fits': 'a'.repeat(1000) } })).status, 200);
    });
  });

  test('the default is 16 KiB', async () => {
    await withSidecar({}, async (sidecar) => {
      assert.equal((await rawRequest(portOf(sidecar), `GET /x HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(17_000)}\r\n\r\n`)).status, 431);
      assert.equal((await fetch(`${sidecar.proxyUrl}/x`, { headers: { 'x-fits': 'a'.repeat(12_000) } })).status, 200);
    });
  });
});

describe('routes[].maxBodyBytes', () => {
  test('Content-Length over the limit: 413 before anything is sent upstream', async () => {
    await withSidecar({ route: { maxBodyBytes: 1000 } }, async (sidecar, upstream) => {
      const response = await fetch(`${sidecar.proxyUrl}/upload`, { method: 'POST', body: 'x'.repeat(1001) });
      assert.equal(response.status, 413);
      assert.deepEqual(await response.json().then((b) => ({ ...(b as object), requestId: undefined })), { error: 'payload_too_large', message: 'the request body is larger than 1000 bytes', route: 'r', requestId: undefined });
      assert.equal(response.headers.get('connection'), 'close');
      assert.deepEqual(upstream.bodies, []);
      const fits = await fetch(`${sidecar.proxyUrl}/upload`, { method: 'POST', body: 'x'.repeat(1000) });
      assert.equal(fits.status, 200);
      assert.deepEqual(upstream.bodies, [1000]);
    });
  });

  test('a chunked body is counted while it streams: cut at the limit with 413, and the upstream never gets it whole', async () => {
    await withSidecar({ route: { maxBodyBytes: 100_000 } }, async (sidecar, upstream) => {
      const chunk = 'y'.repeat(30_000);
      const chunked = (count: number) => `POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${`${chunk.length.toString(16)}\r\n${chunk}\r\n`.repeat(count)}0\r\n\r\n`;
      const over = await rawRequest(portOf(sidecar), chunked(4), { idleMs: 500 });
      assert.equal(over.status, 413, over.text.slice(0, 300));
      assert.equal((JSON.parse(over.body) as { error: string }).error, 'payload_too_large');
      const under = await rawRequest(portOf(sidecar), chunked(3), { idleMs: 500 });
      assert.equal(under.status, 200);
      assert.ok(upstream.bodies.includes(90_000));
      assert.ok(upstream.bodies.every((size) => size === 'aborted' || size <= 100_000), `no complete oversized body upstream: ${upstream.bodies.join(',')}`);
    });
  });

  test('a chunked body on a GET (which fastify does not parse) is counted too: 413 at the limit', async () => {
    await withSidecar({ route: { maxBodyBytes: 100_000 } }, async (sidecar, upstream) => {
      const chunk = 'g'.repeat(30_000);
      const request = `GET /search HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${`${chunk.length.toString(16)}\r\n${chunk}\r\n`.repeat(4)}0\r\n\r\n`;
      const over = await rawRequest(portOf(sidecar), request, { idleMs: 500 });
      assert.equal(over.status, 413, over.text.slice(0, 300));
      assert.ok(upstream.bodies.every((size) => size === 'aborted' || size <= 100_000), `no complete oversized body upstream: ${upstream.bodies.join(',')}`);
    });
  });

  test('no limit by default, and Fastify bodyLimit does not apply: 3 MB with and without Content-Length', async () => {
    await withSidecar({}, async (sidecar, upstream) => {
      const big = Buffer.alloc(3 * 1024 * 1024, 7);
      assert.equal((await fetch(`${sidecar.proxyUrl}/big`, { method: 'POST', body: big })).status, 200);
      const stream = new ReadableStream({
        start(controller) {
          for (let i = 0; i < 3; i++) controller.enqueue(big.subarray(i * 1024 * 1024, (i + 1) * 1024 * 1024));
          controller.close();
        },
      });
      const chunked = await fetch(`${sidecar.proxyUrl}/big`, { method: 'POST', body: stream, duplex: 'half' } as RequestInit);
      assert.equal(chunked.status, 200);
      assert.deepEqual(upstream.bodies, [big.length, big.length]);
    });
  });
});

describe('listen.maxInFlight', () => {
  test('over the limit: 503 overloaded with Retry-After; slots come back when responses end', async () => {
    await withSidecar({ listen: { maxInFlight: 2 } }, async (sidecar, upstream) => {
      upstream.hold(true);
      const first = [fetch(`${sidecar.proxyUrl}/1`), fetch(`${sidecar.proxyUrl}/2`)];
      await eventually(() => upstream.held.length === 2);
      assert.equal(sidecar.sidecar.proxy.inFlightRequests, 2);
      const third = await fetch(`${sidecar.proxyUrl}/3`);
      assert.equal(third.status, 503);
      assert.equal(third.headers.get('retry-after'), '1');
      assert.equal(((await third.json()) as { error: string }).error, 'overloaded');
      upstream.hold(false);
      upstream.release();
      assert.deepEqual((await Promise.all(first)).map((r) => r.status), [200, 200]);
      await eventually(() => sidecar.sidecar.proxy.inFlightRequests === 0);
      assert.equal((await fetch(`${sidecar.proxyUrl}/4`)).status, 200);
    });
  });

  test('callers that disconnect mid-request give their slots back; refused requests never take one', async () => {
    await withSidecar({ listen: { maxInFlight: 50 } }, async (sidecar, upstream) => {
      upstream.hold(true);
      const sockets = Array.from({ length: 30 }, (_, i) => {
        const socket = connect(portOf(sidecar), '127.0.0.1');
        socket.on('error', () => {});
        socket.write(`GET /slow/${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
        return socket;
      });
      await eventually(() => upstream.held.length === 30);
      assert.equal(sidecar.sidecar.proxy.inFlightRequests, 30);
      for (const socket of sockets) socket.destroy();
      await eventually(() => sidecar.sidecar.proxy.inFlightRequests === 0);
      // Uploads cut halfway, and refused targets.
      const uploads = Array.from({ length: 10 }, () => {
        const socket = connect(portOf(sidecar), '127.0.0.1');
        socket.on('error', () => {});
        socket.write('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial');
        return socket;
      });
      await eventually(() => sidecar.sidecar.proxy.inFlightRequests === 10);
      for (const socket of uploads) socket.destroy();
      for (let i = 0; i < 5; i++) assert.equal((await rawRequest(portOf(sidecar), 'GET /%2e%2e/x HTTP/1.1\r\nHost: x\r\n\r\n')).status, 400);
      await eventually(() => sidecar.sidecar.proxy.inFlightRequests === 0);
      upstream.hold(false);
      upstream.release();
      assert.equal((await fetch(`${sidecar.proxyUrl}/after`)).status, 200);
    });
  });
});
