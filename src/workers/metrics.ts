// /metrics with workers: every worker's metrics and the primary's own, summed by prom-client's
// AggregatorRegistry.aggregate (each metric's `aggregator`: sums for counts and histograms, the
// defaults prom-client gives its process metrics). A worker's requests live in its own process, so
// the totals add up to exactly the requests served. A worker that does not answer within
// `timeoutMs` is left out and its bearer_sidecar_worker_up is 0: the scrape never hangs on it.

import type { Worker } from 'node:cluster';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';
import { isOurs, type ToPrimary } from './messages.js';

type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

let lastId = 0;

/**
 * bearer_sidecar_worker_up of one scrape: made for it rather than kept in a Gauge of the primary's
 * registry, so two scrapes at once cannot report each other's answers.
 */
function upMetric(all: readonly string[], answered: ReadonlySet<string>): MetricsJson {
  return [
    {
      name: 'bearer_sidecar_worker_up',
      help: 'Each worker: 1 when it answered this scrape, else 0.',
      type: 'gauge',
      aggregator: 'sum',
      values: all.map((id) => ({ labels: { worker: id }, value: answered.has(id) ? 1 : 0 })),
    } as unknown as MetricsJson[number],
  ];
}

export async function workersMetrics(primary: Registry, listening: readonly { id: string; worker: Worker }[], all: readonly string[], timeoutMs = 2_000): Promise<string> {
  const [answers, own] = await Promise.all([Promise.all(listening.map(({ id, worker }) => ask(worker, timeoutMs).then((metrics) => ({ id, metrics })))), primary.getMetricsAsJSON()]);
  const answered = new Set(answers.flatMap((answer) => (answer.metrics ? [answer.id] : [])));
  const registry = AggregatorRegistry.aggregate([own, upMetric(all, answered), ...answers.flatMap((answer) => (answer.metrics ? [answer.metrics] : []))]);
  return registry.metrics();
}

function ask(worker: Worker, timeoutMs: number): Promise<MetricsJson | undefined> {
  const id = ++lastId;
  return new Promise((resolve) => {
    const done = (metrics: MetricsJson | undefined) => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      resolve(metrics);
    };
    const onMessage = (message: unknown) => {
      if (isOurs<ToPrimary>(message) && message.type === 'bsc:metrics-answer' && message.id === id) done(message.metrics as MetricsJson);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    worker.on('message', onMessage);
    if (!worker.isConnected()) return done(undefined);
    worker.send({ type: 'bsc:metrics', id }, (err: Error | null) => {
      if (err) done(undefined);
    });
  });
}
