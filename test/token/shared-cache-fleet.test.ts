// The shared token cache in a fleet: 8 sidecar processes (node dist/cli.js) sharing a real
// redis-server (its own, on a free port, with a password) and one token endpoint that counts its
// grants. Every replica logs at trace level; the test ends by checking that no password,
// encryption key, client secret or token is in anything they printed. (The refresh-ahead and the
// cache-down proofs are files of their own: shared-cache-refresh, shared-cache-down.)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { audit } from '../helpers/audit.js';
import { tempFiles } from '../helpers/config.js';
import { all, clientSecret, explain, fleetConfig, grants, replicas, revokeAll, startCheckingUpstream, startFleet } from '../helpers/fleet.js';
import { encryptionKeys, redisMissing, startRedis } from '../helpers/redis.js';
import { issue, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';

function assertNothingReadable(contents: Record<string, string>, tokens: ScriptedTokenServer): void {
  const text = JSON.stringify(contents);
  assert.ok(Object.keys(contents).length > 0, 'the cache holds entries');
  for (const token of tokens.issued) assert.ok(!text.includes(token) && !text.includes(token.split('.')[1] as string), 'an issued token (or its payload) is readable in the cache');
  for (const plain of ['fleet-client', clientSecret, 'things', 'access_token', tokens.url, '127.0.0.1']) assert.ok(!text.includes(plain), `"${plain}" is readable in the cache`);
  for (const [key, value] of Object.entries(contents)) {
    assert.match(key, /^bearer-sidecar:(token|lock):[A-Za-z0-9_-]{43}$/, 'keys are the prefix and a hash');
    if (key.includes(':token:')) assert.match(value, /^v1\.[0-9a-f]{8}\.[A-Za-z0-9_-]+$/, 'values are sealed');
  }
}

test('8 replicas: a cold burst is one grant per credential; the cache holds only ciphertext; a revocation is one grant; the cache killed and restarted mid-traffic fails no request and sharing comes back', { skip: redisMissing, timeout: 240_000 }, async (t) => {
  const redis = await startRedis();
  // Slow grants: the burst arrives while the first token is being fetched.
  const tokens = await startScriptedTokenServer(async () => {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    return { status: 200, body: issue(3600) };
  });
  const upstream = await startCheckingUpstream();
  const keyFile = tempFiles('bsc-fleet-key-').file('key', encryptionKeys(2));
  const fleet = await startFleet(replicas, fleetConfig(redis, keyFile, tokens, upstream.url, ['read', 'write']));
  try {
    await t.test('cold burst', async () => {
      const statuses = await Promise.all([all(fleet, '/read/read', 5), all(fleet, '/write/write', 5)]);
      assert.deepEqual(statuses.flat().filter((status) => status !== 200), []);
      assert.equal(grants(tokens, 'read'), 1, `one grant for the read credential:\n${explain(fleet)}`);
      assert.equal(grants(tokens, 'write'), 1, 'one grant for the write credential');
      assert.equal(new Set(upstream.seen.map((seen) => seen.token)).size, 2, 'every replica sent the same token per credential');
    });

    await t.test('raw contents', async () => {
      assertNothingReadable(await redis.contents(), tokens);
    });

    await t.test('revocation', async () => {
      const before = grants(tokens, 'read');
      revokeAll(upstream, '/read');
      const statuses = await all(fleet, '/read/read', 2);
      assert.deepEqual(statuses.filter((status) => status !== 200), [], 'each request went again with the new token');
      assert.equal(grants(tokens, 'read') - before, 1, 'one new grant for the fleet');
    });

    await t.test('cache killed and restarted mid-traffic', async () => {
      const failures: number[] = [];
      let sent = 0;
      let running = true;
      const traffic = Promise.all(
        fleet.replicas.map(async (replica) => {
          while (running) {
            const status = await replica.get('/read/read');
            sent += 1;
            if (status !== 200) failures.push(status);
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }),
      );
      await new Promise((resolve) => setTimeout(resolve, 500));
      await redis.kill();
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      await redis.start();
      const restartedAt = Date.now();
      for (const replica of fleet.replicas) {
        while ((await replica.metric('bearer_sidecar_token_cache_up', 'route="read"')) !== 1) {
          assert.ok(Date.now() - restartedAt < 15_000, 'a replica did not reconnect within 15 s');
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      const reconnectMs = Date.now() - restartedAt;
      running = false;
      await traffic;
      assert.deepEqual(failures, [], `${failures.length} of ${sent} requests failed`);
      t.diagnostic(`${sent} requests, none failed; every replica sharing again ${reconnectMs} ms after the cache came back`);
      for (const output of fleet.output()) {
        assert.ok(output.includes('token cache unreachable'), 'each replica logged the cache going down');
        assert.ok(output.includes('token cache reachable again'), 'each replica logged it coming back');
      }
      // Sharing again, in the same processes: the restarted cache is empty, and a revocation is one grant.
      const before = grants(tokens, 'read');
      revokeAll(upstream, '/read');
      const statuses = await all(fleet, '/read/read');
      assert.deepEqual(statuses.filter((status) => status !== 200), []);
      assert.equal(grants(tokens, 'read') - before, 1, 'one grant for the fleet after the restart');
    });
  } finally {
    await fleet.close();
    await Promise.all([redis.close(), tokens.close(), upstream.close()]);
  }
  const output = fleet.output();
  assert.ok(output.every((text) => text.includes('"level":"trace"')), 'the replicas logged at trace level');
  audit.assertNothingLeaked(output);
  for (const text of output) assert.ok(!text.includes(encodeURIComponent(redis.password)), 'the URL-escaped password is in a log line');
});
