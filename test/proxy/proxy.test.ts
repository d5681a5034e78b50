import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { startTokenServer, type TokenServer } from '../../src/demo/token-server.js';
import { freePort, issue, signingKey, startScriptedTokenServer, startSilentServer } from '../helpers/servers.js';
import { eventually, startSidecar, type TestSidecar } from '../helpers/sidecar.js';

interface Echo {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  body: { bytes: number; sha256: string };
}

const clientSecret = 'megaport-secret-value-1f2e';

describe('forwarding with an injected token (Megaport-style endpoint)', () => {
  let tokens: TokenServer;
  let upstream: EchoUpstream;
  let sidecar: TestSidecar;
  before(async () => {
    tokens = await startTokenServer({ clients: [{ id: 'mp-client', secret: clientSecret }], signingKey, expiresInSeconds: 86_400, methods: ['client_secret_basic'] });
    upstream = await startEchoUpstream({ signingKey });
    sidecar = await startSidecar({
      routes: [
        { name: 'megaport', prefix: '/', upstream: `${upstream.url}/v2`, auth: { preset: 'megaport', tokenUrl: tokens.url, clientId: 'mp-client', clientSecret } },
        { name: 'other', prefix: '/other', upstream: upstream.url, auth: { preset: 'megaport', tokenUrl: tokens.url, clientId: 'mp-client', clientSecret } },
      ],
    });
  });
  after(async () => {
    await sidecar.close();
    await Promise.all([tokens.close(), upstream.close()]);
  });

  for (const method of ['GET', 'DELETE', 'OPTIONS']) {
    test(`${method} is forwarded with Authorization: Bearer`, async () => {
      const response = await fetch(`${sidecar.proxyUrl}/ports?x=1`, { method });
      assert.equal(response.status, 200);
      const echo = (await response.json()) as Echo;
      assert.equal(echo.method, method);
      assert.match(echo.headers.authorization ?? '', /^Bearer ey/);
    });
  }

  test('HEAD is forwarded', async () => {
    const response = await fetch(`${sidecar.proxyUrl}/ports`, { method: 'HEAD' });
    assert.equal(response.status, 200);
    assert.equal(upstream.received.at(-1)?.method, 'HEAD');
    assert.match(upstream.received.at(-1)?.headers.authorization ?? '', /^Bearer ey/);
  });

  for (const method of ['POST', 'PUT', 'PATCH']) {
    test(`${method} bodies reach the upstream byte for byte`, async () => {
      const body = JSON.stringify({ name: 'my-port', speed: 10_000, note: 'ünïcödé' });
      const response = await fetch(`${sidecar.proxyUrl}/ports`, { method, body, headers: { 'content-type': 'application/json' } });
      const echo = (await response.json()) as Echo;
      assert.equal(response.status, 200);
      assert.equal(echo.method, method);
      assert.equal(echo.body.bytes, Buffer.byteLength(body));
      assert.equal(echo.headers['content-type'], 'application/json');
    });
  }

  test('form and binary bodies, and bodies without a content type, pass through unparsed', async () => {
    const binary = Buffer.from([0, 1, 2, 255, 254, 10, 13]);
    for (const [body, type] of [[binary, 'application/octet-stream'], ['a=1&b=2', 'application/x-www-form-urlencoded'], ['{not json', 'application/json']] as const) {
      const response = await fetch(`${sidecar.proxyUrl}/upload`, { method: 'POST', body, headers: { 'content-type': type } });
      assert.equal(response.status, 200, `${type}: ${response.status}`);
      assert.equal(((await response.json()) as Echo).body.bytes, typeof body === 'string' ? body.length : body.length);
    }
    const echo = await new Promise<Echo>((resolve, reject) => {
      const req = httpRequest(`${sidecar.proxyUrl}/raw`, { method: 'POST', headers: { 'content-length': '5' } }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve(JSON.parse(text) as Echo));
      });
      req.on('error', reject);
      req.end('hello');
    });
    assert.equal(echo.body.bytes, 5);
  });

  test("the caller's Authorization is replaced, never forwarded; hop-by-hop headers are dropped", async () => {
    // node:http, not fetch: fetch refuses to send a Connection header of the caller's choosing.
    const echo = await new Promise<Echo>((resolve, reject) => {
      const headers = { authorization: 'Bearer caller-token', 'proxy-authorization': 'Basic abc', 'x-custom': 'kept', connection: 'keep-alive, x-drop-me', 'x-drop-me': 'gone' };
      httpRequest(`${sidecar.proxyUrl}/x`, { headers }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve(JSON.parse(text) as Echo));
      })
        .on('error', reject)
        .end();
    });
    assert.notEqual(echo.headers.authorization, 'Bearer caller-token');
    assert.match(echo.headers.authorization ?? '', /^Bearer ey/);
    assert.equal(echo.headers['proxy-authorization'], undefined);
    assert.equal(echo.headers['x-drop-me'], undefined);
    assert.equal(echo.headers['x-custom'], 'kept');
  });

  test('the Host header is the upstream host', async () => {
    const response = await fetch(`${sidecar.proxyUrl}/x`, { headers: { host: 'evil.example.com' } });
    const echo = (await response.json()) as Echo;
    assert.equal(echo.headers.host, new URL(upstream.url).host);
  });

  test('prefix stripped, base path kept, query string kept byte for byte', async () => {
    const root = (await (await fetch(`${sidecar.proxyUrl}/a/b?q=a+b&flag&x=%2F&x=2`)).json()) as Echo;
    assert.equal(root.path, '/v2/a/b');
    assert.equal(root.query, '?q=a+b&flag&x=%2F&x=2');
    const bare = (await (await fetch(`${sidecar.proxyUrl}/`)).json()) as Echo;
    assert.equal(bare.path, '/v2/');
    const other = (await (await fetch(`${sidecar.proxyUrl}/other/c?d=1`)).json()) as Echo;
    assert.equal(other.path, '/c');
    assert.equal(other.query, '?d=1');
    const otherRoot = (await (await fetch(`${sidecar.proxyUrl}/other`)).json()) as Echo;
    assert.equal(otherRoot.path, '/');
  });

  test('response status, headers and body come back unchanged', async () => {
    const response = await fetch(`${sidecar.proxyUrl}/other/bytes/100000`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/octet-stream');
    assert.equal((await response.arrayBuffer()).byteLength, 100_000);
  });

  test('/readyz reports each route, its state and seconds to expiry, and never a token', async () => {
    const response = await fetch(`${sidecar.adminUrl}/readyz`);
    assert.equal(response.status, 200);
    const text = await response.text();
    const body = JSON.parse(text) as { ready: boolean; routes: { name: string; state: string; expiresInSeconds: number }[] };
    assert.equal(body.ready, true);
    assert.deepEqual(body.routes.map((r) => r.name), ['megaport', 'other']);
    assert.ok(body.routes.every((r) => r.state === 'ready' && r.expiresInSeconds > 86_000));
    assert.doesNotMatch(text, /ey[A-Za-z0-9_-]{10,}\./);
    assert.equal((await fetch(`${sidecar.adminUrl}/livez`)).status, 200);
  });

  test('the admin listener does not proxy', async () => {
    assert.equal((await fetch(`${sidecar.adminUrl}/ports`)).status, 404);
  });

  test('one log line per request with route, method, path, status and duration; no token or secret in any line', async () => {
    await fetch(`${sidecar.proxyUrl}/logged/path?secret=query`, { headers: { authorization: 'Bearer caller-token-xyz' } });
    await eventually(() => sidecar.logs.some((line) => line.includes('/v2') || line.includes('/logged/path')));
    const lines = sidecar.logs.map((line) => JSON.parse(line) as Record<string, unknown>);
    const mine = lines.filter((l) => l.msg === 'request' && l.path === '/logged/path');
    assert.equal(mine.length, 1);
    assert.equal(mine[0]?.route, 'megaport');
    assert.equal(mine[0]?.method, 'GET');
    assert.equal(mine[0]?.status, 200);
    assert.equal(typeof mine[0]?.durationMs, 'number');
    assert.ok(lines.some((l) => l.msg === 'token refreshed' && l.lifetimeSeconds === 86_400 && typeof l.nextRefreshInSeconds === 'number'));
    const all = sidecar.logs.join('\n');
    assert.doesNotMatch(all, new RegExp(clientSecret));
    assert.doesNotMatch(all, /caller-token-xyz/);
    assert.doesNotMatch(all, /ey[A-Za-z0-9_-]{10,}\.ey/, 'a JWT appears in the logs');
  });
});

describe('cold start and Cyxtera-style endpoint', () => {
  test('200 concurrent cold requests cause exactly 1 token request; client_secret_post', async () => {
    const tokens = await startTokenServer({ clients: [{ id: 'KEYID', secret: 'SHAREDSECRET' }], signingKey, expiresInSeconds: 3600, scope: 'https://api.cyxtera.com/accounts', methods: ['client_secret_post'] });
    const upstream = await startEchoUpstream({ signingKey });
    // The sidecar's own start() would fetch first; a scripted delay makes every request arrive cold.
    const sidecar = await startSidecar({ routes: [{ name: 'cyxtera', upstream: upstream.url, auth: { preset: 'cyxtera', tokenUrl: tokens.url, clientId: 'KEYID', clientSecret: 'SHAREDSECRET' } }] });
    try {
      const responses = await Promise.all(Array.from({ length: 200 }, (_, i) => fetch(`${sidecar.proxyUrl}/r/${i}`)));
      assert.ok(responses.every((r) => r.status === 200));
      await Promise.all(responses.map((r) => r.arrayBuffer()));
      assert.equal(tokens.requests.length, 1);
      assert.equal(tokens.requests[0]?.method, 'client_secret_post');
    } finally {
      await sidecar.close();
      await Promise.all([tokens.close(), upstream.close()]);
    }
  });
});

describe('failures become JSON errors with the right status', () => {
  test('invalid_client: 503 with the reason, route, Retry-After until the next attempt (1 minute); one token request, however many requests', async () => {
    const tokens = await startScriptedTokenServer(() => ({ status: 401, body: { error: 'invalid_client' } }));
    const upstream = await startEchoUpstream({ signingKey });
    const sidecar = await startSidecar({ routes: [{ name: 'mp', upstream: upstream.url, auth: { tokenUrl: tokens.url, clientId: 'id', clientSecret: 'wrong-secret-123' } }] });
    try {
      const response = await fetch(`${sidecar.proxyUrl}/x`);
      assert.equal(response.status, 503);
      const retryAfter = Number(response.headers.get('retry-after'));
      assert.ok(retryAfter > 30 && retryAfter <= 60, `Retry-After ${retryAfter}: the next attempt is a minute after the rejection`);
      const body = (await response.json()) as { error: string; message: string; route: string };
      assert.equal(body.error, 'token_unavailable');
      assert.equal(body.route, 'mp');
      assert.match(body.message, /invalid_client/);
      assert.doesNotMatch(JSON.stringify(body), /wrong-secret-123/);
      for (let i = 0; i < 5; i++) assert.equal((await fetch(`${sidecar.proxyUrl}/x`)).status, 503);
      assert.equal(tokens.requests.length, 1);
      assert.equal(upstream.received.length, 0, 'nothing reached the upstream without a token');
      const ready = await fetch(`${sidecar.adminUrl}/readyz`);
      assert.equal(ready.status, 503);
      assert.equal(((await ready.json()) as { routes: { state: string }[] }).routes[0]?.state, 'unavailable');
    } finally {
      await sidecar.close();
      await Promise.all([tokens.close(), upstream.close()]);
    }
  });

  test('token endpoint 500 then OK: retried, the request succeeds', async () => {
    const tokens = await startScriptedTokenServer((r) => (r.n < 3 ? { status: 500, body: 'boom' } : { status: 200, body: issue(3600) }));
    const upstream = await startEchoUpstream({ signingKey });
    const sidecar = await startSidecar({ routes: [{ name: 'api', upstream: upstream.url, auth: { tokenUrl: tokens.url, clientId: 'id', clientSecret: 's', retry: { retries: 5, minDelayMs: 5, maxDelayMs: 20, maxTimeMs: 5000 } } }] });
    try {
      assert.equal((await fetch(`${sidecar.proxyUrl}/x`)).status, 200);
      assert.equal(tokens.requests.length, 3);
    } finally {
      await sidecar.close();
      await Promise.all([tokens.close(), upstream.close()]);
    }
  });

  test('upstream unreachable: 502 JSON', async () => {
    const tokens = await startScriptedTokenServer();
    const port = await freePort();
    const sidecar = await startSidecar({ routes: [{ name: 'api', upstream: `http://127.0.0.1:${port}`, auth: { tokenUrl: tokens.url, clientId: 'id', clientSecret: 's' } }] });
    try {
      const response = await fetch(`${sidecar.proxyUrl}/x`);
      assert.equal(response.status, 502);
      const body = (await response.json()) as { error: string; route: string; requestId: string };
      assert.equal(body.error, 'upstream_unreachable');
      assert.equal(body.route, 'api');
      assert.ok(body.requestId);
    } finally {
      await sidecar.close();
      await tokens.close();
    }
  });

  test('upstream timeout: 504 JSON within the configured response timeout', async () => {
    const tokens = await startScriptedTokenServer();
    const silent = await startSilentServer();
    const sidecar = await startSidecar({ routes: [{ name: 'api', upstream: silent.url, responseTimeoutMs: 300, auth: { tokenUrl: tokens.url, clientId: 'id', clientSecret: 's' } }] });
    try {
      const started = Date.now();
      const response = await fetch(`${sidecar.proxyUrl}/slow`);
      assert.equal(response.status, 504);
      assert.equal(((await response.json()) as { error: string }).error, 'upstream_timeout');
      assert.ok(Date.now() - started < 3000);
    } finally {
      await sidecar.close();
      await Promise.all([tokens.close(), silent.close()]);
    }
  });

  test('a path no route serves: 404 JSON', async () => {
    const tokens = await startScriptedTokenServer();
    const sidecar = await startSidecar({ routes: [{ name: 'api', prefix: '/api', upstream: 'http://127.0.0.1:1', auth: { tokenUrl: tokens.url, clientId: 'id', clientSecret: 's' } }] });
    try {
      const response = await fetch(`${sidecar.proxyUrl}/elsewhere`);
      assert.equal(response.status, 404);
      assert.equal(((await response.json()) as { error: string }).error, 'no_route');
    } finally {
      await sidecar.close();
      await tokens.close();
    }
  });
});
