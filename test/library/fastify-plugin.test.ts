// bearer-sidecar/fastify, against src/ (the packed package is proven in package.test.ts): the
// token on every forwarded request and the caller's Authorization never, a request waiting for
// the first token answered 503 after tokenWaitMs, a 401 replayed once with a new token (small
// bodies too; a streamed body not), TLS verified (an unknown CA: an error, and no token sent),
// a WebSocket dialled with the token (a wsReconnect dial with the current one), bad `auth` refused at register with the config file's messages, and the token source closed
// with the app.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { WebSocketServer } from 'ws';
import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { closeServer } from '../../src/demo/token-server.js';
import { ConfigError } from '../../src/errors.js';
import { bearerProxy, type BearerProxyOptions } from '../../src/fastify/index.js';
import { createLogger } from '../../src/logger.js';
import { audit, call } from '../helpers/audit.js';
import { makeTestPki, opensslMissing, startHttpsRecorder, type HttpsRecorder } from '../helpers/certs.js';
import { issue, signingKey, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';
import { eventually } from '../helpers/sidecar.js';
import { echo, openSocket } from '../helpers/websocket.js';

interface Echo {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: { bytes: number; sha256: string };
}

const secret = 'plugin-test-secret';
audit.addSecret(secret);

/** A Fastify app with the plugin under /api and its log lines captured (for the secret audit). */
async function startApp(options: Omit<BearerProxyOptions, 'auth'> & { auth: Record<string, unknown> }): Promise<{ app: FastifyInstance; url: string; logs: string[] }> {
  const logs: string[] = [];
  audit.addOutput(logs);
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logs.push(...chunk.toString().split('\n').filter(Boolean));
      callback();
    },
  });
  const app = Fastify({ loggerInstance: createLogger({ level: 'debug', destination }) as FastifyBaseLogger }) as unknown as FastifyInstance;
  await app.register(bearerProxy, { prefix: '/api', ...options } as BearerProxyOptions);
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/api`, logs };
}

const auth = (tokenUrl: string, extra: Record<string, unknown> = {}) => ({
  tokenUrl,
  clientId: 'plugin-client',
  clientSecret: secret,
  retry: { retries: 1, minDelayMs: 10, maxDelayMs: 50, maxTimeMs: 2000 },
  ...extra,
});

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** A POST with node:http, so the test decides Content-Length or chunking. */
function post(url: string, headers: Record<string, string>, chunks: (string | Buffer)[]): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

describe('bearerProxy (Fastify plugin)', () => {
  let tokens: ScriptedTokenServer;
  let upstream: EchoUpstream;
  const revoked = new Set<string>();

  before(async () => {
    tokens = await startScriptedTokenServer(() => ({ status: 200, body: issue(3600, { jti: Math.random().toString(36).slice(2) }) }));
    upstream = await startEchoUpstream({ signingKey, isRevoked: (token) => revoked.has(token) });
  });
  after(async () => {
    await Promise.all([tokens.close(), upstream.close()]);
    audit.assertNothingLeaked();
  });

  test('forwards under the prefix with the token; the caller’s Authorization is replaced, hop-by-hop headers dropped', async () => {
    const { app, url } = await startApp({ upstream: `${upstream.url}/base`, auth: auth(tokens.url) });
    try {
      const response = await fetch(`${url}/things?x=1`, { headers: { authorization: 'Bearer caller-own', 'proxy-authorization': 'Basic eA==', 'x-custom': 'kept' } });
      assert.equal(response.status, 200);
      const echo = (await response.json()) as Echo & { query: string };
      assert.equal(echo.path, '/base/things');
      assert.equal(echo.query, '?x=1');
      assert.equal(echo.headers.authorization, `Bearer ${tokens.issued.at(-1)}`);
      assert.equal(echo.headers['proxy-authorization'], undefined);
      assert.equal(echo.headers['x-custom'], 'kept');
    } finally {
      await app.close();
    }
  });

  test('a request waiting for the first token gets 503 with the sidecar’s JSON body after auth.tokenWaitMs', async () => {
    const hanging = await startScriptedTokenServer(() => 'hang');
    const { app, url } = await startApp({ upstream: upstream.url, auth: auth(hanging.url, { tokenWaitMs: 300, timeoutMs: 5000 }) });
    const before = upstream.received.length;
    try {
      const started = Date.now();
      const answer = await call(`${url}/waits`);
      assert.ok(Date.now() - started >= 250, 'held until tokenWaitMs');
      assert.equal(answer.status, 503);
      assert.equal(answer.headers.get('retry-after') !== null, true);
      const body = answer.json<{ error: string; route: string; requestId: string; message: string }>();
      assert.equal(body.error, 'token_unavailable');
      assert.equal(body.route, '/api');
      assert.match(body.message, /no token after waiting 300 ms/);
      assert.ok(body.requestId);
      assert.equal(upstream.received.length, before, 'nothing reached the upstream');
    } finally {
      await app.close();
      await hanging.close();
    }
  });

  test('a 401 for a revoked token: one new token, the request replayed once (small bodies too); a streamed body is not replayed', async () => {
    const { app, url } = await startApp({ upstream: upstream.url, auth: auth(tokens.url, { refreshOn401CooldownSeconds: 0 }) });
    try {
      assert.equal((await fetch(`${url}/warm`)).status, 200);
      const grants = tokens.requests.length;
      revoked.add(tokens.issued.at(-1) as string);
      const results = await Promise.all(Array.from({ length: 20 }, () => fetch(`${url}/again`)));
      assert.deepEqual(results.map((r) => r.status), Array(20).fill(200));
      assert.equal(tokens.requests.length, grants + 1, 'one token request for all the rejected requests');

      revoked.add(tokens.issued.at(-1) as string);
      const body = JSON.stringify({ hello: 'world' });
      const small = await post(`${url}/upload`, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, [body]);
      assert.equal(small.status, 200);
      assert.equal((JSON.parse(small.text) as Echo).body.sha256, sha256(body), 'the kept body went out again unchanged');

      revoked.add(tokens.issued.at(-1) as string);
      const streamed = await post(`${url}/upload`, { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' }, ['a', 'b']);
      assert.equal(streamed.status, 401, 'a chunked body cannot be sent twice: the 401 reaches the caller');
      await eventually(() => tokens.issued.length === grants + 3);
      assert.equal((await fetch(`${url}/after`)).status, 200, 'and the next request has a new token');
    } finally {
      await app.close();
    }
  });

  test('a second 401 goes to the caller: one replay, never a loop', async () => {
    const always = await startEchoUpstream({ signingKey, isRevoked: () => true });
    const { app, url } = await startApp({ upstream: always.url, auth: auth(tokens.url, { refreshOn401CooldownSeconds: 0 }) });
    try {
      const before = always.received.length;
      const answer = await fetch(`${url}/x`);
      assert.equal(answer.status, 401);
      assert.equal(always.received.length - before, 2, 'sent, and replayed once');
    } finally {
      await app.close();
      await always.close();
    }
  });

  test('invalid auth: register fails with the config file’s messages, led by the field path', async () => {
    const app = Fastify();
    await assert.rejects(
      async () => {
        await app.register(bearerProxy, { upstream: upstream.url, auth: { tokenUrl: 'ftp://x', clientId: 'id', retry: { retries: -1 } } } as unknown as BearerProxyOptions);
        await app.ready();
      },
      (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.deepEqual([...err.problems].sort(), ['auth.clientSecret: is required (or clientSecretFile)', 'auth.retry.retries: Too small: expected number to be >=0', 'auth.tokenUrl: must be an absolute http:// or https:// URL']);
        return true;
      },
    );
    await app.close();
    const missingUpstream = Fastify();
    await assert.rejects(
      async () => {
        await missingUpstream.register(bearerProxy, { auth: auth(tokens.url) } as unknown as BearerProxyOptions);
        await missingUpstream.ready();
      },
      /upstream: is required \(or set auth.preset\)/,
    );
    await missingUpstream.close();
  });

  test('closing the app closes the token source: no refresh after it', async () => {
    // One-second tokens: the source would refresh after 0.75 s.
    const short = await startScriptedTokenServer(() => ({ status: 200, body: issue(1) }));
    const { app, url } = await startApp({ upstream: upstream.url, auth: auth(short.url) });
    try {
      assert.equal((await fetch(`${url}/x`)).status, 200);
      await app.close();
      const count = short.requests.length;
      await new Promise((resolve) => setTimeout(resolve, 1200));
      assert.equal(short.requests.length, count);
    } finally {
      await short.close();
    }
  });

  test('websocket: true: the upgrade is dialled with the token (the caller’s Authorization replaced), and echoes', async () => {
    const { app, url } = await startApp({ upstream: upstream.url, websocket: true, auth: auth(tokens.url) });
    try {
      const socket = await openSocket(`${url.replace('http:', 'ws:')}/socket`, [], { headers: { authorization: 'Bearer caller-own' } });
      try {
        assert.equal((await echo(socket, 'ping')).data.toString(), 'ping');
      } finally {
        socket.terminate();
      }
      const upgrade = upstream.received.filter((request) => request.url === '/socket').at(-1);
      assert.equal(upgrade?.headers.authorization, `Bearer ${tokens.issued.at(-1)}`);
    } finally {
      await app.close();
    }
  });

  test('wsReconnect: the upstream closes the socket, and http-proxy dials again with the token the source has now, not the first one', async () => {
    // A WebSocket upstream that records each upgrade's Authorization and closes the first socket on "bye".
    const dials: string[] = [];
    const server = createServer();
    const wss = new WebSocketServer({ server });
    wss.on('connection', (socket, req) => {
      dials.push(req.headers.authorization ?? '');
      socket.on('message', (data) => (data.toString() === 'bye' && dials.length === 1 ? socket.close(1011, 'going') : socket.send(data)));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const wsUpstream = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    let app: FastifyInstance | undefined;
    try {
      const started = await startApp({
        upstream: upstream.url,
        wsUpstream,
        websocket: true,
        wsReconnect: { reconnectOnClose: true, reconnectInterval: 100, maxReconnectionRetries: 5, connectionTimeout: 5000, pingInterval: 60_000 },
        auth: auth(tokens.url, { refreshOn401CooldownSeconds: 0 }),
      } as Omit<BearerProxyOptions, 'auth'> & { auth: Record<string, unknown> });
      app = started.app;
      const { url } = started;
      const socket = await openSocket(`${url.replace('http:', 'ws:')}/socket`);
      assert.equal((await echo(socket, 'ping')).data.toString(), 'ping');
      const first = tokens.issued.at(-1) as string;
      assert.deepEqual(dials, [`Bearer ${first}`]);
      // The upstream revokes that token: a plain request through the plugin gets the source a new one.
      revoked.add(first);
      assert.equal((await fetch(`${url}/x`)).status, 200);
      const second = tokens.issued.at(-1) as string;
      assert.notEqual(second, first);
      socket.send('bye');
      await eventually(() => dials.length === 2, 10_000);
      assert.equal(dials[1], `Bearer ${second}`);
      socket.terminate();
    } finally {
      await app?.close();
      for (const client of wss.clients) client.terminate();
      wss.close();
      await closeServer(server);
    }
  });

  describe('TLS to the upstream', { skip: opensslMissing }, () => {
    let recorder: HttpsRecorder;
    let caFile: string;
    before(async () => {
      const pki = makeTestPki();
      caFile = pki.caFile;
      recorder = await startHttpsRecorder(pki.server);
    });
    after(() => recorder.close());

    // reply-from turns verification off in each client it may build (undici, node:http when `http`
    // is set or `undici: false`); the plugin turns it on in each.
    for (const [client, options] of [
      ['undici (default)', {}],
      ['undici: {} of the app', { undici: { connections: 4 } }],
      ['node:http (undici: false)', { undici: false }],
      ['node:http (http: {})', { http: { agentOptions: { keepAlive: false } } }],
    ] as const) {
      test(`an unknown CA: 502 upstream_unreachable, and no token is sent; ${client}`, async () => {
        const { app, url } = await startApp({ upstream: recorder.url, auth: auth(tokens.url), ...(options as object) });
        try {
          const answer = await call(`${url}/x`);
          assert.equal(answer.status, 502);
          assert.equal(answer.json<{ error: string }>().error, 'upstream_unreachable');
          assert.equal(recorder.saw.length, 0, 'the TLS handshake failed before any request was sent');
        } finally {
          await app.close();
        }
      });
    }

    test('tls.caFile trusts the private CA (as a route’s tls does)', async () => {
      const { app, url } = await startApp({ upstream: `${recorder.url}/base`, tls: { caFile }, auth: auth(tokens.url) });
      try {
        const answer = await fetch(`${url}/x`);
        assert.equal(answer.status, 200);
        assert.deepEqual(await answer.json(), { path: '/base/x' });
        assert.match(recorder.saw.at(-1) ?? '', /^Bearer /);
      } finally {
        await app.close();
      }
    });
  });
});
