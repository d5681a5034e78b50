// bearerInterceptor, against src/: undici's fetch and request() through `new Agent().compose(...)`
// carry the token (the caller's Authorization replaced) and replay once on 401 when the body can
// be sent again (none, string, Buffer); a stream body is sent once and its 401 reaches the caller;
// `origins` is required and keeps the token from other hosts, redirect targets included; a token
// that cannot be had fails the request with the TokenError as its cause. Node's own global fetch is checked with the same dispatcher.

import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, fetch as undiciFetch, interceptors, Pool, request } from 'undici';
import { closeServer } from '../../src/demo/token-server.js';
import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { bearerInterceptor, ConfigError, createTokenSource, TokenError, type BearerTokenSource } from '../../src/index.js';
import { withAuthorization } from '../../src/library/interceptor.js';
import { startForeignServer, type ForeignServer } from '../helpers/security.js';
import { issue, signingKey, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';
import { eventually } from '../helpers/sidecar.js';

interface Echo {
  headers: Record<string, string>;
  body: { bytes: number };
}

describe('bearerInterceptor', () => {
  let tokens: ScriptedTokenServer;
  let upstream: EchoUpstream;
  let foreign: ForeignServer;
  let source: BearerTokenSource;
  let dispatcher: Agent;
  const revoked = new Set<string>();
  const revokeCurrent = () => revoked.add(tokens.issued.at(-1) as string);

  before(async () => {
    tokens = await startScriptedTokenServer(() => ({ status: 200, body: issue(3600, { jti: Math.random().toString(36).slice(2) }) }));
    upstream = await startEchoUpstream({ signingKey, isRevoked: (token) => revoked.has(token) });
    foreign = await startForeignServer();
    source = createTokenSource({ tokenUrl: tokens.url, clientId: 'interceptor-client', clientSecret: 'interceptor-secret', refreshOn401CooldownSeconds: 0 });
    dispatcher = new Agent().compose(bearerInterceptor(source, { origins: [upstream.url] })) as Agent;
  });
  after(async () => {
    await source.close();
    await dispatcher.close();
    await Promise.all([tokens.close(), upstream.close(), foreign.close()]);
  });

  test('undici fetch: the token replaces the caller’s Authorization', async () => {
    const response = await undiciFetch(`${upstream.url}/x`, { dispatcher, headers: { authorization: 'Bearer callers-own', 'x-kept': 'yes' } });
    assert.equal(response.status, 200);
    const echo = (await response.json()) as Echo;
    assert.equal(echo.headers.authorization, `Bearer ${tokens.issued.at(-1)}`);
    assert.equal(echo.headers['x-kept'], 'yes');
  });

  test('undici fetch: a 401 for a revoked token is replayed once with a new token', async () => {
    await undiciFetch(`${upstream.url}/warm`, { dispatcher }).then((r) => r.arrayBuffer());
    revokeCurrent();
    const grants = tokens.requests.length;
    const before = upstream.received.length;
    const response = await undiciFetch(`${upstream.url}/again`, { dispatcher });
    assert.equal(response.status, 200);
    await response.arrayBuffer();
    assert.equal(tokens.requests.length, grants + 1);
    assert.equal(upstream.received.length - before, 2, 'sent, and replayed once');
  });

  test('undici request(): a string or Buffer body is replayed; a stream body is not (its 401 reaches the caller)', async () => {
    for (const body of ['a string body', Buffer.from('a buffer body')]) {
      revokeCurrent();
      const response = await request(`${upstream.url}/upload`, { dispatcher, method: 'POST', body });
      assert.equal(response.statusCode, 200);
      assert.equal(((await response.body.json()) as Echo).body.bytes, body.length);
    }
    revokeCurrent();
    const grants = tokens.requests.length;
    const streamed = await request(`${upstream.url}/upload`, { dispatcher, method: 'POST', body: Readable.from(['a', 'b']) });
    assert.equal(streamed.statusCode, 401);
    await streamed.body.dump();
    await eventually(() => tokens.requests.length === grants + 1);
    const next = await request(`${upstream.url}/after`, { dispatcher });
    assert.equal(next.statusCode, 200, 'the request after it has the new token');
    await next.body.dump();
  });

  test('a second 401 reaches the caller: one replay, never a loop', async () => {
    const always = await startEchoUpstream({ signingKey, isRevoked: () => true });
    const agent = new Agent().compose(bearerInterceptor(source, { origins: [always.url] }));
    try {
      const response = await request(`${always.url}/x`, { dispatcher: agent });
      assert.equal(response.statusCode, 401);
      await response.body.dump();
      assert.equal(always.received.length, 2);
    } finally {
      await agent.close();
      await always.close();
    }
  });

  test('origins: a request to another origin through the same dispatcher carries no token', async () => {
    const response = await undiciFetch(`${foreign.url}/elsewhere`, { dispatcher, headers: { authorization: 'Bearer callers-own' } });
    assert.equal(response.status, 200);
    await response.arrayBuffer();
    assert.equal(foreign.hits.at(-1)?.authorization, 'Bearer callers-own', 'untouched: neither replaced nor given ours');
  });

  test('origins: a redirect from the API to another origin does not take the token along (fetch, and undici’s redirect interceptor)', async () => {
    const redirector = createServer((req, res) => {
      req.resume();
      res.writeHead(302, { location: `${foreign.url}/landed` }).end();
    });
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
    const api = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}`;
    const viaFetch = new Agent().compose(bearerInterceptor(source, { origins: [api] }));
    const viaInterceptor = new Agent().compose(bearerInterceptor(source, { origins: [api] }), interceptors.redirect({ maxRedirections: 2 }));
    try {
      const fetched = await undiciFetch(`${api}/go`, { dispatcher: viaFetch });
      assert.equal(await fetched.text(), 'foreign');
      assert.equal(foreign.hits.at(-1)?.authorization, undefined, 'fetch: no token at the redirect target');
      const requested = await request(`${api}/go`, { dispatcher: viaInterceptor });
      assert.equal(await requested.body.text(), 'foreign');
      assert.equal(foreign.hits.at(-1)?.authorization, undefined, 'redirect interceptor: no token at the redirect target');
    } finally {
      await Promise.all([viaFetch.close(), viaInterceptor.close(), closeServer(redirector)]);
    }
  });

  test('origins is required and checked; a Pool’s requests (no origin of their own) get the token', async () => {
    const refuse = (options: unknown) => () => bearerInterceptor(source, options as Parameters<typeof bearerInterceptor>[1]);
    assert.throws(refuse(undefined), (err: unknown) => err instanceof ConfigError && /^origins: is required/.test(err.problems[0] ?? ''));
    assert.throws(refuse({}), (err: unknown) => err instanceof ConfigError && /^origins: is required/.test(err.problems[0] ?? ''));
    assert.throws(refuse({ origins: ['api.example.com', 'ftp://x'] }), (err: unknown) => err instanceof ConfigError && err.problems.length === 2 && /^origins\[0\]: must be an absolute/.test(err.problems[0] ?? ''));
    const pool = new Pool(upstream.url).compose(bearerInterceptor(source, { origins: [upstream.url] }));
    try {
      const response = await pool.request({ path: '/pooled', method: 'GET' });
      assert.equal(((await response.body.json()) as Echo).headers.authorization, `Bearer ${await source.getToken()}`);
    } finally {
      await pool.close();
    }
  });

  test('Node’s global fetch with the same dispatcher (Node 20 bundles undici 6, Node 24 undici 7)', async () => {
    revokeCurrent();
    const response = await fetch(`${upstream.url}/global`, { dispatcher, headers: { authorization: 'Bearer callers-own' } } as unknown as RequestInit);
    assert.equal(response.status, 200);
    assert.equal(((await response.json()) as Echo).headers.authorization, `Bearer ${tokens.issued.at(-1)}`);
  });

  test('no token to be had: the request fails with the TokenError as its cause, nothing is sent', async () => {
    const failing = await startScriptedTokenServer(() => ({ status: 401, body: { error: 'invalid_client' } }));
    const broken = createTokenSource({ tokenUrl: failing.url, clientId: 'x', clientSecret: 'interceptor-bad-secret' });
    const agent = new Agent().compose(bearerInterceptor(broken, { origins: [upstream.url] }));
    const before = upstream.received.length;
    try {
      await assert.rejects(undiciFetch(`${upstream.url}/x`, { dispatcher: agent }), (err: unknown) => (err as Error).cause instanceof TokenError);
      await assert.rejects(request(`${upstream.url}/x`, { dispatcher: agent }), TokenError);
      assert.equal(upstream.received.length, before);
    } finally {
      await broken.close();
      await agent.close();
      await failing.close();
    }
  });

  test('withAuthorization: every header form undici takes; Authorization in any case replaced', () => {
    const expected = { accept: 'a', 'x-two': ['1', '2'], authorization: 'Bearer t' };
    assert.deepEqual(withAuthorization({ Accept: 'a', 'x-two': ['1', '2'], AUTHORIZATION: 'Basic x' }, 't'), expected);
    assert.deepEqual(withAuthorization(['Accept', 'a', 'x-two', '1', 'x-two', '2', 'authorization', 'Basic x'], 't'), expected);
    assert.deepEqual(withAuthorization([['accept', 'a'], ['x-two', ['1', '2']], ['Authorization', 'x']] as never, 't'), expected);
    assert.deepEqual(withAuthorization(new Map<string, string | string[]>([['accept', 'a'], ['x-two', ['1', '2']]]) as never, 't'), expected);
    assert.deepEqual(withAuthorization(null, 't'), { authorization: 'Bearer t' });
  });
});
