// WebSocket routes against real servers: the demo echo upstream (ws) checks the token on every
// upgrade and echoes messages; a scripted token endpoint counts token requests.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket, { WebSocketServer } from 'ws';
import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { verifyJwt } from '../../src/demo/jwt-hs256.js';
import { closeServer, startTokenServer, type TokenServer } from '../../src/demo/token-server.js';
import { ManualClock } from '../helpers/clock.js';
import { run } from '../helpers/process.js';
import { freePort, issue, signingKey, startScriptedTokenServer, startSilentServer } from '../helpers/servers.js';
import { eventually, metricValue, route, startSidecar, type TestSidecar } from '../helpers/sidecar.js';
import { closeOf, echo, openSocket, refusalOf } from '../helpers/websocket.js';

const wsUrl = (sidecar: TestSidecar, path: string) => `${sidecar.proxyUrl.replace(/^http/, 'ws')}${path}`;

describe('WebSocket routes next to a plain route', () => {
  let tokens: TokenServer;
  let upstream: EchoUpstream;
  let sidecar: TestSidecar;
  before(async () => {
    tokens = await startTokenServer({ clients: [{ id: 'ws-client', secret: 'ws-secret' }], signingKey, expiresInSeconds: 3600 });
    upstream = await startEchoUpstream({ signingKey });
    const auth = { tokenUrl: tokens.url, clientId: 'ws-client', clientSecret: 'ws-secret' };
    sidecar = await startSidecar({
      routes: [
        { name: 'stream', prefix: '/stream', upstream: `${upstream.url}/v2`, websocket: true, auth },
        { name: 'api', prefix: '/', upstream: upstream.url, auth },
      ],
    });
  });
  after(async () => {
    await sidecar.close();
    await Promise.all([tokens.close(), upstream.close()]);
  });

  test("the upgrade reaches the upstream with the route's token instead of the caller's Authorization; text and binary frames echo", async () => {
    const socket = await openSocket(wsUrl(sidecar, '/stream/chat?room=a+b&x=%2F'), [], { headers: { authorization: 'Bearer caller-token', 'x-custom': 'kept', 'x-request-id': 'ws-req-1' } });
    try {
      const upgrade = upstream.received.at(-1);
      assert.equal(upgrade?.url, '/v2/chat?room=a+b&x=%2F', 'prefix stripped, base path kept, query string as it came');
      assert.match(upgrade?.headers.authorization ?? '', /^Bearer ey/);
      assert.ok(verifyJwt((upgrade?.headers.authorization ?? '').slice(7), signingKey), 'the demo token, not the caller one');
      assert.equal(upgrade?.headers['x-custom'], 'kept');
      assert.equal(upgrade?.headers['x-request-id'], 'ws-req-1');
      assert.equal(upgrade?.headers.host, new URL(upstream.url).host);

      const text = await echo(socket, 'hello through the sidecar');
      assert.deepEqual([text.data.toString(), text.isBinary], ['hello through the sidecar', false]);
      const bytes = Buffer.from([0, 1, 2, 254, 255]);
      const binary = await echo(socket, bytes);
      assert.deepEqual([binary.data, binary.isBinary], [bytes, true]);
    } finally {
      socket.close();
    }
  });

  test('frames stream both ways: a 4 MiB message and a burst of 300 small ones arrive intact and in order', async () => {
    const socket = await openSocket(wsUrl(sidecar, '/stream/bulk'));
    try {
      const big = Buffer.alloc(4 * 1024 * 1024, 7);
      big[12345] = 1;
      assert.ok((await echo(socket, big)).data.equals(big));
      const received: string[] = [];
      const all = new Promise<void>((resolve) =>
        socket.on('message', (data) => {
          received.push(data.toString());
          if (received.length === 300) resolve();
        }),
      );
      for (let i = 0; i < 300; i++) socket.send(`message ${i}`);
      await all;
      assert.deepEqual(received, Array.from({ length: 300 }, (_, i) => `message ${i}`));
    } finally {
      socket.close();
    }
  });

  test('the subprotocol is the one the upstream chose from those the caller offered', async () => {
    const socket = await openSocket(wsUrl(sidecar, '/stream/proto'), ['chat.v2', 'chat.v1']);
    try {
      assert.equal(socket.protocol, 'chat.v2');
      assert.equal(upstream.received.at(-1)?.headers['sec-websocket-protocol'], 'chat.v2,chat.v1');
    } finally {
      socket.close();
    }
  });

  test('a close by the caller reaches the upstream, and the code comes back', async () => {
    const socket = await openSocket(wsUrl(sidecar, '/stream/bye'));
    const closed = closeOf(socket);
    socket.close(4000, 'done here');
    assert.equal((await closed).code, 4000);
  });

  test('one log line per WebSocket, when it closes: route, path, status 101 and its lifetime; no token in any line', async () => {
    const socket = await openSocket(wsUrl(sidecar, '/stream/logged?q=secret-query'), [], { headers: { authorization: 'Bearer caller-token-xyz' } });
    await sleep(50);
    const closed = closeOf(socket);
    socket.close();
    await closed;
    const lineOf = () => sidecar.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'request' && l.path === '/stream/logged');
    await eventually(() => lineOf() !== undefined);
    const line = lineOf() as Record<string, unknown>;
    assert.equal(line.route, 'stream');
    assert.equal(line.status, 101);
    assert.equal(line.aborted, undefined);
    assert.ok((line.durationMs as number) >= 40);
    const all = sidecar.logs.join('\n');
    assert.doesNotMatch(all, /caller-token-xyz|secret-query/);
    assert.doesNotMatch(all, /ey[A-Za-z0-9_-]{10,}\.ey/);
  });

  test('prefix routing: an upgrade to the route without websocket gets 400 JSON; plain HTTP works on both routes', async () => {
    const refused = await refusalOf(wsUrl(sidecar, '/other/chat'));
    assert.equal(refused.status, 400);
    const body = JSON.parse(refused.body) as { error: string; message: string };
    assert.equal(body.error, 'bad_request');
    assert.match(body.message, /route "api" does not carry WebSocket upgrades/);

    const plain = await fetch(`${sidecar.proxyUrl}/stream/hello`);
    assert.equal(plain.status, 200);
    assert.equal(((await plain.json()) as { path: string }).path, '/v2/hello');
    assert.equal((await fetch(`${sidecar.proxyUrl}/other`)).status, 200);
  });

  test('other upgrades: h2c without a body is served as a plain request; one with a body gets 400 rather than losing it', async () => {
    const send = (headers: Record<string, string>, body?: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest(`${sidecar.proxyUrl}/h2c`, { method: body === undefined ? 'GET' : 'POST', headers: { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAARAAAAAAAIAAAAA', ...headers } }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        });
        req.on('error', reject);
        req.end(body);
      });
    const plain = await send({});
    assert.equal(plain.status, 200);
    assert.equal((JSON.parse(plain.body) as { path: string }).path, '/h2c');
    const withBody = await send({ 'content-type': 'text/plain' }, 'abc');
    assert.equal(withBody.status, 400);
    assert.match((JSON.parse(withBody.body) as { message: string }).message, /cannot carry a body/);
  });

  test('an upgrade whose path climbs out of the base path is refused with 400', async () => {
    const refused = await refusalOf(wsUrl(sidecar, '/stream/%2e%2e/secret'));
    assert.equal(refused.status, 400);
    assert.equal(upstream.received.at(-1)?.url.includes('secret'), false);
  });
});

describe('WebSocket upgrades that cannot be carried', () => {
  test('a sidecar without any websocket route answers an upgrade with 400 JSON too (Node serves it as a plain request)', async () => {
    const tokens = await startScriptedTokenServer();
    const upstream = await startEchoUpstream({ signingKey });
    const sidecar = await startSidecar({ routes: [route(tokens.url, upstream.url)] }, { logLevel: 'silent' });
    try {
      const refused = await refusalOf(wsUrl(sidecar, '/x'));
      assert.equal(refused.status, 400);
      assert.match((JSON.parse(refused.body) as { message: string }).message, /does not carry WebSocket upgrades/);
      assert.equal(upstream.received.length, 0);
    } finally {
      await sidecar.close();
      await Promise.all([tokens.close(), upstream.close()]);
    }
  });

  test('no token: the upgrade is refused with 503, Retry-After and the JSON error body, and nothing reaches the upstream', async () => {
    const tokens = await startScriptedTokenServer(() => ({ status: 401, body: { error: 'invalid_client' } }));
    const upstream = await startEchoUpstream({ signingKey });
    const sidecar = await startSidecar({ routes: [route(tokens.url, upstream.url, { websocket: true })] }, { logLevel: 'silent' });
    try {
      const refused = await refusalOf(wsUrl(sidecar, '/live'));
      assert.equal(refused.status, 503);
      assert.equal(refused.headers['content-type'], 'application/json; charset=utf-8');
      assert.match(String(refused.headers['retry-after']), /^\d+$/);
      const body = JSON.parse(refused.body) as Record<string, string | undefined>;
      assert.equal(body.error, 'token_unavailable');
      assert.equal(body.route, 'api');
      assert.match(body.message ?? '', /invalid_client/);
      assert.ok(body.requestId);
      assert.equal(upstream.received.length, 0);
    } finally {
      await sidecar.close();
      await Promise.all([tokens.close(), upstream.close()]);
    }
  });

  test("the upstream's refusal (401 with its body) reaches the caller unchanged; unreachable gives 502, silent 504", async () => {
    // Tokens signed with another key: the echo upstream refuses them.
    const tokens = await startTokenServer({ clients: [{ id: 'test-client', secret: 'test-secret' }], signingKey: 'another-key' });
    const upstream = await startEchoUpstream({ signingKey });
    const silent = await startSilentServer();
    const deadPort = await freePort();
    const timeouts = { connectTimeoutMs: 300, responseTimeoutMs: 300 };
    const sidecar = await startSidecar(
      {
        routes: [
          route(tokens.url, upstream.url, { name: 'refused', prefix: '/refused', websocket: true }),
          route(tokens.url, `http://127.0.0.1:${deadPort}`, { name: 'dead', prefix: '/dead', websocket: true }),
          route(tokens.url, silent.url, { name: 'silent', prefix: '/silent', websocket: true, ...timeouts }),
        ],
      },
      { logLevel: 'silent' },
    );
    try {
      const refused = await refusalOf(wsUrl(sidecar, '/refused/x'));
      assert.equal(refused.status, 401);
      assert.deepEqual(JSON.parse(refused.body), { error: 'invalid_token', message: 'bearer token rejected' });

      const dead = await refusalOf(wsUrl(sidecar, '/dead/x'));
      assert.equal(dead.status, 502);
      assert.equal((JSON.parse(dead.body) as { error: string }).error, 'upstream_unreachable');

      const started = Date.now();
      const slow = await refusalOf(wsUrl(sidecar, '/silent/x'));
      assert.equal(slow.status, 504);
      assert.equal((JSON.parse(slow.body) as { error: string }).error, 'upstream_timeout');
      assert.ok(Date.now() - started < 5_000);
    } finally {
      await sidecar.close();
      await Promise.all([tokens.close(), upstream.close(), silent.close()]);
    }
  });
});

/** bearer_sidecar_upstream_401_total{outcome="replayed"} of the sidecar. */
const replayed = (sidecar: TestSidecar) => metricValue(sidecar, 'bearer_sidecar_upstream_401_total', { outcome: 'replayed' });

describe('WebSockets and the token lifecycle', () => {
  test('a 401 to the upgrade (revoked token) is tried once more with a new token; a second 401 reaches the caller', async () => {
    const revoked = new Set<string>();
    const tokens = await startScriptedTokenServer();
    const upstream = await startEchoUpstream({ signingKey, isRevoked: (token) => revoked.has(token) });
    const sidecar = await startSidecar({ routes: [route(tokens.url, upstream.url, { websocket: true }, { refreshOn401CooldownSeconds: 0 })] }, { logLevel: 'warn' });
    try {
      const first = await openSocket(wsUrl(sidecar, '/a'));
      first.close();
      revoked.add((upstream.received.at(-1)?.headers.authorization ?? '').slice(7));
      const socket = await openSocket(wsUrl(sidecar, '/b'));
      assert.equal((await echo(socket, 'with a new token')).data.toString(), 'with a new token');
      socket.close();
      assert.equal(tokens.requests.length, 2);
      assert.equal(await replayed(sidecar), 1, 'counted in bearer_sidecar_upstream_401_total');

      // Every token refused: one retry, then the upstream's 401 for the caller.
      const before = upstream.received.length;
      const everything = await startEchoUpstream({ signingKey, isRevoked: () => true });
      const refusing = await startSidecar({ routes: [route(tokens.url, everything.url, { websocket: true }, { refreshOn401CooldownSeconds: 0 })] }, { logLevel: 'silent' });
      try {
        const refused = await refusalOf(wsUrl(refusing, '/c'));
        assert.equal(refused.status, 401);
        assert.equal(everything.received.length, 2, 'the first try and one retry');
        assert.equal(await replayed(refusing), 1, "the retry's own 401 is not counted again");
        assert.equal(upstream.received.length, before);
      } finally {
        await refusing.close();
        await everything.close();
      }
    } finally {
      await sidecar.close();
      await Promise.all([tokens.close(), upstream.close()]);
    }
  });

  test('50 concurrent sockets at a cold start cause one token request, and all of them echo', async () => {
    const tokens = await startScriptedTokenServer(async () => {
      await sleep(300); // the sockets all arrive while the first token is on its way
      return { status: 200, body: issue(3600) };
    });
    const upstream = await startEchoUpstream({ signingKey });
    const sidecar = await startSidecar({ routes: [route(tokens.url, upstream.url, { websocket: true })] }, { logLevel: 'warn' });
    const sockets: WebSocket[] = [];
    try {
      const opened = await Promise.all(Array.from({ length: 50 }, (_, i) => openSocket(wsUrl(sidecar, `/s/${i}`))));
      sockets.push(...opened);
      const echoes = await Promise.all(opened.map((socket, i) => echo(socket, `socket ${i}`)));
      assert.deepEqual(
        echoes.map((e) => e.data.toString()),
        opened.map((_, i) => `socket ${i}`),
      );
      assert.equal(tokens.requests.length, 1);
    } finally {
      for (const socket of sockets) socket.terminate();
      await sidecar.close();
      await Promise.all([tokens.close(), upstream.close()]);
    }
  });

  test('token refreshes and expiry never drop an open connection', async () => {
    const clock = new ManualClock();
    const tokens = await startScriptedTokenServer(() => ({ status: 200, body: issue(600) }));
    const upstream = await startEchoUpstream({ signingKey });
    const sidecar = await startSidecar({ routes: [route(tokens.url, upstream.url, { websocket: true })] }, { clock, logLevel: 'warn' });
    try {
      const socket = await openSocket(wsUrl(sidecar, '/long-lived'));
      assert.equal(tokens.requests.length, 1);
      // Past the refresh point (80% of 600 s), then past the first token's expiry twice over.
      for (let step = 0; step < 4; step++) {
        clock.advance(500_000);
        await eventually(() => tokens.requests.length >= step + 2);
        assert.equal(socket.readyState, WebSocket.OPEN);
        assert.equal((await echo(socket, `after refresh ${step}`)).data.toString(), `after refresh ${step}`);
      }
      // New upgrades carry the newest token.
      const later = await openSocket(wsUrl(sidecar, '/later'));
      assert.equal((await echo(later, 'new')).data.toString(), 'new');
      later.close();
      socket.close();
    } finally {
      await sidecar.close();
      await Promise.all([tokens.close(), upstream.close()]);
    }
  });
});

describe('WebSockets at shutdown', () => {
  test('close() lets open sockets work through the drain time, then closes both sides with 1001', async () => {
    // An upstream that checks the token and records how each socket was closed.
    const upstreamCloses: number[] = [];
    const server = createServer();
    const wss = new WebSocketServer({ noServer: true });
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      if (!verifyJwt((req.headers.authorization ?? '').slice(7), signingKey)) return void socket.destroy();
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.send('welcome');
        ws.on('message', (data) => ws.send(data));
        ws.on('close', (code) => upstreamCloses.push(code));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const tokens = await startScriptedTokenServer();
    const drainTimeoutMs = 400;
    const sidecar = await startSidecar({ drainTimeoutMs, routes: [route(tokens.url, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, { websocket: true })] }, { logLevel: 'warn' });
    try {
      const socket = new WebSocket(wsUrl(sidecar, '/s'));
      const greeting = new Promise<string>((resolve) => socket.once('message', (data) => resolve(String(data))));
      await new Promise((resolve) => socket.once('open', resolve));
      assert.equal(await Promise.race([greeting, sleep(5_000, 'no greeting')]), 'welcome', 'what the upstream sends right after its handshake arrives');
      const closed = closeOf(socket);
      const started = Date.now();
      const closing = sidecar.close();
      await sleep(100);
      assert.equal((await echo(socket, 'still here')).data.toString(), 'still here', 'the socket works while draining');
      const { code, at } = await closed;
      assert.equal(code, 1001);
      assert.ok(at - started >= drainTimeoutMs - 50, `closed after ${at - started} ms, before the drain time`);
      await closing;
      assert.ok(Date.now() - started < drainTimeoutMs + 3_000);
      await eventually(() => upstreamCloses.length === 1);
      assert.deepEqual(upstreamCloses, [1001]);
    } finally {
      await tokens.close();
      await closeServer(server);
    }
  });

  test('SIGTERM (the CLI): sockets keep echoing through drainTimeoutMs, then get 1001; new connections are refused; exit 0', async () => {
    const tokens = await startTokenServer({ clients: [{ id: 'cli-client', secret: 'cli-secret' }], signingKey });
    const upstream = await startEchoUpstream({ signingKey });
    const port = await freePort();
    const drainTimeoutMs = 600;
    const config = join(mkdtempSync(join(tmpdir(), 'bsc-ws-')), 'ws.yaml');
    writeFileSync(
      config,
      `listen: { port: ${port} }\nadmin: { port: 0 }\ndrainTimeoutMs: ${drainTimeoutMs}\nroutes:\n  - name: live\n    upstream: ${upstream.url}\n    websocket: true\n    auth: { tokenUrl: ${tokens.url}, clientId: cli-client, clientSecret: cli-secret }\n`,
    );
    const sidecar = run(['--config', config]);
    try {
      await sidecar.waitFor(/"msg":"token refreshed"/);
      const sockets = await Promise.all([openSocket(`ws://127.0.0.1:${port}/a`), openSocket(`ws://127.0.0.1:${port}/b`)]);
      const closes = sockets.map(closeOf);
      const started = Date.now();
      sidecar.child.kill('SIGTERM');
      await sidecar.waitFor(/shutting down/);
      await assert.rejects(openSocket(`ws://127.0.0.1:${port}/late`), 'a new connection after SIGTERM is refused');
      for (const socket of sockets) assert.equal((await echo(socket, 'draining')).data.toString(), 'draining');
      for (const { code, at } of await Promise.all(closes)) {
        assert.equal(code, 1001);
        assert.ok(at - started >= drainTimeoutMs - 50, `closed ${at - started} ms after SIGTERM, before the drain time`);
      }
      assert.equal(await sidecar.exited, 0);
      assert.match(sidecar.output(), /"msg":"stopped"/);
    } finally {
      sidecar.child.kill('SIGKILL');
      await Promise.all([tokens.close(), upstream.close()]);
    }
  });
});
