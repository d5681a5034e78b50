// /metrics with workers (workers/metrics.ts), over fake workers on a fake channel: the sum of the
// workers' series and the primary's, worker_up for each scrape's own answers (two scrapes at once
// do not mix them up), and a worker that does not answer left out within the bound.

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:cluster';
import { describe, test } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import { workersMetrics } from '../../src/workers/metrics.js';
import { metricSum } from './rig.js';

/** A worker that answers each metrics request with the metrics of `registry`, at once. */
function workerOf(registry: Registry): Worker {
  const worker = new EventEmitter() as EventEmitter & { isConnected(): boolean; send(message: { id: number }, callback: (err: Error | null) => void): boolean };
  worker.isConnected = () => true;
  worker.send = (message, callback) => {
    callback(null);
    void registry.getMetricsAsJSON().then((metrics) => worker.emit('message', { type: 'bsc:metrics-answer', id: message.id, metrics }));
    return true;
  };
  return worker as unknown as Worker;
}

/** A worker that answers each metrics request with `requests` after `delayMs`, or never (undefined). */
function fakeWorker(requests: () => number, delayMs: () => number | undefined): Worker {
  const worker = new EventEmitter() as EventEmitter & { isConnected(): boolean; send(message: { type: string; id: number }, callback: (err: Error | null) => void): boolean };
  worker.isConnected = () => true;
  worker.send = (message, callback) => {
    callback(null);
    const delay = delayMs();
    if (delay === undefined) return true;
    const registry = new Registry();
    new Counter({ name: 'bearer_sidecar_requests_total', help: 'h', registers: [registry] }).inc(requests());
    void registry.getMetricsAsJSON().then((metrics) => setTimeout(() => worker.emit('message', { type: 'bsc:metrics-answer', id: message.id, metrics }), delay));
    return true;
  };
  return worker as unknown as Worker;
}

describe('/metrics summed over the workers', () => {
  const primary = new Registry();

  test('requests add up over the workers; each answering worker is up, a silent one is 0 within the bound', async () => {
    const workers = [
      { id: '1', worker: fakeWorker(() => 3, () => 0) },
      { id: '2', worker: fakeWorker(() => 4, () => 0) },
      { id: '3', worker: fakeWorker(() => 100, () => undefined) },
    ];
    const started = Date.now();
    const text = await workersMetrics(primary, workers, ['1', '2', '3', '4'], 100);
    assert.ok(Date.now() - started < 1_000);
    assert.equal(metricSum(text, 'bearer_sidecar_requests_total'), 7);
    assert.deepEqual(
      ['1', '2', '3', '4'].map((worker) => metricSum(text, 'bearer_sidecar_worker_up', { worker })),
      [1, 1, 0, 0],
    );
  });

  test('two scrapes at once each report their own answers', async () => {
    // Worker 2 answers the first scrape late (after its bound) and the second at once.
    const delays = [200, 0];
    const workers = [
      { id: '1', worker: fakeWorker(() => 1, () => 0) },
      { id: '2', worker: fakeWorker(() => 1, () => delays.shift()) },
    ];
    const [first, second] = await Promise.all([workersMetrics(primary, workers, ['1', '2'], 50), new Promise<string>((resolve) => setTimeout(() => resolve(workersMetrics(primary, workers, ['1', '2'], 500)), 10))]);
    assert.equal(metricSum(first, 'bearer_sidecar_worker_up', { worker: '2' }), 0);
    assert.equal(metricSum(first, 'bearer_sidecar_requests_total'), 1);
    assert.equal(metricSum(second, 'bearer_sidecar_worker_up', { worker: '2' }), 1);
    assert.equal(metricSum(second, 'bearer_sidecar_requests_total'), 2);
  });

  test("the request histogram and counters summed over the workers are, series for series, one process's for all their requests", async () => {
    const calls: [string, string, number | undefined, number][] = [
      ['echo', 'GET', 200, 0.3],
      ['echo', 'GET', 200, 0.7],
      ['echo', 'POST', 502, 12],
      ['dead', 'GET', 503, 2_600],
      ['echo', 'GET', undefined, 40_000],
      ['dead', 'DELETE', 200, 75_000],
      ['echo', 'HEAD', 304, 1],
    ];
    const one = createMetrics(() => []);
    const workers = [createMetrics(() => []), createMetrics(() => [])];
    const record = (metrics: Metrics, [route, method, status, ms]: (typeof calls)[number]) => {
      metrics.requestStarted();
      metrics.requestFinished(route, method, status, ms);
      if (status === 502) metrics.upstreamError(route, 'connect');
      if (status === 200 && ms < 1) metrics.upstream401(route, 'replayed');
    };
    calls.forEach((call, i) => {
      record(one, call);
      record(workers[i % 2] as Metrics, call);
    });
    const names = ['bearer_sidecar_request_duration_seconds', 'bearer_sidecar_requests_total', 'bearer_sidecar_upstream_errors_total', 'bearer_sidecar_upstream_401_total'];
    /** The series of `names` in a /metrics text, sorted (the sum's series order is its own); a _sum to 9 places (added in another order). */
    const series = (text: string) =>
      text
        .split('\n')
        .filter((line) => names.some((name) => line.startsWith(name)))
        .map((line) => line.replace(/^(\S+_sum\{.*\}) (\S+)$/, (_, name: string, value: string) => `${name} ${Number(value).toFixed(9)}`))
        .sort();
    const summed = await workersMetrics(new Registry(), workers.map((metrics, i) => ({ id: String(i + 1), worker: workerOf(metrics.registry) })), ['1', '2']);
    const expected = series(await one.registry.metrics());
    assert.ok(expected.length > 40, 'every bucket of both routes');
    assert.deepEqual(series(summed), expected);
    assert.match(summed, /^# TYPE bearer_sidecar_request_duration_seconds histogram$/m);
    assert.equal(metricSum(summed, 'bearer_sidecar_request_duration_seconds_bucket', { route: 'echo', le: '0.0005' }), 1);
    assert.equal(metricSum(summed, 'bearer_sidecar_request_duration_seconds_bucket', { route: 'dead', le: '+Inf' }), 2);
  });
});
