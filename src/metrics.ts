// Prometheus metrics for the admin listener. Label values are bounded: route names come from the
// config, methods and statuses are folded into classes, and no path, token or secret is ever a
// label. Children are cached so the per-request cost is a Map lookup and two increments.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { UpstreamErrorKind } from './proxy/errors.js';
import type { TokenStatus } from './token/token-source.js';

const knownMethods = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export interface Metrics {
  readonly registry: Registry;
  requestStarted(): void;
  /** `status` is undefined when the caller went away before the response was complete. */
  requestFinished(route: string, method: string, status: number | undefined, durationMs: number): void;
  upstreamError(route: string, kind: UpstreamErrorKind): void;
  tokenFetch(route: string, outcome: 'success' | 'failure'): void;
}

export function createMetrics(tokenStatuses: () => readonly TokenStatus[]): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'bearer_sidecar_' });

  const requests = new Counter({
    name: 'bearer_sidecar_requests_total',
    help: 'Proxied requests by route, method class and status class.',
    labelNames: ['route', 'method', 'status_class'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'bearer_sidecar_request_duration_seconds',
    help: 'Time from request received to response sent, by route.',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const inFlight = new Gauge({ name: 'bearer_sidecar_requests_in_flight', help: 'Requests being proxied now.', registers: [registry] });
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
  });
  new Gauge({
    name: 'bearer_sidecar_token_expiry_seconds',
    help: 'Seconds until the current token of each route may no longer be sent (0 without a token).',
    labelNames: ['route'] as const,
    registers: [registry],
    collect() {
      for (const status of tokenStatuses()) {
        this.set({ route: status.name }, status.expiresInSeconds ?? 0);
      }
    },
  });

  const requestChildren = new Map<string, Counter.Internal>();
  const durationChildren = new Map<string, Histogram.Internal<'route'>>();

  return {
    registry,
    requestStarted() {
      inFlight.inc();
    },
    requestFinished(route, method, status, durationMs) {
      inFlight.dec();
      const methodClass = knownMethods.has(method) ? method : 'OTHER';
      const key = `${route}\0${methodClass}\0${status}`;
      let child = requestChildren.get(key);
      if (!child) {
        child = requests.labels({ route, method: methodClass, status_class: status === undefined ? 'aborted' : `${Math.floor(status / 100)}xx` });
        requestChildren.set(key, child);
      }
      child.inc();
      let histogram = durationChildren.get(route);
      if (!histogram) {
        histogram = duration.labels({ route });
        durationChildren.set(route, histogram);
      }
      histogram.observe(durationMs / 1000);
    },
    upstreamError(route, kind) {
      upstreamErrors.inc({ route, kind });
    },
    tokenFetch(route, outcome) {
      tokenFetches.inc({ route, outcome });
    },
  };
}
