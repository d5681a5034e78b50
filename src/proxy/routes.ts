// The proxy's routes. A ProxyRoute is one route of a config generation: a keep-alive undici Pool to
// its upstream origin, its header policies, and the handler that maps the path (paths.ts), takes
// the route's token (without awaiting when a valid one is cached) and forwards (forward.ts).
// Failures go to the app's error handler, which maps them to JSON in one place (errors.ts).
// WebSocket upgrades leave here for websocket.ts, once the token is there.
//
// The app itself has one catch-all route (mountProxy): Fastify cannot remove a route once it
// listens, and a reload must. Each request is given its ProxyRoute when it arrives, from the
// generation then in force (server.ts, route-table.ts), and keeps it to the end, replays included:
// a route that a reload replaced closes its pool once its last request is done.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import type { RouteConfig } from '../config/types.js';
import { SidecarError } from '../errors.js';
import { dispatcherFor, webSocketConnectorFor } from '../outbound/dispatcher.js';
import type { TokenProvider } from '../token/token-source.js';
import type { RequestTrace } from '../tracing/types.js';
import { failed, Forwarder, type ForwarderOptions } from './forward.js';
import { requestHeaderPolicy, responseHeaderPolicy } from './headers.js';
import { limitBody } from './limits.js';
import { upstreamPath, type PathMapping } from './paths.js';
import { isUpgradeFor } from './upgrade.js';
import type { UpgradeRoute, WebSocketProxy } from './websocket.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The token a WebSocket upgrade is dialled with (in the route's inject header). */
    bearerToken: string;
    /** The route serving this request, from the generation in force when it arrived; null when none serves its path. */
    sidecarRoute: ProxyRoute | null;
    /** This request's spans when traces are on (tracing/); null when they are off. */
    sidecarTrace: RequestTrace | null;
  }
}

/** The methods a route carries; anything else gets the app's 404, as a path no route serves. */
export const proxiedMethods = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'];

export interface ProxyRouteOptions {
  readonly route: RouteConfig;
  readonly tokens: TokenProvider;
  /** Upstream connections kept per route. */
  readonly connections?: number;
  /** The listener's shared-secret header, never forwarded. */
  readonly sharedSecretHeader?: string | undefined;
  /** Carries the route's WebSocket upgrades (routes with `websocket: true`). */
  readonly websockets?: WebSocketProxy | undefined;
  /** For what TLS has to say (a client certificate that cannot be read). */
  readonly logger: Logger;
  /** Told of upstream failures after a response had begun (forward.ts). */
  readonly onBrokenResponse?: ForwarderOptions['onBrokenResponse'];
  readonly onUpstream401?: ForwarderOptions['onUpstream401'];
}

/**
 * The keep-alive connection pool a route forwards through: without an outbound proxy, a plain Pool
 * to the upstream; with one, what outbound/dispatcher.ts makes of it.
 */
export function upstreamPool(route: RouteConfig, connections: number, logger: Logger): Dispatcher {
  return dispatcherFor(route.upstreamOrigin, route.outboundProxy, {
    tls: route.tls,
    connectTimeoutMs: route.connectTimeoutMs,
    logger,
    pool: { connections, pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: route.responseTimeoutMs, bodyTimeout: route.responseTimeoutMs },
  });
}

export class ProxyRoute {
  readonly name: string;
  readonly prefix: string;
  readonly config: RouteConfig;
  readonly tokens: TokenProvider;
  readonly #pool: Dispatcher;
  readonly #forwarder: Forwarder;
  readonly #mapping: PathMapping;
  readonly #maxBodyBytes: number;
  readonly #websockets: WebSocketProxy | undefined;
  readonly #upgrades: UpgradeRoute;
  /** Requests (and WebSockets) holding this route; see hold(). */
  #active = 0;
  #retired = false;
  #closing: Promise<void> | undefined;
  readonly #onClose: (() => void)[] = [];

  constructor({ route, tokens, connections = 128, sharedSecretHeader, websockets, logger, onBrokenResponse, onUpstream401 }: ProxyRouteOptions) {
    this.name = route.name;
    this.prefix = route.prefix;
    this.config = route;
    this.tokens = tokens;
    const requestHeaders = requestHeaderPolicy({ route, sharedSecretHeader });
    const responseHeaders = responseHeaderPolicy(route);
    this.#mapping = { prefix: route.prefix, basePath: route.upstreamBasePath };
    this.#maxBodyBytes = route.maxBodyBytes;
    this.#pool = upstreamPool(route, connections, logger);
    this.#forwarder = new Forwarder({ route: route.name, tokens, pool: this.#pool, requestHeaders, responseHeaders, replayBodyLimitBytes: route.replayBodyLimitBytes, ...(onBrokenResponse ? { onBrokenResponse } : {}), ...(onUpstream401 ? { onUpstream401 } : {}) });
    this.#websockets = route.websocket ? websockets : undefined;
    this.#upgrades = {
      route,
      tokens,
      connect: route.websocket ? webSocketConnectorFor(route.upstreamOrigin, route.outboundProxy, route.connectTimeoutMs) : undefined,
      rewriteRequestHeaders: (request: FastifyRequest) => requestHeaders(request.raw, request.bearerToken, request.id),
      rewriteResponseHeaders: responseHeaders,
      onUpstream401,
    };
  }

  /** Serves one request of this route. Never throws for a failed forward: failures become the reply's error. */
  handle(request: FastifyRequest, reply: FastifyReply): void {
    const url = request.raw.url as string;
    const query = url.indexOf('?');
    const path = upstreamPath(query < 0 ? url : url.slice(0, query), this.#mapping);
    // Never reached for a request the route table gave this route.
    if (path === undefined) return void reply.send(new SidecarError('BSC_NOT_FOUND', 'no route serves this path'));
    // Body size is checked before a token is awaited: a refused upload costs nothing upstream.
    if (this.#maxBodyBytes > 0) {
      const refused = limitBody(request, reply, this.#maxBodyBytes);
      if (refused) return void reply.send(refused);
    }
    // The query string goes on byte for byte, as the caller wrote it.
    const target = query < 0 ? path : path + url.slice(query);
    if (isUpgradeFor(request.raw, this.config)) return void this.#upgrade(request, reply);
    const tokens = this.tokens;
    const token = tokens.peek();
    if (token !== undefined) return this.#forwarder.forward(request, reply, target, token);
    // Waiting for a token: a grant this request starts is part of its trace, when traces are on.
    const trace = request.sidecarTrace;
    (trace === null ? tokens.getToken() : trace.waitForToken(() => tokens.getToken()))
      .then((fresh) => this.#forwarder.forward(request, reply, target, fresh))
      .catch((err: unknown) => failed(reply, err));
  }

  async #upgrade(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    try {
      request.bearerToken = this.tokens.peek() ?? (await this.tokens.getToken());
      await this.#websockets?.forward(request, reply, this.#upgrades);
    } catch (err) {
      failed(reply, err);
    }
  }

  /** A request (or WebSocket) uses this route until its response closes; release() then. */
  hold(): void {
    this.#active += 1;
  }

  release(): void {
    this.#active -= 1;
    if (this.#retired && this.#active === 0) void this.close();
  }

  /** No new request will come (a reload replaced or removed the route): the pool closes once the last one is done. */
  retire(): void {
    this.#retired = true;
    if (this.#active === 0) void this.close();
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Calls `callback` when the route closes (at once if it has): once retired, when its last request is done. */
  whenClosed(callback: () => void): void {
    if (this.#closing) callback();
    else this.#onClose.push(callback);
  }

  /** Closes the pool; undici lets the requests it carries finish first. */
  close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = this.#pool.close().catch(() => {});
      for (const callback of this.#onClose.splice(0)) callback();
    }
    return this.#closing;
  }
}

/**
 * Registers the proxy's catch-all route: every path and proxied method goes to the request's
 * ProxyRoute (request.sidecarRoute), or to `notFound` when no route serves its path.
 */
export async function mountProxy(app: FastifyInstance, notFound: (request: FastifyRequest, reply: FastifyReply) => void): Promise<void> {
  function handler(request: FastifyRequest, reply: FastifyReply): void {
    const route = request.sidecarRoute;
    if (route === null) return notFound(request, reply);
    route.handle(request, reply);
  }
  await app.register(async (scope) => {
    // Bodies are not parsed: whatever the content type, the request stream is forwarded as it comes.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
    for (const url of ['/', '/*']) scope.route({ method: proxiedMethods, url, handler });
  });
}
