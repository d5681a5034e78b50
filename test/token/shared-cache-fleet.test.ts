// The shared token cache in a fleet: 8 sidecar processes (node dist/cli.js) sharing a real
// redis-server (its own, on a free port, with a password) and one token endpoint that counts its
// grants. Every replica logs at trace level; each test ends by checking that no password,
// encryption key, client secret or token is in anything they printed.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { audit } from '../helpers/audit.js';
import { tempFiles } from '../helpers/config.js';
import { startCheckingUpstream, startFleet, type CheckingUpstream, type Fleet } from '../helpers/fleet.js';
import { encryptionKeys, redisMissing, startRedis, type TestRedis } from '../helpers/redis.js';
import { issue, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';

const replicas = 8;
const clientSecret = 'fleet-client-secret-0123';
audit.addSecret(clientSecret);

function fleetConfig(redis: TestRedis, keyFile: string, tokens: ScriptedTokenServer, upstream: string, scopes: readonly string[]) {
  return (port: number, adminPort: number) => ({
    listen: { host: '127.0.0.1', port },
    admin: { host: '127.0.0.1', port: adminPort },
    logLevel: 'trace',
    // Generous bounds: 8 processes starting at once on a loaded 2-core machine can take seconds to
    // connect, and a replica that gives up on the cache fetches its own token (the failing-cache
    // tests prove the short bounds).
    tokenCache: { url: redis.url, encryptionKeyFile: keyFile, timeoutMs: 2_000, connectTimeoutMs: 10_000 },
    routes: scopes.map((scope) => ({
      name: scope,
      prefix: `/${scope}`,
      upstream,
      auth: { tokenUrl: tokens.url, clientId: 'fleet-client', clientSecret, scope: `${scope}:things`, refreshOn401CooldownSeconds: 1, retry: { retries: 3, minDelayMs: 50, maxDelayMs: 200, maxTimeMs: 5_000 } },
    })),
  });
}

/** Grants by scope. */
function grants(tokens: ScriptedTokenServer, scope: string): number {
  return tokens.requests.filter((request) => request.form.scope === `${scope}:things`).length;
}

/** Every token the upstream has seen with `path` (the route's prefix stripped) is revoked. */
function revokeAll(upstream: CheckingUpstream, path: string): void {
  for (const seen of upstream.seen) if (seen.path === path) upstream.revoked.add(seen.token);
}

/** The replicas' log lines on tokens and the cache, for a failure's message. */
function explain(fleet: Fleet): string {
  return fleet
    .output()
    .map((text, i) => text.split('\n').filter((line) => /token refreshed|token cache (connected|unreachable|reachable)|another replica/.test(line)).map((line) => `replica ${i}: ${line}`).join('\n'))
    .join('\n');
}

async function all(fleet: Fleet, path: string, each = 1): Promise<number[]> {
  return Promise.all(fleet.replicas.flatMap((replica) => Array.from({ length: each }, () => replica.get(path))));
}

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

test('8 replicas, tokens of 12 s, 30 s of traffic: refresh ahead happens once for the fleet and no expired token goes out', { skip: redisMissing, timeout: 180_000 }, async (t) => {
  const redis = await startRedis();
  const tokens = await startScriptedTokenServer(() => ({ status: 200, body: issue(12) }));
  const upstream = await startCheckingUpstream();
  const keyFile = tempFiles('bsc-fleet-key-').file('key', encryptionKeys());
  const fleet = await startFleet(replicas, fleetConfig(redis, keyFile, tokens, upstream.url, ['read']));
  const failures: number[] = [];
  let sent = 0;
  try {
    const start = tokens.requests.length;
    const until = Date.now() + 30_000;
    await Promise.all(
      fleet.replicas.map(async (replica) => {
        while (Date.now() < until) {
          const status = await replica.get('/read/read');
          sent += 1;
          if (status !== 200) failures.push(status);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }),
    );
    const granted = tokens.requests.length - start;
    t.diagnostic(`${granted} grants for ${replicas} replicas over 30 s (${tokens.requests.length} in all, the first at start-up); ${sent} requests`);
    // A 12 s token is refreshed 6 s into its life (it may be sent for 9 s): 5 refreshes in 30 s; one replica alone would make as many.
    assert.ok(tokens.requests.length <= 8, `${tokens.requests.length} grants: more than a handful:\n${explain(fleet)}`);
    assert.equal(upstream.expired, 0, 'an expired token went out');
    assert.deepEqual(failures, []);
  } finally {
    await fleet.close();
    await Promise.all([redis.close(), tokens.close(), upstream.close()]);
  }
  audit.assertNothingLeaked(fleet.output());
});

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
