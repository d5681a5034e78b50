// `workers: 2`: the primary answers a worker's ask for a token to the worker that asked, never to
// the worker restarted in its place. A restarted worker numbers its asks from 1 again, so an answer
// meant for its dead predecessor (say, route a's token, late because the token endpoint was slow)
// would otherwise settle its own ask of the same number, for another route: route a's token sent
// to route b's upstream.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { issue } from '../helpers/servers.js';
import { get, startScriptedTokenServer, startTree, startUpstream, until, type ScriptedTokenServer, type Tree, type Upstream } from './rig.js';

describe('workers: 2, a worker restarted while its ask is under way', () => {
  let tokensA: ScriptedTokenServer;
  let tokensB: ScriptedTokenServer;
  let upstreamA: Upstream;
  let upstreamB: Upstream;
  let tree: Tree;
  let releaseA: () => void = () => {};
  let releaseB: () => void = () => {};

  before(async () => {
    const grantA = new Promise<void>((resolve) => (releaseA = resolve));
    const grantB = new Promise<void>((resolve) => (releaseB = resolve));
    tokensA = await startScriptedTokenServer(async () => {
      await grantA;
      return { status: 200, body: issue(3600) };
    });
    tokensB = await startScriptedTokenServer(async () => {
      await grantB;
      return { status: 200, body: issue(3600) };
    });
    [upstreamA, upstreamB] = [await startUpstream(), await startUpstream()];
    const routes =
      `routes:\n` +
      `  - { name: a, prefix: /a, upstream: ${upstreamA.url}, auth: { tokenUrl: ${tokensA.url}, clientId: a, clientSecret: secret-a } }\n` +
      `  - { name: b, prefix: /b, upstream: ${upstreamB.url}, auth: { tokenUrl: ${tokensB.url}, clientId: b, clientSecret: secret-b } }\n`;
    tree = await startTree({ upstream: upstreamA.url, tokenUrl: tokensA.url, routes });
  });
  after(async () => {
    releaseA();
    releaseB();
    if (tree) assert.equal(await tree.stop(), 0);
    await Promise.all([tokensA?.close(), tokensB?.close(), upstreamA?.close(), upstreamB?.close()]);
  });

  test('a late answer for the dead worker does not reach its successor', async () => {
    // Both workers ask for route a's token (their first asks), which the token endpoint holds back.
    const cut = Array.from({ length: 4 }, (_, i) => get(tree, `/a/${i}`).catch(() => ({ status: 0, body: '' })));
    await until(() => tokensA.requests.length === 1, 5_000, 'the grant request for route a');
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Both workers die with their asks open; the primary restarts them.
    const before = await tree.workerPids();
    for (const pid of Object.values(before)) process.kill(pid, 'SIGKILL');
    await Promise.all(cut);
    await until(
      async () => {
        const { body } = await tree.admin('/livez');
        const workers = (JSON.parse(body) as { workers: { state: string; pid?: number }[] }).workers;
        return workers.every((w) => w.state === 'listening' && w.pid !== undefined && !Object.values(before).includes(w.pid));
      },
      10_000,
      'both workers restarted',
    );
    // The new workers ask for route b's token: again their first asks.
    const requestsB = Array.from({ length: 8 }, (_, i) => get(tree, `/b/${i}`));
    await until(() => tokensB.requests.length === 1, 5_000, 'the grant request for route b');
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Route a's token comes now: its answers are for the dead workers.
    releaseA();
    await until(() => tokensA.issued.length === 1, 5_000, 'route a\'s token');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(upstreamB.seen, [], 'no request of route b went out with route a\'s token');
    releaseB();
    const results = await Promise.all(requestsB);
    assert.deepEqual(
      results.map((r) => r.status),
      Array(8).fill(200),
    );
    assert.deepEqual(upstreamB.seen, Array(8).fill(`Bearer ${tokensB.issued[0]}`));
  });
});
