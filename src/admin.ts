// The admin listener: liveness, readiness (and which config is in force), Prometheus metrics and
// the log level. Never proxied; never shows a token. The admin port may be bound beyond loopback
// (Kubernetes probes), so changing the log level is accepted from loopback callers only.

import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';
import { schemaController } from './no-schemas.js';
import type { TokenProvider } from './token/token-source.js';

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** What the admin app reports, read at each request: a reload changes both. */
export interface AdminState {
  /** The token sources of the routes in force. */
  tokenSources(): Iterable<TokenProvider>;
  /** Which config is in force: its hash (config/compare.ts) and when it was loaded. */
  config(): { readonly hash: string; readonly loadedAt: Date };
  /** With workers > 1, the primary's view of its workers; absent in one process (bodies as before). */
  workers?: AdminWorkers;
}

/** One worker as /livez and /readyz show it. */
export interface WorkerReport {
  /** "1".."N": a restarted worker keeps its number. */
  readonly worker: string;
  readonly pid?: number;
  /** starting: forked, not listening yet; listening: serving; restarting: exited, restart pending; stopping: shutting down. */
  readonly state: 'starting' | 'listening' | 'restarting' | 'stopping';
  /** The hash of the config the worker applied last. */
  readonly config?: string;
}

export interface AdminWorkers {
  reports(): readonly WorkerReport[];
  /** Whether the workers serve the proxy listener: all of them have listened, and one at least listens now. */
  serving(): boolean;
  /** The Prometheus text of every worker's metrics and the primary's, summed (workers/metrics.ts). */
  metrics(): Promise<string>;
  /** PUT /loglevel changed the primary's level: the workers follow. */
  logLevelChanged(level: string): void;
}

export function createAdminApp(state: AdminState, metrics: Metrics, logger: Logger): FastifyInstance {
  const app = Fastify({ loggerInstance: logger as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }), schemaController });

  const { workers } = state;
  // Alive while this process runs: with workers, the primary restarts a worker that died (the
  // body names each worker and its state), and restarting the whole pod would not do better.
  app.get('/livez', async () => (workers ? { status: 'ok', workers: workers.reports() } : { status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const routes = [...state.tokenSources()].map((source) => source.status());
    const { hash, loadedAt } = state.config();
    const tokensReady = routes.every((route) => route.state === 'ready' || route.state === 'refreshing');
    // With workers: not before every worker has listened; then while one at least listens (the
    // shared listener hands connections only to listening workers). A worker being restarted, or
    // one that has not yet applied the config in force, shows in `workers`.
    const ready = tokensReady && (workers?.serving() ?? true);
    reply.code(ready ? 200 : 503);
    return { ready, routes, config: { hash, loadedAt: loadedAt.toISOString() }, ...(workers ? { workers: workers.reports() } : {}) };
  });

  app.get('/metrics', async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return workers ? workers.metrics() : metrics.registry.metrics();
  });

  app.get('/loglevel', async () => ({ level: logger.level }));

  app.put<{ Body: { level?: unknown } }>('/loglevel', async (request, reply) => {
    if (!isLoopback(request.socket.remoteAddress)) {
      return reply.code(403).send({ error: 'forbidden', message: 'the log level can be changed from loopback only' });
    }
    const level = request.body?.level;
    if (typeof level !== 'string' || !(logLevels as readonly string[]).includes(level)) {
      return reply.code(400).send({ error: 'bad_request', message: `level must be one of ${logLevels.join(', ')}` });
    }
    setLogLevel(logger, level);
    workers?.logLevelChanged(level);
    return { level };
  });

  return app;
}

export function setLogLevel(logger: Logger, level: string): void {
  const from = logger.level;
  logger.level = level;
  // Logged at the level it was set to be seen whatever it is, unless silent.
  if (level !== 'silent') logger[level === 'fatal' ? 'fatal' : 'info']({ from, to: level }, 'log level changed');
}

function isLoopback(address: string | undefined): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1' || (address?.startsWith('127.') ?? false);
}
