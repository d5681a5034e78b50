// What the server does about traces: nothing at all when the config has none (no module of
// OpenTelemetry is loaded, no hook installed); when it has, load tracing/otel.ts and give each
// proxied request its spans (server span from a hook of its own, so requests pay nothing for
// tracing when it is off).

import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { SidecarConfig } from '../config/types.js';
import type { Tracing } from './types.js';

/** How long a shutdown waits for the last spans to reach the collector. Short: a worker's whole stop is bounded (workers/primary.ts). */
export const tracingFlushMs = 2_000;

/** The process's traces, or null when the config turns none on. */
export async function startTracing(config: SidecarConfig, logger: Logger): Promise<Tracing | null> {
  if (!config.tracing) return null;
  const { url, protocol, sampler, samplerRatio } = config.tracing;
  // A worker's logger names it (workers/worker.ts); its spans do too.
  const worker = (logger.bindings() as { worker?: unknown }).worker;
  const tracing = await (await import('./otel.js')).startTracing(config.tracing, { logger, ...(worker === undefined ? {} : { worker: String(worker) }) });
  logger.info({ url, protocol, sampler, ...(sampler.endsWith('traceidratio') ? { samplerRatio } : {}) }, 'tracing: exporting spans');
  return tracing;
}

/** Gives every request of `app` its spans (request.sidecarTrace); they end when its response does or the caller leaves. */
export function traceRequests(app: FastifyInstance, tracing: Tracing): void {
  app.addHook('onRequest', (request, reply, done) => {
    const trace = tracing.request(request);
    request.sidecarTrace = trace;
    // As the metrics count it (server.ts): a response complete, or a WebSocket's 101.
    reply.raw.once('close', () => trace.end(reply.raw.writableFinished || reply.statusCode === 101 ? reply.statusCode : undefined));
    done();
  });
  app.addHook('onError', (request, _reply, error, done) => {
    request.sidecarTrace?.failed(error);
    done();
  });
}
