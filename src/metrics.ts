// Prometheus metrics for the admin listener. Label values are bounded: route names come from the
// config, methods and statuses are folded into classes, and no path, token or secret is ever a
// label.
//
// The per-request work is plain arithmetic: requestStarted/requestFinished bump numbers in
// objects made once per route (and once per route, method and status), and prom-client only sees
// them at scrape time. prom-client's own inc()/observe() re-hash the label object on every call,
// which cost microseconds a request.

import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { UpstreamErrorKind } from './proxy/errors.js';
import type { Upstream401Outcome } from './proxy/forward.js';
import type { TokenStatus } from './token/token-source.js';

const methodClasses = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'OTHER'] as const;
const methodIndex = new Map<string, number>(methodClasses.slice(0, -1).map((method, i) => [method, i]));
const otherMethod = methodClasses.length - 1;

const durationName = 'bearer_sidecar_request_duration_seconds';
const durationHelp = 'Time from request received to response sent, by route.';
/**
 * Upper bounds in seconds; `+Inf` is implicit. From half a millisecond (a sidecar's own share of a
 * request, or an upstream on the same host) to 60 s (the default responseTimeoutMs), about 2.5x
 * apart, so that a p99 read from them is within a bucket's width.
 */
export const durationBuckets: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * prom-client's default metrics that are gauges named `_total` (the sum of the gauge of the same
 * name without it, by type): `promtool check metrics` rejects the name, and
 * `sum(bearer_sidecar_nodejs_active_handles)` says the same.
 */
const misnamedDefaults = ['bearer_sidecar_nodejs_active_handles_total', 'bearer_sidecar_nodejs_active_requests_total', 'bearer_sidecar_nodejs_active_resources_total'];

/**
 * The metrics of the token sources and of reloads. With workers they are the primary's alone (it
 * holds the token sources and reloads); a worker leaves them out of its answer (workers/worker.ts).
 */
export const primaryOnlyMetrics: ReadonlySet<string> = new Set([
  'bearer_sidecar_token_expiry_seconds',
  'bearer_sidecar_token_fetches_total',
  'bearer_sidecar_token_fetch_failing',
  'bearer_sidecar_config_reloads_total',
  'bearer_sidecar_config_last_reload_successful',
]);

export interface Metrics {
  readonly registry: Registry;
  requestStarted(): void;
  /** `status` is undefined when the caller went away before the response was complete. */
  requestFinished(route: string, method: string, status: number | undefined, durationMs: number): void;
  upstreamError(route: string, kind: UpstreamErrorKind): void;
  tokenFetch(route: string, outcome: 'success' | 'failure'): void;
  /** The upstream answered 401 (the first one of a request): sent again with a new token, or passed on. */
  upstream401(route: string, outcome: Upstream401Outcome): void;
  configReload(outcome: ReloadOutcome): void;
}

/** A reload applied a changed config, found nothing to change, or was refused (the old config stays). */
export type ReloadOutcome = 'success' | 'unchanged' | 'failure';
const reloadOutcomes: readonly ReloadOutcome[] = ['success', 'unchanged', 'failure'];

/** One series of bearer_sidecar_requests_total. */
interface RequestSeries {
  readonly labels: { readonly route: string; readonly method: string; readonly status_class: string };
  count: number;
}

/** The counts of one route: its duration histogram, and its request series by method and status. */
interface RouteSeries {
  readonly route: string;
  /** Observations per bucket, not cumulative: [i] counts those in (bound[i-1], bound[i]]; the last, those above every bound. */
  readonly buckets: Float64Array;
  sum: number;
  count: number;
  /** Keyed by status * 8 + method class index (status 0 when aborted); statuses of one class share a series. */
  readonly requests: Map<number, RequestSeries>;
}

export function createMetrics(tokenStatuses: () => readonly TokenStatus[]): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'bearer_sidecar_' });
  for (const name of misnamedDefaults) registry.removeSingleMetric(name);

  // The plain counts. Both maps keep first-seen order, which is the order of the series in /metrics.
  let inFlightCount = 0;
  const routes = new Map<string, RouteSeries>();
  const requestSeries = new Map<string, RequestSeries>();

  new Counter({
    name: 'bearer_sidecar_requests_total',
    help: 'Proxied requests by route, method class and status class.',
    labelNames: ['route', 'method', 'status_class'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const series of requestSeries.values()) this.inc(series.labels, series.count);
    },
  });
  // prom-client's Histogram has no way to set its counts, so the histogram is a metric object of
  // our own that returns what Histogram.get() returns: cumulative buckets with `le` (+Inf last), then
  // _sum and _count, per route. The registry only calls get() (and reset() from resetMetrics()).
  const duration = {
    name: durationName,
    help: durationHelp,
    type: 'histogram',
    aggregator: 'sum',
    async get() {
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
      for (const { route, buckets, sum, count } of routes.values()) {
        let cumulative = 0;
        for (let i = 0; i < durationBuckets.length; i++) {
          cumulative += buckets[i] as number;
          values.push({ labels: { le: durationBuckets[i] as number, route }, value: cumulative, metricName: `${durationName}_bucket` });
        }
        values.push(
          { labels: { le: '+Inf', route }, value: count, metricName: `${durationName}_bucket` },
          { labels: { route }, value: sum, metricName: `${durationName}_sum` },
          { labels: { route }, value: count, metricName: `${durationName}_count` },
        );
      }
      return { name: durationName, help: durationHelp, type: 'histogram', values, aggregator: 'sum' };
    },
    // Registry.resetMetrics() calls this: it clears every plain count, the request counter's too.
    reset() {
      routes.clear();
      requestSeries.clear();
    },
  };
  registry.registerMetric(duration as unknown as Metric);
  new Gauge({
    name: 'bearer_sidecar_requests_in_flight',
    help: 'Requests being proxied now.',
    registers: [registry],
    collect() {
      this.set(inFlightCount);
    },
  });
  const upstreamErrors = new Counter({
    name: 'bearer_sidecar_upstream_errors_total',
    help: 'Upstream failures by route and kind (connect, timeout, reset).',
    labelNames: ['route', 'kind'] as const,
    registers: [registry],
  });
  const tokenFetches = new Counter({
    name: 'bearer_sidecar_token_fetches_total',
    help: 'Token fetches (after retries) by route and outcome.',
    labelNames: ['route', 'outcome'] as const,
    registers: [registry],
    collect() {
      // Both outcomes of every route in force from its start, so that increase() sees the first failure.
      for (const { name } of tokenStatuses()) for (const outcome of ['success', 'failure'] as const) this.inc({ route: name, outcome }, 0);
    },
  });
  new Gauge({
    name: 'bearer_sidecar_token_fetch_failing',
    help: "1 while the route's last token fetch failed, with the error's stable code (BSC_TOKEN_REJECTED: the token endpoint refused the client); no series once a fetch succeeds.",
    labelNames: ['route', 'code'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const status of tokenStatuses()) if (status.lastErrorCode) this.set({ route: status.name, code: status.lastErrorCode }, 1);
    },
  });
  const upstream401s = new Counter({
    name: 'bearer_sidecar_upstream_401_total',
    help: 'First 401 answers of the upstream to a request or WebSocket upgrade, by route and outcome: replayed (sent again with a new token), no_new_token or body_not_kept (the 401 went to the caller).',
    labelNames: ['route', 'outcome'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'bearer_sidecar_token_expiry_seconds',
    help: 'Seconds until the current token of each route may no longer be sent (0 without a token).',
    labelNames: ['route'] as const,
    registers: [registry],
    collect() {
      // Only the routes in force: a route a reload removed leaves the gauge.
      this.reset();
      for (const status of tokenStatuses()) {
        this.set({ route: status.name }, status.expiresInSeconds ?? 0);
      }
    },
  });

  const reloads = new Counter({
    name: 'bearer_sidecar_config_reloads_total',
    help: 'Config reloads (SIGHUP or a watched file) by outcome: success (applied), unchanged (nothing to apply), failure (refused; the previous config stays).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  // Every outcome from the start, so rate() and alerts on failure see a series before the first one.
  for (const outcome of reloadOutcomes) reloads.inc({ outcome }, 0);
  const lastReload = new Gauge({
    name: 'bearer_sidecar_config_last_reload_successful',
    help: 'Whether the last config reload (or the start) loaded a valid config: 1, or 0 when it was refused and the previous config stays.',
    registers: [registry],
  });
  lastReload.set(1);

  function newRoute(route: string): RouteSeries {
    const series: RouteSeries = { route, buckets: new Float64Array(durationBuckets.length + 1), sum: 0, count: 0, requests: new Map() };
    routes.set(route, series);
    return series;
  }

  function newRequestSeries(routeSeries: RouteSeries, key: number, method: number, status: number | undefined): RequestSeries {
    const labels = { route: routeSeries.route, method: methodClasses[method] as string, status_class: status === undefined ? 'aborted' : `${Math.floor(status / 100)}xx` };
    const labelKey = `${labels.route}\0${labels.method}\0${labels.status_class}`;
    let series = requestSeries.get(labelKey);
    if (!series) {
      series = { labels, count: 0 };
      requestSeries.set(labelKey, series);
    }
    routeSeries.requests.set(key, series);
    return series;
  }

  return {
    registry,
    requestStarted() {
      inFlightCount++;
    },
    requestFinished(route, method, status, durationMs) {
      inFlightCount--;
      const routeSeries = routes.get(route) ?? newRoute(route);
      const methodClass = methodIndex.get(method) ?? otherMethod;
      const key = (status ?? 0) * methodClasses.length + methodClass;
      (routeSeries.requests.get(key) ?? newRequestSeries(routeSeries, key, methodClass, status)).count++;

      const seconds = durationMs / 1000;
      if (!Number.isFinite(seconds)) return; // prom-client's observe() would throw; keep the sum a number
      routeSeries.sum += seconds;
      routeSeries.count++;
      let bucket = 0;
      for (const bound of durationBuckets) {
        if (seconds <= bound) break;
        bucket++;
      }
      routeSeries.buckets[bucket] = (routeSeries.buckets[bucket] as number) + 1;
    },
    upstreamError(route, kind) {
      upstreamErrors.inc({ route, kind });
    },
    tokenFetch(route, outcome) {
      tokenFetches.inc({ route, outcome });
    },
    upstream401(route, outcome) {
      upstream401s.inc({ route, outcome });
    },
    configReload(outcome) {
      reloads.inc({ outcome });
      lastReload.set(outcome === 'failure' ? 0 : 1);
    },
  };
}
