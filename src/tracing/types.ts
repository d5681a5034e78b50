// The seam between the request path and traces. The proxy, the token fetcher and the server hold a
// `Tracing` only when traces are configured (tracing/otel.ts, loaded with `import()` then), and null
// otherwise: with traces off, a request pays one null check and nothing of OpenTelemetry is loaded.
// Types only: this module has no code, and no OpenTelemetry type leaks out of tracing/otel.ts.

import type { FastifyRequest } from 'fastify';
import type { Dispatcher } from 'undici';
import type { OutgoingHeaders } from '../proxy/headers.js';

/** One process's traces: its tracer, sampler and exporter. */
export interface Tracing {
  /** Starts the server span of a proxied request, a child of the caller's `traceparent` when it sent one. */
  request(request: FastifyRequest): RequestTrace;
  /** Runs one token grant (an attempt: `attempt` counts from 1) of `route` in a span. */
  grant<T>(route: string, attempt: number, grant: () => Promise<T>): Promise<T>;
  /** Sends the spans not yet exported, then stops; gives up after `timeoutMs`. */
  shutdown(timeoutMs: number): Promise<void>;
}

/** What a token fetcher needs of the traces (token/fetcher.ts). */
export type GrantTracing = Pick<Tracing, 'grant'>;

/** The spans of one proxied request. */
export interface RequestTrace {
  /**
   * One call to the upstream (a replay after a 401 is another): starts its client span, sets
   * `headers`' traceparent to it (tracestate as the caller sent it), and returns the handler to
   * dispatch with, which ends the span when the response has ended or failed.
   */
  upstream(method: string, headers: OutgoingHeaders, handler: Dispatcher.DispatchHandler): Dispatcher.DispatchHandler;
  /** Runs `wait` (this request waiting for its route's token) so that a grant it starts is part of this request's trace. */
  waitForToken<T>(wait: () => Promise<T>): Promise<T>;
  /** The request failed before its response (the error handler answers it): its code is the span's error.type. */
  failed(error: Error): void;
  /** The response is complete with `status`, or was cut (undefined): the server span ends. */
  end(status: number | undefined): void;
}
