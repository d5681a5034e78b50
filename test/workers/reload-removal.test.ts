// `workers: 2`, SIGHUP removing a route while requests of it wait for its first token: they finish
// with the generation they started in, as in one process: when the grant comes they are sent with
// its token (the primary keeps the removed route's token source for as long as a worker's request
// may wait on it, its tokenWaitMs). New requests find the route gone in every worker; the other
// route serves on. (Until issue 23 they got a 503 at the reload.)

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { issue } from '../helpers/servers.js';
import { configText, get, startScriptedTokenServer, startTree, startUpstream, until, type ScriptedTokenServer, type Tree, type Upstream } from './rig.js';

describe('workers: 2, a reload removes a route with requests waiting for its token', () => {
  let tokensA: ScriptedTokenServer;
  let tokensB: ScriptedTokenServer;
  let upstream: Upstream;
  let tree: Tree;
  let releaseA: () => void = () => {};
  const routeA = (url: string, tokenUrl: string) => `  - { name: a, prefix: /a, upstream: ${url}, auth: { tokenUrl: ${tokenUrl}, clientId: a, clientSecret: secret-a, tokenWaitMs: 30000 } }\n`;
  const routeB = (url: string, tokenUrl: string) => `  - { name: b, prefix: /b, upstream: ${url}, auth: { tokenUrl: ${tokenUrl}, clientId: b, clientSecret: secret-b } }\n`;

  before(async () => {
    const grantA = new Promise<void>((resolve) => (releaseA = resolve));
    tokensA = await startScriptedTokenServer(async () => {
      await grantA;
      return { status: 200, body: issue(3600) };
    });
    tokensB = await startScriptedTokenServer(async () => ({ status: 200, body: issue(3600) }));
    upstream = await startUpstream();
    tree = await startTree({ upstream: upstream.url, tokenUrl: tokensA.url, routes: `routes:\n${routeA(upstream.url, tokensA.url)}${routeB(upstream.url, tokensB.url)}` });
  });
  after(async () => {
    releaseA();
    if (tree) assert.equal(await tree.stop(), 0);
    await Promise.all([tokensA?.close(), tokensB?.close(), upstream?.close()]);
  });

  test('the waiting requests finish with their generation: 200 with route a\'s token once it comes; the route is gone for new requests; the other serves on', async () => {
    const waiting = Array.from({ length: 6 }, (_, i) => get(tree, `/a/${i}`));
    await until(() => tokensA.requests.length === 1, 5_000, 'the grant request for route a');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const config = tree.configFile;
    const { proxyPort } = tree;
    const adminPort = Number(new URL(tree.adminUrl).port);
    writeFileSync(config, configText({ upstream: upstream.url, tokenUrl: tokensB.url, proxyPort, adminPort, routes: `routes:\n${routeB(upstream.url, tokensB.url)}` }));
    const hashBefore = (JSON.parse((await tree.admin('/readyz')).body) as { config: { hash: string } }).config.hash;
    tree.sidecar.child.kill('SIGHUP');
    // Applied by both workers (/readyz shows each with the new config): only then is a probe sure not to wait for route a's token itself.
    await until(async () => {
      const body = JSON.parse((await tree.admin('/readyz')).body) as { config: { hash: string }; workers: { config?: string }[] };
      return body.config.hash !== hashBefore && body.workers.every((w) => w.config === body.config.hash);
    }, 10_000, 'the reload applied by both workers');
    const probes = await Promise.all([get(tree, '/a/late'), get(tree, '/a/late2'), get(tree, '/a/late3'), get(tree, '/a/late4')]);
    assert.deepEqual(probes.map((r) => r.status), [404, 404, 404, 404], 'route a is gone for new requests in both workers');
    releaseA();
    const results = await Promise.all(waiting);
    assert.deepEqual(
      results.map((result) => result.status),
      Array(6).fill(200),
      'each waiting request was sent once the grant came',
    );
    assert.equal(tokensA.requests.length, 1, 'one grant, for all of them');
    assert.equal(upstream.seen.filter((authorization) => authorization === `Bearer ${tokensA.issued[0]}`).length, 6, 'all six reached the upstream with route a\'s token');
    await until(async () => (await Promise.all([get(tree, '/a/late'), get(tree, '/a/late2'), get(tree, '/a/late3')])).every((r) => r.status === 404), 5_000, 'route a gone from both workers');
    const b = await Promise.all(Array.from({ length: 4 }, (_, i) => get(tree, `/b/${i}`)));
    assert.deepEqual(
      b.map((r) => r.status),
      Array(4).fill(200),
    );
  });
});
