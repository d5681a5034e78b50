// Traces with OpenTelemetry: the SDK's tracer provider (sampler, batch processor, resource), the
// OTLP/HTTP exporter (protobuf or JSON) and W3C trace-context propagation, behind the small seam of
// tracing/types.ts. Loaded only when the config turns traces on (tracing/start.ts); the
// OpenTelemetry packages are imported here, with import(), and nowhere else (in the CLI bundle the
// SDK and exporters stay in node_modules, loaded only then: scripts/bundle.mjs).
//
// What a span records is chosen here, in one place: method, route, path without its query,
// status, upstream host and port, grant attempt and outcome, error codes. Never a header value,
// a query string, a token, a credential or an assertion.

import { readFileSync } from 'node:fs';
import type { Context, Span } from '@opentelemetry/api';
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import type { TracingConfig } from '../config/types.js';
import type { OutgoingHeaders } from '../proxy/headers.js';
import type { RequestTrace, Tracing } from './types.js';

export interface TracingOptions {
  readonly logger: Logger;
  /** The worker's slot (workers > 1), a resource attribute: which process a span comes from. */
  readonly worker?: string;
}

/** The instrumentation scope's name on every span. */
const scopeName = 'bearer-sidecar';

/**
 * A grant of one route under way. Its span is made when it ends (with the time it started): by then
 * it is known whether a request waited for it, and so whose trace it belongs to. The token source
 * fetches once for every request that waits (single flight), often before any asks (at start-up,
 * ahead of expiry); the first request found waiting during the grant is its parent.
 */
interface PendingGrant {
  parent: Context | undefined;
}

export async function startTracing(config: TracingConfig, { logger, worker }: TracingOptions): Promise<Tracing> {
  const [api, core, resources, sdk, semconv, { OTLPTraceExporter }] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/core'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/semantic-conventions'),
    config.protocol === 'http/json' ? import('@opentelemetry/exporter-trace-otlp-http') : import('@opentelemetry/exporter-trace-otlp-proto'),
  ]);
  const { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, defaultTextMapGetter, defaultTextMapSetter } = api;
  const { ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_HTTP_ROUTE, ATTR_URL_PATH, ATTR_URL_SCHEME, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT, ATTR_ERROR_TYPE, ATTR_HTTP_REQUEST_RESEND_COUNT } = semconv;

  // The SDK reports export failures through these two; they reach the log as warnings (the
  // collector's answer, never a span's content, which holds nothing secret anyway).
  api.diag.setLogger(
    {
      error: (message) => logger.warn({ reason: message }, 'tracing: OpenTelemetry error'),
      warn: (message) => logger.warn({ reason: message }, 'tracing: OpenTelemetry warning'),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    { logLevel: api.DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  core.setGlobalErrorHandler((error) => logger.warn({ reason: error instanceof Error ? error.message : String(error) }, 'tracing: spans could not be exported'));

  const ratio = new sdk.TraceIdRatioBasedSampler(config.samplerRatio);
  const samplers = {
    always_on: () => new sdk.AlwaysOnSampler(),
    always_off: () => new sdk.AlwaysOffSampler(),
    traceidratio: () => ratio,
    parentbased_always_on: () => new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() }),
    parentbased_always_off: () => new sdk.ParentBasedSampler({ root: new sdk.AlwaysOffSampler() }),
    parentbased_traceidratio: () => new sdk.ParentBasedSampler({ root: ratio }),
  } as const;
  const resource = resources
    .defaultResource()
    .merge(resources.resourceFromAttributes(config.resourceAttributes))
    .merge(
      resources.resourceFromAttributes({
        [semconv.ATTR_SERVICE_NAME]: config.serviceName,
        [semconv.ATTR_SERVICE_VERSION]: packageVersion(),
        'process.pid': process.pid,
        ...(worker === undefined ? {} : { 'bearer_sidecar.worker': worker }),
      }),
    );
  const headers = config.headers && Object.fromEntries(Object.entries(config.headers).map(([name, value]) => [name, value.read()]));
  const exporter = new OTLPTraceExporter({ url: config.url, ...(headers ? { headers } : {}) });
  const provider = new sdk.TracerProvider({ resource, sampler: samplers[config.sampler](), spanProcessors: [new sdk.BatchSpanProcessor({ exporter })] });
  const tracer = provider.getTracer(scopeName, packageVersion());
  const propagator = new core.W3CTraceContextPropagator();
  /** Per route: the requests waiting for a token now, and the grants under way. */
  const waiting = new Map<string, Set<Context>>();
  const pending = new Map<string, Set<PendingGrant>>();
  const upstreamPorts = new Map<string, { address: string; port: number }>();

  /** The upstream's host and port (a route's origin, parsed once). */
  function upstreamOf(origin: string): { address: string; port: number } {
    let target = upstreamPorts.get(origin);
    if (!target) {
      const url = new URL(origin);
      target = { address: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port) || (url.protocol === 'https:' ? 443 : 80) };
      upstreamPorts.set(origin, target);
    }
    return target;
  }

  /** Ends a client span of an HTTP call: an error from 400 on, as the semantic conventions say of clients. */
  function endClient(span: Span, status: number | undefined, error: Error | undefined): void {
    if (status !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
    if (error !== undefined) {
      span.setAttribute(ATTR_ERROR_TYPE, errorType(error));
      span.setStatus({ code: SpanStatusCode.ERROR, message: errorType(error) });
    } else if (status !== undefined && status >= 400) {
      span.setAttribute(ATTR_ERROR_TYPE, String(status));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
  }

  class Request implements RequestTrace {
    readonly #request: FastifyRequest;
    readonly #span: Span;
    readonly #context: Context;
    #calls = 0;
    /** The code of the error the sidecar answered with (BSC_UPSTREAM_UNREACHABLE...). */
    #error: string | undefined;

    constructor(request: FastifyRequest) {
      this.#request = request;
      const method = request.method;
      const parent = propagator.extract(ROOT_CONTEXT, request.raw.headers, defaultTextMapGetter);
      const url = request.raw.url as string;
      const query = url.indexOf('?');
      this.#span = tracer.startSpan(
        method,
        { kind: SpanKind.SERVER, attributes: { [ATTR_HTTP_REQUEST_METHOD]: method, [ATTR_URL_PATH]: query < 0 ? url : url.slice(0, query), [ATTR_URL_SCHEME]: 'http' } },
        parent,
      );
      this.#context = trace.setSpan(parent, this.#span);
    }

    upstream(method: string, headers: OutgoingHeaders, handler: Dispatcher.DispatchHandler): Dispatcher.DispatchHandler {
      const route = this.#request.sidecarRoute;
      const attributes: Record<string, string | number> = { [ATTR_HTTP_REQUEST_METHOD]: method };
      if (route) {
        const { address, port } = upstreamOf(route.config.upstreamOrigin);
        attributes[ATTR_SERVER_ADDRESS] = address;
        attributes[ATTR_SERVER_PORT] = port;
        attributes['bearer_sidecar.route'] = route.name;
      }
      if (this.#calls > 0) attributes[ATTR_HTTP_REQUEST_RESEND_COUNT] = this.#calls;
      this.#calls += 1;
      const span = tracer.startSpan(method, { kind: SpanKind.CLIENT, attributes }, this.#context);
      // The caller's traceparent names its own span; the upstream's parent is ours. A tracestate
      // without a traceparent the sidecar could read belongs to no trace it continues.
      delete headers.traceparent;
      delete headers.tracestate;
      propagator.inject(trace.setSpan(this.#context, span), headers, defaultTextMapSetter);
      return new TracedCall(span, handler);
    }

    async waitForToken<T>(wait: () => Promise<T>): Promise<T> {
      const route = this.#request.sidecarRoute?.name;
      if (route === undefined) return wait();
      const context = this.#context;
      for (const grant of pending.get(route) ?? []) grant.parent ??= context;
      const waiters = waiting.get(route) ?? waiting.set(route, new Set()).get(route)!;
      waiters.add(context);
      try {
        return await wait();
      } finally {
        waiters.delete(context);
      }
    }

    failed(error: Error): void {
      this.#error = errorType(error);
    }

    end(status: number | undefined): void {
      const span = this.#span;
      const route = this.#request.sidecarRoute;
      if (route) {
        const template = route.prefix.replace(/\/?$/, '/*');
        span.updateName(`${this.#request.method} ${template}`);
        span.setAttribute(ATTR_HTTP_ROUTE, template);
        span.setAttribute('bearer_sidecar.route', route.name);
      }
      if (status === undefined) {
        // The caller went away before the response was complete.
        span.setAttribute('bearer_sidecar.aborted', true);
      } else {
        span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
        if (status >= 500) {
          span.setAttribute(ATTR_ERROR_TYPE, this.#error ?? String(status));
          span.setStatus({ code: SpanStatusCode.ERROR, ...(this.#error ? { message: this.#error } : {}) });
        }
      }
      span.end();
    }
  }

  /** The dispatch handler of one traced upstream call: the proxy's own (forward.ts), and the span's end. */
  class TracedCall implements Dispatcher.DispatchHandler {
    readonly #span: Span;
    readonly #inner: Dispatcher.DispatchHandler;
    #status: number | undefined;

    constructor(span: Span, inner: Dispatcher.DispatchHandler) {
      this.#span = span;
      this.#inner = inner;
    }

    onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
      this.#inner.onRequestStart?.(controller, context);
    }

    onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
      this.#status = statusCode;
      this.#inner.onResponseStart?.(controller, statusCode, headers, statusMessage);
    }

    onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
      this.#inner.onResponseData?.(controller, chunk);
    }

    onResponseEnd(controller: Dispatcher.DispatchController, trailers: Record<string, string | string[] | undefined>): void {
      endClient(this.#span, this.#status, undefined);
      this.#inner.onResponseEnd?.(controller, trailers);
    }

    onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
      endClient(this.#span, this.#status, error);
      this.#inner.onResponseError?.(controller, error);
    }
  }

  return {
    request: (request) => new Request(request),

    async grant(route, attempt, grant) {
      const startTime = performance.timeOrigin + performance.now();
      const waiter = waiting.get(route)?.values().next().value;
      const record: PendingGrant = { parent: waiter };
      const grants = pending.get(route) ?? pending.set(route, new Set()).get(route)!;
      grants.add(record);
      const attributes: Record<string, string | number> = { 'bearer_sidecar.route': route, 'bearer_sidecar.token.attempt': attempt };
      let error: unknown;
      try {
        const result = await grant();
        attributes['bearer_sidecar.token.outcome'] = 'success';
        return result;
      } catch (err) {
        // A TokenError's code (BSC_TOKEN_REJECTED...) and status; its message can quote the
        // endpoint's error_description, so it stays out (a span is not scrubbed as an error is).
        error = err;
        const status = (err as { status?: unknown }).status;
        if (typeof status === 'number') attributes[ATTR_HTTP_RESPONSE_STATUS_CODE] = status;
        attributes['bearer_sidecar.token.outcome'] = 'failure';
        attributes[ATTR_ERROR_TYPE] = errorType(err);
        throw err;
      } finally {
        grants.delete(record);
        const span = tracer.startSpan('token grant', { kind: SpanKind.CLIENT, attributes, startTime }, record.parent ?? ROOT_CONTEXT);
        if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: errorType(error) });
        span.end();
      }
    },

    async shutdown(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const late = await Promise.race([
        provider.shutdown().then(
          () => false,
          () => false,
        ),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
      ]);
      clearTimeout(timer);
      if (late) logger.warn({ timeoutMs }, 'tracing: the last spans were not exported in time; dropped');
    },
  };
}

/** An error's stable code (BSC_..., or Node's and undici's: ECONNREFUSED, UND_ERR_...), else its class. */
function errorType(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(code) ? code : ((error as Error).name ?? 'Error');
}

let version: string | undefined;
/** bearer-sidecar's version: package.json is one level up from the CLI bundle (dist/main.js), two from this module (dist/tracing/). */
function packageVersion(): string {
  if (version !== undefined) return version;
  for (const path of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'bearer-sidecar' && pkg.version) return (version = pkg.version);
    } catch {
      // not this one
    }
  }
  return (version = 'unknown');
}
