// The upstream rejects a token (401): the sidecar fetches one new token however many requests
// were rejected, replays each replayable request once, and never loops.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { describe, test } from 'node:test';
import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { audit } from '../helpers/audit.js';
import { issue, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';
import { eventually, metricValue, route, startSidecar, type TestSidecar } from '../helpers/sidecar.js';

interface Echo {
  method: string;
  headers: Record<string, string>;
  body: { bytes: number; sha256: string };
}

interface Setup {
  tokens: ScriptedTokenServer;
  upstream: EchoUpstream;
  sidecar: TestSidecar;
  revoked: Set<string>;
  /** The token the upstream saw on each request, in order. */
  seen(): string[];
  close(): Promise<void>;
}

async function setup(options: { extra?: Record<string, unknown>; auth?: Record<string, unknown>; revokeAll?: boolean } = {}): Promise<Setup> {
  const tokens = await startScriptedTokenServer(() => ({ status: 200, body: issue(3600, { jti: Math.random().toString(36).slice(2) }) }));
  const revoked = new Set<string>();
  const upstream = await startEchoUpstream({ signingKey: 'test-signing-key', isRevoked: (token) => options.revokeAll === true || revoked.has(token) });
  const sidecar = await startSidecar({ routes: [route(tokens.url, upstream.url, options.extra, options.auth)] });
  return {
    tokens,
    upstream,
    sidecar,
    revoked,
    seen: () => upstream.received.map((r) => (r.headers.authorization ?? '').slice(7)),
    async close() {
      await sidecar.close();
      await Promise.all([tokens.close(), upstream.close()]);
    },
  };
}

/** Starts a rig, lets a first request fetch a token, revokes that token, runs `check`, cleans up. */
async function afterRevocation(options: Parameters<typeof setup>[0], check: (s: Setup) => Promise<void>): Promise<void> {
  const s = await setup(options);
  try {
    assert.equal((await fetch(`${s.sidecar.proxyUrl}/warm`)).status, 200);
    s.revoked.add(s.tokens.issued[0] as string);
    await check(s);
  } finally {
    await s.close();
  }
}

/** bearer_sidecar_upstream_401_total of the route with this outcome. */
const upstream401s = (s: Setup, outcome: 'replayed' | 'no_new_token' | 'body_not_kept') => metricValue(s.sidecar, 'bearer_sidecar_upstream_401_total', { route: 'api', outcome });

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** A request with node:http, so the test decides Content-Length, chunking and content type. */
function send(url: string, options: { method?: string; headers?: Record<string, string>; chunks?: (string | Buffer)[] }): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'POST', headers: options.headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    for (const chunk of options.chunks ?? []) req.write(chunk);
    req.end();
  });
}

describe('401 from the upstream: one refresh, one replay, never a loop', () => {
  test('100 concurrent requests rejected with the same revoked token cause exactly one token refresh, and all succeed after replay', async () => {
    const s = await setup();
    try {
      assert.equal((await fetch(`${s.sidecar.proxyUrl}/warm`)).status, 200);
      const first = s.tokens.issued[0] as string;
      s.revoked.add(first);
      const responses = await Promise.all(Array.from({ length: 100 }, (_, i) => fetch(`${s.sidecar.proxyUrl}/r/${i}`)));
      assert.deepEqual([...new Set(responses.map((r) => r.status))], [200]);
      await Promise.all(responses.map((r) => r.arrayBuffer()));
      assert.equal(s.tokens.requests.length, 2, 'one refresh for 100 rejections');
      const second = s.tokens.issued[1] as string;
      const seen = s.seen().slice(1);
      assert.equal(seen.filter((t) => t === second).length, 100, 'each request succeeded exactly once, with the new token');
      assert.ok(seen.filter((t) => t === first).length >= 1);
      assert.equal(seen.length, 100 + seen.filter((t) => t === first).length, 'one replay per rejection, no more');
      assert.equal(await upstream401s(s, 'replayed'), seen.filter((t) => t === first).length, 'each replay counted');
      assert.equal(await upstream401s(s, 'no_new_token'), 0);
    } finally {
      await s.close();
    }
  });

  test('a POST with a small body is replayed with the identical body, Content-Type and Content-Length', () =>
    afterRevocation({}, async (s) => {
      const body = JSON.stringify({ name: 'port-1', speed: 10_000, note: 'ünïcödé' });
      const response = await send(`${s.sidecar.proxyUrl}/ports`, { headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, chunks: [body] });
      assert.equal(response.status, 200);
      const echo = JSON.parse(response.text) as Echo;
      assert.equal(echo.body.sha256, sha256(body));
      assert.equal(echo.headers['content-type'], 'application/json');
      assert.equal(echo.headers['content-length'], String(Buffer.byteLength(body)));
      assert.equal(response.headers['www-authenticate'], undefined, "the 401's headers do not leak into the replayed answer");
      assert.equal(s.upstream.received.length, 3);
    }));

  test('a HEAD answered 401 is replayed too: the caller gets the 200 of the new token, not an empty answer', () =>
    afterRevocation({}, async (s) => {
      const response = await send(`${s.sidecar.proxyUrl}/head`, { method: 'HEAD' });
      assert.equal(response.status, 200);
      assert.equal(s.tokens.requests.length, 2, 'one new token');
      assert.deepEqual(s.seen().slice(-2), [s.tokens.issued[0], s.tokens.issued[1]], 'sent with the revoked token, then once with the new one');
    }));

  test('a HEAD answered 401 by an upstream that rejects every token: the caller gets the 401 after one replay', async () => {
    const s = await setup({ revokeAll: true });
    try {
      assert.equal((await send(`${s.sidecar.proxyUrl}/head`, { method: 'HEAD' })).status, 401);
      assert.equal(s.seen().length, 2);
    } finally {
      await s.close();
    }
  });

  test('a binary body without a content type is replayed byte for byte; no content type is added', () =>
    afterRevocation({}, async (s) => {
      const binary = Buffer.from([0, 1, 2, 255, 254, 10, 13, 0]);
      const response = await send(`${s.sidecar.proxyUrl}/raw`, { method: 'PUT', headers: { 'content-length': String(binary.length) }, chunks: [binary.subarray(0, 3), binary.subarray(3)] });
      assert.equal(response.status, 200);
      const echo = JSON.parse(response.text) as Echo;
      assert.equal(echo.method, 'PUT');
      assert.equal(echo.body.sha256, sha256(binary));
      assert.equal(echo.headers['content-type'], undefined);
    }));

  test('a body larger than replayBodyLimitBytes streams and is not replayed: the caller gets the 401, the next request a new token', () =>
    afterRevocation({ extra: { replayBodyLimitBytes: 1024 } }, async (s) => {
      const big = Buffer.alloc(4096, 'b');
      const response = await send(`${s.sidecar.proxyUrl}/big`, { headers: { 'content-length': String(big.length), 'content-type': 'application/octet-stream' }, chunks: [big] });
      assert.equal(response.status, 401);
      assert.match(String(response.headers['www-authenticate']), /invalid_token/);
      assert.equal(s.upstream.received.length, 2, 'not replayed');
      assert.equal(await upstream401s(s, 'body_not_kept'), 1);
      assert.equal(await upstream401s(s, 'replayed'), 0);
      const chunked = await send(`${s.sidecar.proxyUrl}/chunked`, { headers: { 'transfer-encoding': 'chunked' }, chunks: ['a', 'b'] });
      assert.equal(chunked.status, 200, 'the rejected token was dropped: the next request carries a new one');
      assert.equal(s.tokens.requests.length, 2);
    }));

  test('a chunked body (unknown length) is not replayed', () =>
    afterRevocation({}, async (s) => {
      const response = await send(`${s.sidecar.proxyUrl}/chunked`, { headers: { 'transfer-encoding': 'chunked' }, chunks: ['part-1', 'part-2'] });
      assert.equal(response.status, 401);
      assert.equal(s.upstream.received.length, 2);
    }));

  test('replayBodyLimitBytes: 0 replays only requests without a body', () =>
    afterRevocation({ extra: { replayBodyLimitBytes: 0 }, auth: { refreshOn401CooldownSeconds: 0 } }, async (s) => {
      const post = await send(`${s.sidecar.proxyUrl}/p`, { headers: { 'content-length': '2' }, chunks: ['hi'] });
      assert.equal(post.status, 401);
      await eventually(() => s.tokens.issued.length === 2); // the refresh the 401 started
      s.revoked.add(s.tokens.issued[1] as string);
      assert.equal((await fetch(`${s.sidecar.proxyUrl}/g`)).status, 200, 'a GET is replayed');
      assert.equal(s.tokens.requests.length, 3);
    }));

  test('an upstream that always answers 401: the caller gets the 401 after exactly one replay; within the cooldown no refresh, no replay', async () => {
    const s = await setup({ revokeAll: true });
    try {
      const response = await fetch(`${s.sidecar.proxyUrl}/always`, { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } });
      assert.equal(response.status, 401);
      assert.equal(((await response.json()) as { error: string }).error, 'invalid_token', "the upstream's own 401 body");
      assert.equal(s.upstream.received.length, 2, 'first attempt and one replay, never a loop');
      assert.equal(s.tokens.requests.length, 2);
      const [a, b] = s.seen();
      assert.notEqual(a, b, 'the replay carried the new token');
      assert.equal(await upstream401s(s, 'replayed'), 1, "the replay's own 401 is not counted again");

      const again = await fetch(`${s.sidecar.proxyUrl}/always`);
      assert.equal(again.status, 401);
      await again.arrayBuffer();
      assert.equal(s.upstream.received.length, 3, 'within the cooldown: passed on without a replay');
      assert.equal(s.tokens.requests.length, 2, 'within the cooldown: no token request');
      assert.equal(await upstream401s(s, 'no_new_token'), 1);
    } finally {
      await s.close();
    }
  });

  test('a 401 while the token endpoint is down: the caller gets the upstream 401 within tokenWaitMs, never a hang', () =>
    afterRevocation({ auth: { tokenWaitMs: 300, retry: { retries: 0, minDelayMs: 10, maxDelayMs: 50, maxTimeMs: 1000 } } }, async (s) => {
      s.tokens.script = () => 'hang';
      const started = Date.now();
      const response = await fetch(`${s.sidecar.proxyUrl}/x`);
      assert.equal(response.status, 401);
      await response.arrayBuffer();
      assert.ok(Date.now() - started < 3000, `answered after ${Date.now() - started} ms`);
      assert.equal(s.upstream.received.length, 2, 'no replay without a new token');
    }));
});

test('no client secret or issued token in any log line or error body of the cases above', () => audit.assertNothingLeaked());
