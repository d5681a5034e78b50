// Composition root: config → token sources → proxy app + admin app → listen / close.
// Nothing here knows how a token is fetched or how a request is forwarded; it only wires.

import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { createAdminApp } from './admin.js';
import type { RouteConfig, SidecarConfig } from './config/types.js';
import { listenerUrl, listenProxy } from './listen.js';
import { createLogger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import { schemaController } from './no-schemas.js';
import { proxyFor } from './outbound/settings.js';
import { errorReply, upstreamErrorKind } from './proxy/errors.js';
import { guardServerOptions, installGuard } from './proxy/guard.js';
import { proxyRoute } from './proxy/routes.js';
import type { WebSocketProxy } from './proxy/websocket.js';
import type { Clock } from './token/clock.js';
import { createRouteTokenSource, type RouteTokens } from './token/create.js';
import type { Token } from './token/exchange.js';
import type { TokenSource } from './token/token-source.js';
import { warnUnverifiedTls } from './tls.js';

export interface SidecarOptions {
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Replaces the token exchange, discovery included (tests). */
  readonly fetchToken?: (route: RouteConfig, signal: AbortSignal) => Promise<Token>;
}

export interface Sidecar {
  /** The proxy listener. Like `admin`, it has no JSON schema compilers (src/no-schemas.ts): set
   * them (setValidatorCompiler, setSerializerCompiler) before adding a route with a schema. */
  readonly proxy: FastifyInstance;
  readonly admin: FastifyInstance;
  readonly tokenSources: ReadonlyMap<string, TokenSource>;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Starts the token sources and both listeners; resolves with their URLs. */
  listen(): Promise<{ proxyUrl: string; adminUrl: string }>;
  /** Stops accepting, lets in-flight requests finish for up to drainTimeoutMs, then closes all. */
  close(): Promise<void>;
}

export async function createSidecar(config: SidecarConfig, options: SidecarOptions = {}): Promise<Sidecar> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const clock = options.clock;
  for (const route of config.routes) warnUnverifiedTls(route.name, 'upstream', route.tls, logger);
  const routeTokens = new Map<string, RouteTokens>();
  const metrics = createMetrics(() => [...routeTokens.values()].map((tokens) => tokens.source.status()));
  for (const route of config.routes) {
    const { fetchToken } = options;
    routeTokens.set(
      route.name,
      createRouteTokenSource(route, {
        logger,
        onFetch: (outcome) => metrics.tokenFetch(route.name, outcome),
        ...(clock ? { clock } : {}),
        ...(fetchToken ? { fetchToken: (signal: AbortSignal) => fetchToken(route, signal) } : {}),
      }),
    );
  }
  const tokenSources = new Map([...routeTokens].map(([name, tokens]) => [name, tokens.source]));

  const proxy = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    requestIdHeader: false,
    genReqId: requestId,
    // Paths are forwarded as they came; the router must not rewrite or reject them on our behalf.
    routerOptions: { ignoreDuplicateSlashes: false, ignoreTrailingSlash: false, maxParamLength: 2048 },
    return503OnClosing: true,
    schemaController,
    ...guardServerOptions(config.inbound),
  });

  // A request that failed, before its response (the error handler) or during it (forward.ts):
  // upstream errors counted by kind, one log line with the code and reason.
  function reportFailure(request: FastifyRequest, error: Error, level: 'info' | 'warn', message: string): void {
    const route = request.routeOptions.config.sidecarRoute;
    const kind = upstreamErrorKind(error);
    if (kind && route) metrics.upstreamError(route, kind);
    request.log[level]({ route, code: (error as { code?: string }).code, reason: error.message }, message);
  }

  proxy.setErrorHandler((error: Error, request, reply) => {
    const { statusCode, body, retryAfterSeconds } = errorReply(error, request.routeOptions.config.sidecarRoute);
    reportFailure(request, error, statusCode >= 500 ? 'warn' : 'info', 'request failed');
    if (retryAfterSeconds !== undefined) reply.header('retry-after', String(retryAfterSeconds));
    reply.header('x-request-id', request.id);
    reply.code(statusCode).type('application/json').send({ ...body, requestId: request.id });
  });

  proxy.setNotFoundHandler((request, reply) => {
    reply.code(404).header('x-request-id', request.id).send({ error: 'no_route', message: `no route serves ${request.method} ${request.url.split('?')[0]}`, requestId: request.id });
  });

  // One log line and the metrics per request, when its response is done or the caller has gone
  // ('close' fires in both cases; fastify's onResponse misses the second).
  function finished(request: FastifyRequest, reply: FastifyReply): void {
    const route = request.routeOptions.config.sidecarRoute ?? 'none';
    // A WebSocket's answer is the 101 ws wrote on the socket; its line comes when the socket closes.
    const complete = reply.raw.writableFinished || reply.statusCode === 101;
    const durationMs = Math.round(reply.elapsedTime * 100) / 100;
    metrics.requestFinished(route, request.method, complete ? reply.statusCode : undefined, durationMs);
    request.log.info(
      { route, method: request.method, path: request.url.split('?', 1)[0], status: reply.statusCode, durationMs, ...(complete ? {} : { aborted: true }) },
      'request',
    );
  }
  proxy.addHook('onRequest', (request, reply, done) => {
    metrics.requestStarted();
    reply.raw.once('close', () => finished(request, reply));
    done();
  });
  // After the hook above, so refused requests are logged and counted too.
  installGuard(proxy, config.inbound);

  proxy.decorateRequest('bearerToken', '');
  // Without a websocket route there is no 'upgrade' listener, and Node serves upgrades as plain requests.
  // ws is loaded only then (start-up time and memory).
  const websockets = config.routes.some((route) => route.websocket) ? new (await import('./proxy/websocket.js')).WebSocketProxy(logger) : undefined;
  websockets?.attach(proxy);
  for (const route of config.routes) {
    await proxyRoute(proxy, {
      route,
      tokens: tokenSources.get(route.name) as TokenSource,
      sharedSecretHeader: config.inbound.sharedSecretHeader?.name,
      ...(websockets ? { websockets } : {}),
      onBrokenResponse: (request, error) => reportFailure(request, error, 'warn', 'upstream failed mid-response; response cut'),
    });
  }

  const admin = createAdminApp([...tokenSources.values()], metrics, logger);

  return {
    proxy,
    admin,
    tokenSources,
    metrics,
    logger,
    async listen() {
      for (const source of tokenSources.values()) source.start();
      await admin.listen({ host: config.admin.host, port: config.admin.port, listenTextResolver: (address) => `admin listening at ${address}` });
      await listenProxy(proxy, config.listen);
      const proxyUrl = listenerUrl(proxy);
      const adminUrl = listenerUrl(admin);
      const routes = config.routes.map((r) => {
        // Named by host:port only: a proxy URL may carry a password.
        const via = proxyFor(r.upstreamOrigin, r.outboundProxy);
        return { name: r.name, prefix: r.prefix, upstream: r.upstreamOrigin + r.upstreamBasePath, ...(via ? { outboundProxy: via.name } : {}) };
      });
      logger.info({ proxy: proxyUrl, admin: adminUrl, routes }, 'listening');
      // Out now, not with the next batch: whatever waits for this line (a supervisor, a test) sees it at once.
      logger.flush();
      return { proxyUrl, adminUrl };
    },
    async close() {
      await drain(proxy, config.drainTimeoutMs, logger, websockets);
      await Promise.all([...routeTokens.values()].map((tokens) => tokens.close()));
      await admin.close();
    },
  };
}

/**
 * Stops accepting and waits for in-flight requests and open WebSockets, at most `timeoutMs`; then
 * closes the WebSockets with 1001 (going away) and cuts what is left.
 */
async function drain(app: FastifyInstance, timeoutMs: number, logger: Logger, websockets: WebSocketProxy | undefined): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const closed = app.close();
  const timedOut = await Promise.race([
    Promise.all([closed, websockets?.idle()]).then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    logger.warn({ drainTimeoutMs: timeoutMs, websockets: websockets?.size ?? 0 }, 'drain time over; closing the remaining connections');
    // closeAllConnections() leaves upgraded sockets alone; they get a close handshake instead.
    const goingAway = websockets?.closeAll(1001, 'the sidecar is shutting down');
    app.server.closeAllConnections();
    await goingAway;
    await closed;
  }
}

/** The caller's X-Request-Id when it is a sane token (no log injection), else a new UUID. */
function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && given.length <= 128 && /^[\w.:@\/+=-]+$/.test(given) ? given : randomUUID();
}
