// The shared token cache in one process: what an entry is (its key, its sealing, key rotation), the
// config (file and environment), two in-process sidecars sharing a real redis-server (metrics,
// reload) and createTokenSource. Failing caches and `check`: shared-cache-failing.test.ts.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { configFromEnv } from '../../src/config/env.js';
import { resolveConfig } from '../../src/config/load.js';
import { parseCacheUrl } from '../../src/config/token-cache.js';
import { createTokenSource } from '../../src/library/token-source.js';
import { entryKeys, EntrySeal, type SharedToken } from '../../src/token/shared-cache/entry.js';
import { audit } from '../helpers/audit.js';
import { cachedSidecar, metric, waitFor } from '../helpers/cache-sidecar.js';
import { problems, tempFiles } from '../helpers/config.js';
import { encryptionKeys, redisMissing, startRedis } from '../helpers/redis.js';
import { startScriptedTokenServer } from '../helpers/servers.js';
import { route } from '../helpers/sidecar.js';

const files = tempFiles('bsc-shared-cache-');
const keyFile = files.file('keys', encryptionKeys(2));
const token: SharedToken = { accessToken: 'the-token-itself', lifetimeSeconds: 3600, lifetimeFrom: 'expires_in', scope: 'a b', obtainedAt: 1_700_000_000_000 };

function auth(extra: Record<string, unknown> = {}) {
  return resolveConfig({ routes: [route('http://127.0.0.1:1/token', 'http://127.0.0.1:2', {}, extra)] }).routes[0]?.auth as NonNullable<ReturnType<typeof resolveConfig>['routes'][0]>['auth'];
}

test('an entry key is a hash of what changes the token, never of the secret', () => {
  const base = entryKeys(auth(), 'p:');
  assert.match(base.token, /^p:token:[A-Za-z0-9_-]{43}$/);
  assert.equal(base.lock, base.token.replace(':token:', ':lock:'));
  assert.deepEqual(entryKeys(auth({ clientSecret: 'another-secret-value' }), 'p:'), base, 'the secret does not change it');
  for (const change of [{ scope: 'x' }, { audience: 'y' }, { clientId: 'other' }, { method: 'client_secret_post' }, { extraParams: { resource: 'urn:r' } }, { tokenUrl: 'http://127.0.0.1:3/token' }]) {
    assert.notEqual(entryKeys(auth(change), 'p:').token, base.token, JSON.stringify(change));
  }
});

test('an entry is sealed: it opens only under its own key name, with a key of the file; the first key seals, any opens', () => {
  const [a, b] = [randomBytes(32), randomBytes(32)];
  const sealed = new EntrySeal([a]).seal('p:token:one', token);
  assert.ok(!sealed.includes('the-token-itself') && !Buffer.from(sealed.split('.')[2] as string, 'base64url').includes('the-token-itself'));
  assert.deepEqual(new EntrySeal([a]).open('p:token:one', sealed), token);
  assert.equal(new EntrySeal([a]).open('p:token:two', sealed), undefined, 'moved under another key name');
  assert.equal(new EntrySeal([b]).open('p:token:one', sealed), undefined, 'another encryption key');
  assert.deepEqual(new EntrySeal([b, a]).open('p:token:one', sealed), token, 'rotation: an old key still opens');
  assert.equal(new EntrySeal([a]).open('p:token:one', new EntrySeal([b, a]).seal('p:token:one', token)), undefined, 'the first key seals');
  // One character changed (the second-to-last: all six of its bits are data), to one that differs
  // from it; it used to be compared with the last character instead, so 1 run in 64 left it as it was.
  const at = sealed.length - 2;
  const tampered = sealed.slice(0, at) + (sealed[at] === 'A' ? 'B' : 'A') + sealed.slice(at + 1);
  assert.notEqual(tampered, sealed);
  assert.equal(new EntrySeal([a]).open('p:token:one', tampered), undefined);
  for (const junk of ['', 'v1', 'v1..', 'v2.x.y', 'not sealed at all']) assert.equal(new EntrySeal([a]).open('p:token:one', junk), undefined);
});

test('tokenCache config: the URL (escaped password, rediss, db), the key file, and problems that name the field, never the secret', () => {
  assert.deepEqual(parseCacheUrl('rediss://user:p%40ss%3Aw0rd@cache.internal:6380/2'), { tls: true, host: 'cache.internal', port: 6380, username: 'user', password: 'p@ss:w0rd', db: 2 });
  assert.deepEqual(parseCacheUrl('redis://cache'), { tls: false, host: 'cache', port: 6379, username: undefined, password: undefined, db: 0 });
  const base = { routes: [route('http://127.0.0.1:1/token', 'http://127.0.0.1:2')] };
  const config = resolveConfig({ ...base, tokenCache: { url: 'redis://:pw@127.0.0.1:6390/0', encryptionKeyFile: keyFile } });
  assert.equal(config.tokenCache?.keyPrefix, 'bearer-sidecar:');
  assert.equal(config.routes[0]?.tokenCache, true);
  assert.doesNotMatch(JSON.stringify(config), /pw@/, 'the URL serialises as a secret');
  const badKeys = files.file('bad-keys', `${randomBytes(32).toString('base64')}\nc2VjcmV0LWJ1dC1zaG9ydA==\n`);
  const found = problems(() =>
    resolveConfig({ ...base, tokenCache: { url: 'http://secret-host:1', encryptionKeyFile: badKeys } }),
  );
  assert.deepEqual(found, ['tokenCache.url: must be a redis:// or rediss:// URL, not http://', 'tokenCache.encryptionKeyFile: line 2 is not the base64 of 32 bytes (make a key with: openssl rand -base64 32)']);
  assert.deepEqual(problems(() => resolveConfig({ ...base, tokenCache: { encryptionKeyFile: keyFile } })), ['tokenCache.url: set url or urlFile (exactly one)']);
  assert.deepEqual(problems(() => resolveConfig({ ...base, tokenCache: { url: 'redis://c', urlFile: '/x', encryptionKeyFile: keyFile } })), ['tokenCache.url: set url or urlFile (exactly one)']);
  assert.deepEqual(problems(() => resolveConfig({ ...base, tokenCache: { url: 'redis://c' } })), ['tokenCache.encryptionKeyFile: is required']);
  assert.deepEqual(problems(() => resolveConfig({ ...base, tokenCache: { url: 'redis://c', encryptionKeyFile: '/no/such/file' } })), ['tokenCache.encryptionKeyFile: cannot read /no/such/file (ENOENT)']);
  assert.deepEqual(problems(() => resolveConfig({ routes: [{ ...base.routes[0], tokenCache: true }] })), ['routes[0].tokenCache: may only be false (the route then does not use the top-level tokenCache)']);
  assert.equal(resolveConfig({ routes: [{ ...base.routes[0], tokenCache: false }] }).routes[0]?.tokenCache, false);
  const { raw } = configFromEnv({ BEARER_SIDECAR_TOKEN_CACHE_URL_FILE: '/run/secrets/cache-url', BEARER_SIDECAR_TOKEN_CACHE_KEY_FILE: '/run/secrets/cache-key', BEARER_SIDECAR_TOKEN_CACHE_KEY_PREFIX: 'team-a:' });
  assert.deepEqual(raw.tokenCache, { urlFile: '/run/secrets/cache-url', encryptionKeyFile: '/run/secrets/cache-key', keyPrefix: 'team-a:' });
});


test('two sidecars sharing a real cache: one grant; hits, misses and the grant metric show the saving; a reload keeps the connection and a route may opt out', { skip: redisMissing }, async () => {
  const redis = await startRedis();
  const tokens = await startScriptedTokenServer();
  // A generous connect bound: on a loaded machine a sidecar that gives up on the cache fetches its own token.
  const generous = { tokenCache: { url: redis.url, encryptionKeyFile: keyFile, connectTimeoutMs: 10_000 } };
  const first = await cachedSidecar(redis.url, tokens.url, keyFile, generous);
  try {
    assert.ok(first.sidecar.tokenSources.get('api'));
    await waitFor(() => first.sidecar.tokenSources.get('api')?.status().state === 'ready');
    const second = await cachedSidecar(redis.url, tokens.url, keyFile, generous);
    try {
      await waitFor(() => second.sidecar.tokenSources.get('api')?.status().state === 'ready');
      assert.equal(tokens.requests.length, 1, 'one grant for both');
      // Both outcomes are exported at 0 from a route's start (so an alert sees the first failure).
      assert.deepEqual(await metric(second.adminUrl, 'bearer_sidecar_token_fetches_total'), [
        'bearer_sidecar_token_fetches_total{route="api",outcome="success"} 0',
        'bearer_sidecar_token_fetches_total{route="api",outcome="failure"} 0',
      ], 'the second made no grant');
      assert.deepEqual(await metric(second.adminUrl, 'bearer_sidecar_token_cache_lookups_total'), [
        'bearer_sidecar_token_cache_lookups_total{route="api",result="hit"} 1',
        'bearer_sidecar_token_cache_lookups_total{route="api",result="miss"} 0',
        'bearer_sidecar_token_cache_lookups_total{route="api",result="error"} 0',
      ]);
      assert.deepEqual(await metric(first.adminUrl, 'bearer_sidecar_token_fetches_total'), [
        'bearer_sidecar_token_fetches_total{route="api",outcome="success"} 1',
        'bearer_sidecar_token_fetches_total{route="api",outcome="failure"} 0',
      ]);
      assert.deepEqual(await metric(first.adminUrl, 'bearer_sidecar_token_cache_up'), ['bearer_sidecar_token_cache_up{route="api"} 1']);
      assert.equal((await metric(first.adminUrl, 'bearer_sidecar_token_cache_lock_waits_total')).length, 2);
      assert.equal((await metric(first.adminUrl, 'bearer_sidecar_token_cache_errors_total')).length, 6);

      // A changed tokenCache needs a restart; a route's tokenCache: false applies (a token source of its own).
      const routes = [route(tokens.url, 'http://127.0.0.1:9', { prefix: '/api', tokenCache: false })];
      const result = await second.reload({ tokenCache: { url: redis.url, encryptionKeyFile: keyFile, keyPrefix: 'other:' }, routes });
      assert.equal(result.outcome, 'success');
      assert.deepEqual(result.restartNeeded, ['tokenCache']);
      await waitFor(() => second.sidecar.tokenSources.get('api')?.status().state === 'ready');
      assert.equal(tokens.requests.length, 2, 'the route that opted out fetched its own');
      assert.deepEqual(await metric(second.adminUrl, 'bearer_sidecar_token_cache_up'), [], 'no route uses the cache now');
    } finally {
      await second.close();
    }
  } finally {
    await first.close();
    await Promise.all([redis.close(), tokens.close()]);
  }
  audit.assertNothingLeaked();
});


test('createTokenSource takes the same tokenCache: two sources in a program, one grant', { skip: redisMissing }, async () => {
  const redis = await startRedis();
  const tokens = await startScriptedTokenServer();
  const options = { tokenCache: { url: redis.url, encryptionKeyFile: keyFile } };
  const authOptions = { tokenUrl: tokens.url, clientId: 'lib-client', clientSecret: 'lib-secret-value' };
  const one = createTokenSource(authOptions, options);
  try {
    const first = await one.getToken();
    const two = createTokenSource(authOptions, options);
    try {
      assert.equal(await two.getToken(), first);
      assert.equal(tokens.requests.length, 1);
    } finally {
      await two.close();
    }
  } finally {
    await one.close();
    await Promise.all([redis.close(), tokens.close()]);
  }
});
