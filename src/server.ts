// Composition root: config → generation (token sources, routes) → proxy app + admin app →
// listen / reload / close. Nothing here knows how a token is fetched or how a request is
// forwarded; it only wires. A reload builds the next generation (generation.ts) and swaps it in
// with one assignment; each request keeps the route it arrived on.

import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { createAdminApp, setLogLevel, type AdminWorkers } from './admin.js';
import { sameValue } from './config/compare.js';
import { watchConfigFile, type SecretWatch } from './config/secret-watch.js';
import type { RouteConfig, SidecarConfig } from './config/types.js';
import { ConfigError } from './errors.js';
import { keepSocketSettings, nextGeneration, type Generation, type GenerationChange, type RouteFactories, type RouteTokens } from './generation.js';
import { configuredUrl, listenerUrl, listenProxy } from './listen.js';
import { createLogger } from './logger.js';
import { createMetrics, type Metrics, type ReloadOutcome } from './metrics.js';
import { schemaController } from './no-schemas.js';
import { proxyFor } from './config/outbound-proxy.js';
import { errorReply, upstreamErrorKind } from './proxy/errors.js';
import { guardServerOptions, installGuard } from './proxy/guard.js';
import { mountProxy, ProxyRoute } from './proxy/routes.js';
import type { WebSocketProxy } from './proxy/websocket.js';
import type { Clock } from './token/clock.js';
import { createRouteTokenSource } from './token/create.js';
import type { Token } from './token/exchange.js';
import type { SharedTokenCache } from './token/shared-cache/types.js';
import type { TokenProvider } from './token/token-source.js';
import { warnUnverifiedTls } from './tls.js';
import { startTracing, traceRequests, tracingFlushMs } from './tracing/start.js';
import type { Tracing } from './tracing/types.js';

export interface SidecarOptions {
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Replaces the token exchange, discovery included (tests). */
  readonly fetchToken?: (route: RouteConfig, signal: AbortSignal) => Promise<Token>;
  /** Where the config comes from: reload() calls it again (the CLI reads its file or the environment again). */
  readonly loadConfig?: () => SidecarConfig;
  /** A config file to watch once listening: when its text changes, the sidecar reloads (--watch-config). */
  readonly watchConfigFile?: string;
  /** The text `config` was loaded from: an edit of the watched file made before listening is then a change too. */
  readonly watchConfigLoadedText?: string;
  /**
   * Makes a route's tokens in place of the standard token source; `standard` makes that one, told
   * of each fetch's outcome by `onFetch` besides the metrics. With workers, the primary wraps it
   * (to pass each token on) and a worker replaces it (a copy of the primary's); see src/workers/.
   */
  readonly tokens?: (route: RouteConfig, standard: (onFetch?: (outcome: 'success' | 'failure') => void) => RouteTokens) => RouteTokens;
  /**
   * What listen() opens: both listeners (the default), only the proxy (a worker: the primary has
   * the admin listener) or only the admin listener (the primary of workers, which serve the proxy).
   */
  readonly listeners?: 'both' | 'proxy' | 'admin';
  /** The proxy's socket is shared by a cluster whose primary prepares the socket file (listen.ts). */
  readonly sharedSocket?: boolean;
  /** The workers the admin listener reports on (the primary of workers). */
  readonly adminWorkers?: AdminWorkers;
  /** The hash that names a config (a worker takes its primary's, for configs that cross without credentials); else config/compare.ts's. */
  readonly configHash?: (config: SidecarConfig) => string | undefined;
  /** Told of each reload that changed the config in force (the primary passes it on to its workers). */
  readonly onReload?: (live: LiveConfig) => void;
}

/** The config in force: as loaded (less what needs a restart), its hash and when it was loaded. */
export interface LiveConfig {
  readonly config: SidecarConfig;
  /** 12 hex digits naming the config; secrets count by their source, never their value (config/compare.ts). */
  readonly hash: string;
  readonly loadedAt: Date;
}

export interface ReloadResult {
  /** `ignored`: the sidecar is shutting down. */
  readonly outcome: ReloadOutcome | 'ignored';
  /** The hash of the config in force afterwards. */
  readonly hash: string;
  /** Why a failed reload changed nothing: `field.path: what is wrong`, as at start-up. */
  readonly problems?: readonly string[];
  /** Changed settings that need a restart ("listen.port"); the rest of the reload was applied. */
  readonly restartNeeded?: readonly string[];
}

export interface Sidecar {
  /** The proxy listener. Like `admin`, it has no JSON schema compilers (src/no-schemas.ts): set
   * them (setValidatorCompiler, setSerializerCompiler) before adding a route with a schema. */
  readonly proxy: FastifyInstance;
  readonly admin: FastifyInstance;
  /** The token sources of the routes in force, by route name. */
  readonly tokenSources: ReadonlyMap<string, TokenProvider>;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly live: LiveConfig;
  /** Starts the token sources and both listeners; resolves with their URLs. */
  listen(): Promise<{ proxyUrl: string; adminUrl: string }>;
  /**
   * Reads the config again (`load`, else options.loadConfig) and applies it without dropping a
   * connection: new requests see the new routes, requests and WebSockets in flight finish on the
   * route they started on. A config that does not load changes nothing (one error line names its
   * problems); settings that need a new socket are kept as they were. Reloads run one at a time.
   */
  reload(load?: () => SidecarConfig): Promise<ReloadResult>;
  /** Stops accepting, lets in-flight requests finish for up to drainTimeoutMs, then closes all. */
  close(): Promise<void>;
}

export async function createSidecar(config: SidecarConfig, options: SidecarOptions = {}): Promise<Sidecar> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  // The generation in force (generation.ts); assigned below, replaced whole by each reload.
  let current: Generation;
  const inForce = (): Generation => current;
  const metrics = createMetrics(() => [...current.tokenSources.values()].map((source) => source.status()));
  // null unless the config turns traces on; then OpenTelemetry is loaded (tracing/).
  const tracing = await startTracing(config, logger);
  const proxy = createProxyApp(config, logger);
  const { notFound, reportFailure } = observeRequests(proxy, metrics, inForce);
  if (tracing) traceRequests(proxy, tracing);
  // After the hooks above, so refused requests are logged, counted and traced too.
  const guard = installGuard(proxy, config.inbound);
  proxy.decorateRequest('bearerToken', '');
  proxy.decorateRequest('sidecarRoute', null);
  proxy.decorateRequest('sidecarTrace', null);
  const websockets = webSocketSupport(proxy, logger);
  await websockets.prepare(config);
  await mountProxy(proxy, notFound);
  // The shared token cache, loaded only when configured (it is the primary's with workers: a
  // worker's config has none). Set at start-up: a reload that changes it needs a restart.
  const sharedCache = config.tokenCache && (await (await import('./token/shared-cache/open.js')).openSharedTokenCache(config.tokenCache, { logger, registry: metrics.registry }));
  const make = routeFactories(options, logger, metrics, tracing, websockets, reportFailure, sharedCache);
  current = nextGeneration(config, undefined, make, undefined, options.configHash?.(config)).generation;
  const reloader = createReloader({ logger, metrics, guard, websockets, make, options, inForce, swap: (next) => (current = next) });
  const admin = createAdminApp({ tokenSources: () => current.tokenSources.values(), config: () => current, ...(options.adminWorkers ? { workers: options.adminWorkers } : {}) }, metrics, logger);
  const listeners = options.listeners ?? 'both';
  let configWatch: SecretWatch | undefined;

  return {
    proxy,
    admin,
    get tokenSources() {
      return current.tokenSources;
    },
    metrics,
    logger,
    get live(): LiveConfig {
      return current;
    },
    reload: reloader.reload,
    async listen() {
      reloader.started();
      for (const source of current.tokenSources.values()) source.start();
      // Socket settings never change at a reload: these are the start-up ones.
      if (listeners !== 'proxy') await admin.listen({ host: config.admin.host, port: config.admin.port, listenTextResolver: (address) => `admin listening at ${address}` });
      if (listeners !== 'admin') await listenProxy(proxy, config.listen, { shared: options.sharedSocket === true });
      const proxyUrl = listeners === 'admin' ? configuredUrl(config.listen) : listenerUrl(proxy);
      const adminUrl = listeners === 'proxy' ? '' : listenerUrl(admin);
      const { routes } = current.config;
      logger.info(
        { proxy: proxyUrl, ...(adminUrl ? { admin: adminUrl } : {}), config: current.hash, loadedAt: current.loadedAt, routes: routes.map(routeSummary) },
        'listening',
      );
      if (options.watchConfigFile) {
        const loadedText = options.watchConfigLoadedText;
        configWatch = watchConfigFile(options.watchConfigFile, () => void reloader.reload(), { logger, ...(loadedText === undefined ? {} : { loadedText }) });
      }
      // Out now, not with the next batch: whatever waits for this line (a supervisor, a test) sees it at once.
      logger.flush();
      return { proxyUrl, adminUrl };
    },
    async close() {
      configWatch?.close();
      // A reload under way finishes first; any after it is ignored.
      await reloader.closing();
      await drain(proxy, current.config.drainTimeoutMs, logger, websockets.proxy);
      const routes = [...current.routes.values()];
      await reloader.closeRetiredTokens();
      await Promise.all([...routes.map((route) => route.tokens.close()), ...routes.map((route) => route.proxy.close()), ...reloader.retired().map((route) => route.close())]);
      await sharedCache?.close();
      await admin.close();
      await tracing?.shutdown(tracingFlushMs);
    },
  };
}

/** The proxy listener's fastify instance: paths as they came, request ids, no schema compilers. */
function createProxyApp(config: SidecarConfig, logger: Logger): FastifyInstance {
  return Fastify({
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
}

/** A request that failed: upstream errors counted by kind, one log line with the code and reason. */
type ReportFailure = (request: FastifyRequest, error: Error, level: 'info' | 'warn', message: string) => void;

/**
 * Each request's route (from the generation in force when it arrives), its log line and metrics
 * when it is done, and the JSON answers to errors and to paths no route serves.
 */
function observeRequests(proxy: FastifyInstance, metrics: Metrics, inForce: () => Generation): { notFound: (request: FastifyRequest, reply: FastifyReply) => void; reportFailure: ReportFailure } {
  // A request that failed, before its response (the error handler) or during it (forward.ts).
  const reportFailure: ReportFailure = (request, error, level, message) => {
    const route = request.sidecarRoute?.name;
    const kind = upstreamErrorKind(error);
    if (kind && route) metrics.upstreamError(route, kind);
    request.log[level]({ route, code: (error as { code?: string }).code, reason: error.message }, message);
  };

  proxy.setErrorHandler((error: Error, request, reply) => {
    const { statusCode, body, retryAfterSeconds } = errorReply(error, request.sidecarRoute?.name);
    reportFailure(request, error, statusCode >= 500 ? 'warn' : 'info', 'request failed');
    if (retryAfterSeconds !== undefined) reply.header('retry-after', String(retryAfterSeconds));
    reply.header('x-request-id', request.id);
    reply.code(statusCode).type('application/json').send({ ...body, requestId: request.id });
  });

  // A path no route serves, or a method no route carries.
  function notFound(request: FastifyRequest, reply: FastifyReply): void {
    // The route its path matched does not serve this method: the request is no route's.
    request.sidecarRoute?.release();
    request.sidecarRoute = null;
    reply.code(404).header('x-request-id', request.id).send({ error: 'no_route', message: `no route serves ${request.method} ${request.url.split('?')[0]}`, requestId: request.id });
  }
  proxy.setNotFoundHandler(notFound);

  // One log line and the metrics per request, when its response is done or the caller has gone
  // ('close' fires in both cases; fastify's onResponse misses the second).
  function finished(request: FastifyRequest, reply: FastifyReply): void {
    const route = request.sidecarRoute;
    const name = route?.name ?? 'none';
    // A WebSocket's answer is the 101 ws wrote on the socket; its line comes when the socket closes.
    const complete = reply.raw.writableFinished || reply.statusCode === 101;
    const durationMs = Math.round(reply.elapsedTime * 100) / 100;
    metrics.requestFinished(name, request.method, complete ? reply.statusCode : undefined, durationMs);
    request.log.info(
      { route: name, method: request.method, path: request.url.split('?', 1)[0], status: reply.statusCode, durationMs, ...(complete ? {} : { aborted: true }) },
      'request',
    );
    route?.release();
  }
  proxy.addHook('onRequest', (request, reply, done) => {
    metrics.requestStarted();
    // The request's route, from the generation in force now: it keeps it whatever a reload does meanwhile.
    const route = inForce().table.match(request.raw.url as string);
    if (route !== undefined) {
      route.hold();
      request.sidecarRoute = route;
    }
    reply.raw.once('close', () => finished(request, reply));
    done();
  });
  return { notFound, reportFailure };
}

interface WebSocketSupport {
  /** The WebSocket proxy, once a config has had a websocket route. */
  readonly proxy: WebSocketProxy | undefined;
  /** Loads ws and attaches the WebSocket proxy when `config` is the first with a websocket route. */
  prepare(config: SidecarConfig): Promise<void>;
}

/**
 * Without a websocket route there is no 'upgrade' listener, and Node serves upgrades as plain
 * requests. ws is loaded only when a config first has one (start-up time and memory).
 */
function webSocketSupport(app: FastifyInstance, logger: Logger): WebSocketSupport {
  let websockets: WebSocketProxy | undefined;
  return {
    get proxy() {
      return websockets;
    },
    async prepare(next) {
      if (websockets || !next.routes.some((route) => route.websocket)) return;
      websockets = new (await import('./proxy/websocket.js')).WebSocketProxy(logger);
      websockets.attach(app);
    },
  };
}

/**
 * How a generation makes a route's token source (the standard one, or options.tokens's) and its
 * proxy route. A route's standard token source shares its tokens through `sharedCache`, when there
 * is one and the route has not opted out.
 */
function routeFactories(options: SidecarOptions, logger: Logger, metrics: Metrics, tracing: Tracing | null, websockets: WebSocketSupport, reportFailure: ReportFailure, sharedCache: SharedTokenCache | undefined): RouteFactories {
  const standardTokens = (route: RouteConfig, onFetch?: (outcome: 'success' | 'failure') => void): RouteTokens => {
    const { clock, fetchToken } = options;
    return createRouteTokenSource(route, {
      logger,
      tracing,
      onFetch: (outcome, _error, shared) => {
        // Grants only: a token another replica fetched (from the shared cache) is none.
        if (!shared) metrics.tokenFetch(route.name, outcome);
        onFetch?.(outcome);
      },
      ...(sharedCache && route.tokenCache ? { sharedCache } : {}),
      ...(clock ? { clock } : {}),
      ...(fetchToken ? { fetchToken: (signal: AbortSignal) => fetchToken(route, signal) } : {}),
    });
  };
  return {
    tokens: options.tokens ? (route) => (options.tokens as NonNullable<SidecarOptions['tokens']>)(route, (onFetch) => standardTokens(route, onFetch)) : (route) => standardTokens(route),
    proxy: (route, tokens, { inbound }) => {
      warnUnverifiedTls(route.name, 'upstream', route.tls, logger);
      return new ProxyRoute({
        route,
        tokens,
        sharedSecretHeader: inbound.sharedSecretHeader?.name,
        websockets: websockets.proxy,
        logger,
        onBrokenResponse: (request, error) => reportFailure(request, error, 'warn', 'upstream failed mid-response; response cut'),
        onUpstream401: (outcome) => metrics.upstream401(route.name, outcome),
      });
    },
  };
}

interface ReloaderParts {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly guard: ReturnType<typeof installGuard>;
  readonly websockets: WebSocketSupport;
  readonly make: RouteFactories;
  readonly options: SidecarOptions;
  /** The generation in force, and the swap that replaces it. */
  inForce(): Generation;
  swap(next: Generation): void;
}

/** Reloads, one at a time: each builds the next generation and swaps it in, or changes nothing. */
function createReloader({ logger, metrics, guard, websockets, make, options, inForce, swap }: ReloaderParts): {
  reload(load?: () => SidecarConfig): Promise<ReloadResult>;
  /** The token sources have started: a reload starts its new ones. */
  started(): void;
  /** No reload from now on; resolves when the one under way (if any) is done. */
  closing(): Promise<unknown>;
  /** Routes a reload replaced, until their last request is done and their pool closed. */
  retired(): readonly ProxyRoute[];
  /** Closes at once the token sources of removed routes still serving their last requests (shutdown). */
  closeRetiredTokens(): Promise<void>;
} {
  let retired: ProxyRoute[] = [];
  /** Retired token sources of removed routes, not yet closed, and how to close each at once. */
  const retiring = new Map<RouteTokens, () => Promise<void>>();
  let started = false;
  let closing = false;
  let reloads: Promise<unknown> = Promise.resolve();

  async function applyReload(load: () => SidecarConfig): Promise<ReloadResult> {
    const live = inForce();
    if (closing) {
      logger.warn({ config: live.hash }, 'config reload ignored: the sidecar is shutting down');
      return { outcome: 'ignored', hash: live.hash };
    }
    let next: SidecarConfig;
    let refused: readonly string[];
    let inbound: { apply(): void };
    let change: GenerationChange | undefined;
    try {
      ({ config: next, refused } = keepSocketSettings(live.config, load()));
      if (refused.length > 0) logger.warn({ fields: refused }, 'these settings need a new socket: restart the sidecar to apply them; the rest of the reload applies');
      inbound = guard.prepare(next.inbound);
      if (!sameValue(next, live.config)) {
        await websockets.prepare(next);
        change = nextGeneration(next, live, make, undefined, options.configHash?.(next));
      }
    } catch (err) {
      metrics.configReload('failure');
      const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
      logger.error({ problems, config: live.hash }, 'config reload failed; the previous config stays in force');
      return { outcome: 'failure', hash: live.hash, problems };
    }
    // The shared secret's file is read again even when the config is the same.
    inbound.apply();
    if (!change) {
      metrics.configReload('unchanged');
      logger.info({ config: live.hash, loadedAt: live.loadedAt }, 'config reloaded: nothing changed');
      return { outcome: 'unchanged', hash: live.hash, restartNeeded: refused };
    }
    const { generation, added, removed, changed } = change;
    swap(generation); // the swap: requests from here on see the new routes
    if (next.logLevel !== live.config.logLevel) setLogLevel(logger, next.logLevel);
    if (started) for (const tokens of change.newTokens) tokens.source.start();
    retired = retired.filter((route) => !route.closed);
    for (const route of change.retiredProxies) {
      route.retire();
      retired.push(route);
    }
    for (const tokens of change.retiredTokens) {
      // Changed auth (new credentials, maybe because the old ones were revoked): the old source closes at once.
      if (removed.includes(tokens.source.name)) retireTokens(tokens, live, change.retiredProxies, 'the route was removed by a config reload');
      else void tokens.close('its auth settings changed in a config reload; retry the request');
    }
    metrics.configReload('success');
    options.onReload?.(generation);
    logger.info({ config: generation.hash, loadedAt: generation.loadedAt, added, removed, changed, newTokenSources: change.newTokens.map((tokens) => tokens.source.name) }, 'config reloaded');
    return { outcome: 'success', hash: generation.hash, restartNeeded: refused };
  }

  /**
   * A removed route's requests that started before the reload keep their generation, its token
   * source included: the source closes once the retired routes that use it have no request left.
   * A primary of workers serves no request itself; a worker's request may still be waiting on it
   * through its copy, for at most the route's tokenWaitMs, so the primary keeps it that long.
   */
  function retireTokens(tokens: RouteTokens, previous: Generation, retiredRoutes: readonly ProxyRoute[], reason: string): void {
    const users = retiredRoutes.filter((route) => route.tokens === tokens.source && !route.closed);
    const primary = options.listeners === 'admin';
    const tokenWaitMs = [...previous.routes.values()].find((route) => route.tokens === tokens)?.config.auth.tokenWaitMs ?? 0;
    let pending = users.length + (primary ? 1 : 0);
    let timer: NodeJS.Timeout | undefined;
    const closeNow = async () => {
      clearTimeout(timer);
      if (retiring.delete(tokens)) await tokens.close(reason);
    };
    retiring.set(tokens, closeNow);
    const done = () => {
      pending -= 1;
      if (pending <= 0) void closeNow();
    };
    if (pending === 0) return void closeNow();
    for (const route of users) route.whenClosed(done);
    if (primary) {
      timer = setTimeout(done, tokenWaitMs);
      timer.unref();
    }
  }

  return {
    reload(load = options.loadConfig) {
      if (!load) return Promise.reject(new Error('reload() needs to know where the config comes from: pass loadConfig to createSidecar, or a loader to reload()'));
      const run = reloads.then(() => applyReload(load));
      reloads = run.catch(() => {});
      return run;
    },
    started() {
      started = true;
    },
    closing() {
      closing = true;
      return reloads;
    },
    retired: () => retired,
    closeRetiredTokens: () => Promise.all([...retiring.values()].map((closeNow) => closeNow())).then(() => {}),
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

/** A route as the `listening` line shows it; its outbound proxy (for the upstream) by host:port only, as a proxy URL may carry a password. */
function routeSummary(route: RouteConfig): Record<string, string> {
  const via = proxyFor(route.upstreamOrigin, route.outboundProxy);
  return { name: route.name, prefix: route.prefix, upstream: route.upstreamOrigin + route.upstreamBasePath, ...(via ? { outboundProxy: via.name } : {}) };
}
