// `workers: 2` as a real process tree (dist/cli.js): one token for all workers. 200 cold
// concurrent requests spread over both workers cause exactly one grant; a 401 for the current
// token seen in both workers causes exactly one refresh and each rejected request is replayed once;
// /metrics sums both workers to exactly the requests sent; no token or secret is in a worker's
// environment, command line or in the logs.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { audit } from '../helpers/audit.js';
import { issue } from '../helpers/servers.js';
import { clientSecret, get, metricSum, procText, requestsByWorker, startScriptedTokenServer, startTree, startUpstream, until, type ScriptedTokenServer, type Tree, type Upstream } from './rig.js';

describe('workers: 2, one token source for all', () => {
  let tokens: ScriptedTokenServer;
  let upstream: Upstream;
  let tree: Tree;
  /** A credential named like a Node variable: the workers must not inherit it either. */
  const npmToken = 'npm-registry-token-77e1';
  let releaseFirstGrant: () => void = () => {};
  /** Requests sent through the proxy so far (every one must be counted once in /metrics). */
  let sent = 0;

  before(async () => {
    audit.addSecret(clientSecret);
    const firstGrant = new Promise<void>((resolve) => (releaseFirstGrant = resolve));
    tokens = await startScriptedTokenServer(async (request) => {
      // The first grant waits for the test: until then no worker has a token (a cold start).
      if (request.n === 1) await firstGrant;
      return { status: 200, body: issue(3600) };
    });
    upstream = await startUpstream();
    // The secret reaches the primary through the environment (${WORKERS_TEST_SECRET}): the workers must not inherit it.
    tree = await startTree({ upstream: upstream.url, tokenUrl: tokens.url, secretVariable: 'WORKERS_TEST_SECRET', env: { WORKERS_TEST_SECRET: clientSecret, MALLOC_MMAP_THRESHOLD_: '32768', GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=131072', NODE_AUTH_TOKEN: npmToken } });
  });
  after(async () => {
    releaseFirstGrant();
    if (tree) assert.equal(await tree.stop(), 0);
    await Promise.all([tokens?.close(), upstream?.close()]);
  });

  test('200 cold concurrent requests over both workers cause exactly one grant', async () => {
    const answers = Promise.all(Array.from({ length: 200 }, (_, i) => get(tree, `/cold/${i}`)));
    sent += 200;
    // Let the requests reach the workers; none can be forwarded without the token.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(upstream.seen.length, 0, 'no request was forwarded before the first token');
    releaseFirstGrant();
    const results = await answers;
    assert.deepEqual(
      results.map((r) => r.status),
      Array(200).fill(200),
    );
    assert.equal(tokens.requests.length, 1, 'exactly one grant');
    assert.equal(upstream.seen.length, 200);
    assert.ok(upstream.seen.every((auth) => auth === `Bearer ${tokens.issued[0]}`));
    // Log lines are written in batches: wait for all 200.
    await until(() => Object.values(requestsByWorker(tree)).reduce((a, b) => a + b, 0) >= 200, 5_000, 'the request log lines');
    const byWorker = requestsByWorker(tree);
    assert.ok((byWorker['1'] ?? 0) > 0 && (byWorker['2'] ?? 0) > 0, `both workers served requests: ${JSON.stringify(byWorker)}`);
    assert.equal((byWorker['1'] ?? 0) + (byWorker['2'] ?? 0), 200);
  });

  test('/metrics sums both workers: request counter and histogram count are exactly the requests sent; both workers up', async () => {
    const { status, body } = await tree.admin('/metrics');
    assert.equal(status, 200);
    assert.equal(metricSum(body, 'bearer_sidecar_requests_total'), sent);
    assert.equal(metricSum(body, 'bearer_sidecar_requests_total', { route: 'api', status_class: '2xx' }), sent);
    assert.equal(metricSum(body, 'bearer_sidecar_request_duration_seconds_count', { route: 'api' }), sent);
    assert.equal(metricSum(body, 'bearer_sidecar_request_duration_seconds_bucket', { route: 'api', le: '+Inf' }), sent);
    assert.equal(metricSum(body, 'bearer_sidecar_worker_up', { worker: '1' }), 1);
    assert.equal(metricSum(body, 'bearer_sidecar_worker_up', { worker: '2' }), 1);
    assert.equal(metricSum(body, 'bearer_sidecar_worker_restarts_total'), 0);
    // The primary's token metrics once, not once per process.
    assert.equal(metricSum(body, 'bearer_sidecar_token_fetches_total', { route: 'api', outcome: 'success' }), 1);
  });

  test('a 401 for the current token in both workers: one refresh for all, each rejected request replayed once', async () => {
    const rejected = `Bearer ${tokens.issued[0]}`;
    upstream.handler = (req, res) => {
      res.statusCode = req.headers.authorization === rejected ? 401 : 200;
      res.end(res.statusCode === 401 ? 'expired' : 'ok');
    };
    const linesBefore = tree.lines().length;
    const seenBefore = upstream.seen.length;
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => get(tree, `/rejected/${i}`)));
    sent += 40;
    assert.deepEqual(
      results.map((r) => r.status),
      Array(40).fill(200),
    );
    assert.equal(tokens.requests.length, 2, 'exactly one new grant');
    const seen = upstream.seen.slice(seenBefore);
    const fresh = `Bearer ${tokens.issued[1]}`;
    assert.ok(seen.every((auth) => auth === rejected || auth === fresh));
    assert.equal(seen.filter((auth) => auth === fresh).length, 40, 'each request succeeded once with the new token');
    assert.ok(seen.filter((auth) => auth === rejected).length <= 40, 'no request was sent twice with the rejected token');
    await until(() => tree.lines().slice(linesBefore).filter((line) => line.msg === 'request').length >= 40, 5_000, 'the request log lines');
    const batch = tree.lines().slice(linesBefore).filter((line) => line.msg === 'request');
    const workers = new Set(batch.map((line) => line.worker));
    assert.ok(workers.has('1') && workers.has('2'), 'both workers served this batch');
    const { body } = await tree.admin('/metrics');
    assert.equal(metricSum(body, 'bearer_sidecar_requests_total'), sent);
    assert.equal(metricSum(body, 'bearer_sidecar_request_duration_seconds_count'), sent);
  });

  test('no token or secret in a worker\'s environment or command line, nor in the logs', async () => {
    const pids = await tree.workerPids();
    assert.equal(Object.keys(pids).length, 2);
    for (const pid of Object.values(pids)) {
      const text = procText(pid);
      assert.ok(!text.includes(clientSecret), 'the client secret is not in a worker\'s environ or cmdline');
      assert.ok(!text.includes('WORKERS_TEST_SECRET'), 'the primary\'s other variables are not passed on');
      assert.ok(!text.includes(npmToken), 'NODE_AUTH_TOKEN is not passed on');
      // A user's malloc tuning holds in every worker.
      assert.ok(text.split('\0').includes('MALLOC_MMAP_THRESHOLD_=32768'), 'MALLOC_MMAP_THRESHOLD_ reaches the worker');
      assert.ok(text.split('\0').includes('GLIBC_TUNABLES=glibc.malloc.trim_threshold=131072'), 'GLIBC_TUNABLES reaches the worker');
      for (const token of tokens.issued) assert.ok(!text.includes(token), 'no token in a worker\'s environ or cmdline');
    }
    audit.assertNothingLeaked([tree.sidecar.output()]);
  });

  test('a worker that does not answer (stopped) is 0 in worker_up, and the scrape does not hang on it', async () => {
    const pids = await tree.workerPids();
    process.kill(pids['2'] as number, 'SIGSTOP');
    try {
      const started = Date.now();
      const { status, body } = await tree.admin('/metrics');
      const tookMs = Date.now() - started;
      assert.equal(status, 200);
      assert.ok(tookMs < 4_000, `the scrape took ${tookMs} ms`);
      assert.equal(metricSum(body, 'bearer_sidecar_worker_up', { worker: '1' }), 1);
      assert.equal(metricSum(body, 'bearer_sidecar_worker_up', { worker: '2' }), 0);
    } finally {
      process.kill(pids['2'] as number, 'SIGCONT');
    }
    const { body } = await tree.admin('/metrics');
    assert.equal(metricSum(body, 'bearer_sidecar_worker_up', { worker: '2' }), 1, 'up again once it answers');
    assert.equal(metricSum(body, 'bearer_sidecar_requests_total'), sent);
  });
});
