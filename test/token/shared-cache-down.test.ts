// A replica that starts while the shared token cache is down (a primary and 2 workers) starts and
// serves with a token of its own; once the cache is up it shares, without a restart.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { audit } from '../helpers/audit.js';
import { tempFiles } from '../helpers/config.js';
import { fleetConfig, revokeAll, startCheckingUpstream, startFleet, type Fleet } from '../helpers/fleet.js';
import { encryptionKeys, redisMissing, startRedis } from '../helpers/redis.js';
import { startScriptedTokenServer } from '../helpers/servers.js';

test('a replica (workers: 2) starting while the cache is down starts and serves; once the cache is up it shares without a restart', { skip: redisMissing, timeout: 120_000 }, async () => {
  const redis = await startRedis({ running: false });
  const tokens = await startScriptedTokenServer();
  const upstream = await startCheckingUpstream();
  const dir = tempFiles('bsc-fleet-down-');
  const keyFile = dir.file('key', encryptionKeys());
  const urlFile = dir.file('url', `${redis.url}\n`);
  const config = (workers: number) => (port: number, adminPort: number) => ({
    ...fleetConfig(redis, keyFile, tokens, upstream.url, ['read'])(port, adminPort),
    workers,
    tokenCache: { urlFile, encryptionKeyFile: keyFile, connectTimeoutMs: 500 },
  });
  const first = await startFleet(1, config(2), /"msg":"workers listening"/);
  let second: Fleet | undefined;
  try {
    const [replica] = first.replicas as [Fleet['replicas'][0]];
    assert.deepEqual(await Promise.all([replica.get('/read/read'), replica.get('/read/read')]), [200, 200]);
    assert.equal(tokens.requests.length, 1);
    assert.match(replica.process.output(), /token cache unreachable/);
    await redis.start();
    const startedAt = Date.now();
    while ((await replica.metric('bearer_sidecar_token_cache_up', 'route="read"')) !== 1) {
      assert.ok(Date.now() - startedAt < 15_000, 'not connected 15 s after the cache started');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // Its next token goes to the cache: a revocation, then a second replica takes that token from there.
    revokeAll(upstream, '/read');
    assert.equal(await replica.get('/read/read'), 200);
    assert.equal(tokens.requests.length, 2);
    second = await startFleet(1, config(1));
    assert.equal(await (second.replicas[0] as Fleet['replicas'][0]).get('/read/read'), 200);
    assert.equal(tokens.requests.length, 2, 'the second replica took the token from the cache');
  } finally {
    await Promise.all([first.close(), second?.close()]);
    await Promise.all([redis.close(), tokens.close(), upstream.close()]);
  }
  audit.assertNothingLeaked([...first.output(), ...(second?.output() ?? [])]);
});
