// `workers: 2`: a 401 seen by one worker drops the token for all of them at once, as in one
// process: while the new grant is under way no worker sends the rejected token again (each request
// waits for the new one), and the new grant is the only one.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { issue } from '../helpers/servers.js';
import { get, startScriptedTokenServer, startTree, startUpstream, until, untilBothWorkersServed, type ScriptedTokenServer, type Tree, type Upstream } from './rig.js';

describe('workers: 2, a 401 in one worker', () => {
  let tokens: ScriptedTokenServer;
  let upstream: Upstream;
  let tree: Tree;
  let releaseSecondGrant: () => void = () => {};

  before(async () => {
    const secondGrant = new Promise<void>((resolve) => (releaseSecondGrant = resolve));
    tokens = await startScriptedTokenServer(async (request) => {
      if (request.n === 2) await secondGrant;
      return { status: 200, body: issue(3600) };
    });
    upstream = await startUpstream();
    tree = await startTree({ upstream: upstream.url, tokenUrl: tokens.url });
  });
  after(async () => {
    releaseSecondGrant();
    if (tree) assert.equal(await tree.stop(), 0);
    await Promise.all([tokens?.close(), upstream?.close()]);
  });

  test('no worker sends the rejected token again while the new one is fetched', async () => {
    // Both workers hold the first token.
    await untilBothWorkersServed(tree, '/warm');
    const rejected = `Bearer ${tokens.issued[0]}`;
    upstream.handler = (req, res) => {
      res.statusCode = req.headers.authorization === rejected ? 401 : 200;
      res.end(res.statusCode === 401 ? 'expired' : 'ok');
    };
    const seenBefore = upstream.seen.length;
    // The first request meets the 401; its worker reports it and the primary asks for a new token (held back).
    const first = get(tree, '/first');
    await until(() => tokens.requests.length === 2, 5_000, 'the second grant request');
    // Requests on new connections, over both workers, meanwhile: none may go out with the rejected token.
    const others = Array.from({ length: 10 }, (_, i) => get(tree, `/other/${i}`));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const seenMeanwhile = upstream.seen.slice(seenBefore);
    assert.deepEqual(seenMeanwhile, [rejected], 'only the first request went out with the rejected token');
    releaseSecondGrant();
    const results = await Promise.all([first, ...others]);
    assert.deepEqual(
      results.map((r) => r.status),
      Array(11).fill(200),
    );
    assert.equal(tokens.requests.length, 2, 'one new grant for all');
    const fresh = `Bearer ${tokens.issued[1]}`;
    assert.deepEqual(upstream.seen.slice(seenBefore + 1), Array(11).fill(fresh));
  });
});
