// `workers: 2` as a real process tree (dist/cli.js): a worker that dies is restarted and logged
// while the other serves; SIGTERM drains the request in flight and the whole tree exits 0 with no
// process left; SIGHUP applies a new route in every worker and refuses a `workers` change; a Unix
// socket listener is shared by both workers.

import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { audit } from '../helpers/audit.js';
import { alive, clientSecret, configText, get, metricSum, requestsByWorker, startScriptedTokenServer, startTree, startUpstream, until, type ScriptedTokenServer, type Tree, type Upstream } from './rig.js';

describe('workers: 2, lifecycle', () => {
  let tokens: ScriptedTokenServer;
  let upstream: Upstream;
  let other: Upstream;
  before(async () => {
    audit.addSecret(clientSecret);
    tokens = await startScriptedTokenServer();
    upstream = await startUpstream();
    other = await startUpstream();
    other.handler = (_req, res) => res.end('other upstream');
  });
  after(async () => {
    await Promise.all([tokens.close(), upstream.close(), other.close()]);
  });

  test('a worker killed is restarted with a new pid and logged; readyz and worker_up show it meanwhile; the other serves on', async () => {
    const tree = await startTree({ upstream: upstream.url, tokenUrl: tokens.url });
    try {
      const before = await tree.workerPids();
      process.kill(before['1'] as number, 'SIGKILL');
      // During the restart backoff (0.5 s): the body names the worker; the other still listens, so the pod stays ready.
      let seenDown = false;
      await until(async () => {
        const { status, body } = await tree.admin('/readyz');
        const workers = (JSON.parse(body) as { workers: { worker: string; state: string }[] }).workers;
        if (workers.find((w) => w.worker === '1')?.state === 'restarting') {
          assert.equal(status, 200, 'one worker listening is enough to stay ready');
          const metrics = (await tree.admin('/metrics')).body;
          if (metricSum(metrics, 'bearer_sidecar_worker_up', { worker: '1' }) === 0) seenDown = true;
          assert.equal(metricSum(metrics, 'bearer_sidecar_worker_up', { worker: '2' }), 1);
          // Served meanwhile, by the other worker.
          assert.equal((await get(tree, '/while-down')).status, 200);
          return seenDown;
        }
        return false;
      }, 5_000, 'worker 1 shown as restarting');
      await until(async () => {
        const pids = await tree.workerPids();
        return pids['1'] !== undefined && pids['1'] !== before['1'] && (await tree.admin('/readyz')).status === 200 && JSON.parse((await tree.admin('/readyz')).body).workers.every((w: { state: string }) => w.state === 'listening');
      }, 10_000, 'worker 1 restarted and listening');
      const after = await tree.workerPids();
      assert.notEqual(after['1'], before['1']);
      assert.equal(after['2'], before['2']);
      assert.equal(alive(before['1'] as number), false);
      const exit = tree.lines().find((line) => line.msg === 'worker exited unexpectedly; restarting it');
      assert.ok(exit, 'the exit is logged');
      assert.equal(exit.level, 'warn');
      assert.equal(exit.signal, 'SIGKILL');
      assert.equal(exit.worker, '1');
      const metrics = (await tree.admin('/metrics')).body;
      assert.equal(metricSum(metrics, 'bearer_sidecar_worker_restarts_total'), 1);
      assert.equal(metricSum(metrics, 'bearer_sidecar_worker_up', { worker: '1' }), 1);
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => get(tree, `/after/${i}`)));
      assert.ok(results.every((r) => r.status === 200));
      assert.equal(tokens.requests.length, 1, 'the restarted worker got the primary\'s token: no new grant');
    } finally {
      assert.equal(await tree.stop(), 0);
    }
    audit.assertNothingLeaked([tree.sidecar.output()]);
  });

  test('SIGTERM with a slow request in flight: it completes, the tree exits 0, no worker is left', async () => {
    let sawSlow: () => void = () => {};
    const seen = new Promise<void>((resolve) => (sawSlow = resolve));
    upstream.handler = (req, res) => {
      if (req.url !== '/slow') return void res.end('ok');
      sawSlow();
      setTimeout(() => res.end('slow but done'), 700);
    };
    const tree = await startTree({ upstream: upstream.url, tokenUrl: tokens.url });
    const pids = Object.values(await tree.workerPids());
    assert.equal(pids.length, 2);
    const slow = get(tree, '/slow');
    await seen;
    tree.sidecar.child.kill('SIGTERM');
    assert.deepEqual(await slow, { status: 200, body: 'slow but done' });
    assert.equal(await tree.sidecar.exited, 0);
    for (const pid of pids) await until(() => !alive(pid), 2_000, `worker ${pid} gone`);
    assert.match(tree.sidecar.output(), /"worker":"\d","msg":"shutting down; draining in-flight requests"/);
    upstream.handler = (_req, res) => res.end('ok');
  });

  test('a primary killed outright (SIGKILL) leaves no worker behind', async () => {
    const tree = await startTree({ upstream: upstream.url, tokenUrl: tokens.url });
    const pids = Object.values(await tree.workerPids());
    tree.sidecar.child.kill('SIGKILL');
    await tree.sidecar.exited;
    for (const pid of pids) await until(() => !alive(pid), 10_000, `worker ${pid} gone`);
  });

  test('SIGHUP: every worker applies a changed upstream; a workers change is refused until a restart', async () => {
    const tree = await startTree({ upstream: upstream.url, tokenUrl: tokens.url });
    try {
      const text = configText({ upstream: other.url, tokenUrl: tokens.url, proxyPort: tree.proxyPort, adminPort: Number(new URL(tree.adminUrl).port) }).replace('workers: 2', 'workers: 3');
      writeFileSync(tree.configFile, text);
      tree.sidecar.child.kill('SIGHUP');
      // Applied by both workers: /readyz shows each with the config in force.
      await until(async () => {
        const body = JSON.parse((await tree.admin('/readyz')).body) as { config: { hash: string }; workers: { config?: string }[] };
        // The primary's lines (its own stdout, written in batches) may come after the workers'.
        const primaryLines = tree.lines().filter((line) => line.worker === undefined);
        return primaryLines.some((line) => line.msg === 'config reloaded') && primaryLines.some((line) => Array.isArray(line.fields)) && body.workers.every((w) => w.config === body.config.hash);
      }, 10_000, 'the reload applied by both workers');
      const refused = tree.lines().find((line) => Array.isArray(line.fields) && (line.fields as string[]).includes('workers'));
      assert.ok(refused, 'the workers change is reported as needing a restart');
      assert.equal(refused.level, 'warn');
      const linesBefore = tree.lines().length;
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => get(tree, `/new/${i}`)));
      assert.ok(results.every((r) => r.status === 200 && r.body === 'other upstream'), 'every worker forwards to the new upstream');
      await until(() => tree.lines().slice(linesBefore).filter((line) => line.msg === 'request').length >= 20, 5_000, 'request lines');
      const workers = new Set(tree.lines().slice(linesBefore).filter((line) => line.msg === 'request').map((line) => line.worker));
      assert.deepEqual([...workers].sort(), ['1', '2']);
      assert.equal(Object.keys(await tree.workerPids()).length, 2, 'still two workers');
    } finally {
      assert.equal(await tree.stop(), 0);
    }
  });

  test('a Unix socket listener is shared by both workers, with its mode set once by the primary; the log level follows the primary\'s', async () => {
    const tree = await startTree({ upstream: upstream.url, tokenUrl: tokens.url, socket: true });
    try {
      assert.equal(statSync(tree.socket as string).mode & 0o777, 0o640);
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => get(tree, `/socket/${i}`)));
      assert.ok(results.every((r) => r.status === 200 && r.body === 'ok'));
      await until(() => Object.values(requestsByWorker(tree)).reduce((a, b) => a + b, 0) >= 40, 5_000, 'request lines');
      const byWorker = requestsByWorker(tree);
      assert.ok((byWorker['1'] ?? 0) > 0 && (byWorker['2'] ?? 0) > 0, `both workers served: ${JSON.stringify(byWorker)}`);
      // The log level follows the primary's: SIGUSR2 (info → debug) and PUT /loglevel (→ trace).
      const changes = (to: string) => tree.lines().filter((line) => line.msg === 'log level changed' && line.to === to).map((line) => line.worker ?? 'primary');
      tree.sidecar.child.kill('SIGUSR2');
      await until(() => changes('debug').length === 3, 5_000, 'every process at debug');
      const put = await fetch(`${tree.adminUrl}/loglevel`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"level":"trace"}' });
      assert.equal(put.status, 200);
      await until(() => changes('trace').length === 3, 5_000, 'every process at trace');
      assert.deepEqual(changes('trace').sort(), ['1', '2', 'primary']);
    } finally {
      assert.equal(await tree.stop(), 0);
    }
  });
});
