// The shared token cache's refresh ahead in a fleet: 8 sidecar processes, tokens of 12 s, 30 s of
// traffic at every replica: the fleet refreshes once per refresh time, and no expired token goes
// out. Real time (the processes cannot share an injected clock), so this file takes 30 s and more.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { audit } from '../helpers/audit.js';
import { tempFiles } from '../helpers/config.js';
import { explain, fleetConfig, replicas, startCheckingUpstream, startFleet } from '../helpers/fleet.js';
import { encryptionKeys, redisMissing, startRedis } from '../helpers/redis.js';
import { issue, startScriptedTokenServer } from '../helpers/servers.js';

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
