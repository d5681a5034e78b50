// Mounts one route: its prefix on the proxy app, a keep-alive undici Pool to its upstream origin,
// and a handler that maps the path (paths.ts), takes the route's token (without awaiting when a
// valid one is cached) and forwards (forward.ts). Failures go to the app's error handler, which
// maps them to JSON in one place (errors.ts). WebSocket upgrades leave here for websocket.ts,
// once the token is there.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { RouteConfig } from '../config/types.js';
import { SidecarError } from '../errors.js';
import { dispatcherFor, webSocketConnectorFor } from '../outbound/dispatcher.js';
import type { TokenSource } from '../token/token-source.js';
import { failed, Forwarder, type ForwarderOptions } from './forward.js';
import { requestHeaderPolicy, responseHeaderPolicy } from './headers.js';
import { bodyLimit } from './limits.js';
import { upstreamPath } from './paths.js';
import { isUpgradeFor } from './upgrade.js';
import type { WebSocketProxy } from './websocket.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The token a WebSocket upgrade is dialled with (in the route's inject header). */
    bearerToken: string;
  }
  interface FastifyContextConfig {
    /** The sidecar route a proxied request belongs to. */
    sidecarRoute?: string;
  }
}

/** The methods a route carries; anything else gets the app's 404, as a path no route serves. */
export const proxiedMethods = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'];

export interface ProxyRouteOptions {
  readonly route: RouteConfig;
  readonly tokens: TokenSource;
  /** Upstream connections kept per route. */
  readonly connections?: number;
  /** The listener's shared-secret header, never forwarded. */
  readonly sharedSecretHeader?: string | undefined;
  /** Carries the route's WebSocket upgrades (routes with `websocket: true`). */
  readonly websockets?: WebSocketProxy;
  /** Told of upstream failures after a response had begun (forward.ts). */
  readonly onBrokenResponse?: ForwarderOptions['onBrokenResponse'];
}

export async function proxyRoute(app: FastifyInstance, { route, tokens, connections = 128, sharedSecretHeader, websockets, onBrokenResponse }: ProxyRouteOptions): Promise<void> {
  const requestHeaders = requestHeaderPolicy({ route, sharedSecretHeader });
  const responseHeaders = responseHeaderPolicy(route);
  const mapping = { prefix: route.prefix, basePath: route.upstreamBasePath };
  // Without an outbound proxy, a plain Pool to the upstream (outbound/dispatcher.ts).
  const pool = dispatcherFor(route.upstreamOrigin, route.outboundProxy, {
    tls: route.tls,
    connectTimeoutMs: route.connectTimeoutMs,
    logger: app.log as Logger,
    pool: { connections, pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: route.responseTimeoutMs, bodyTimeout: route.responseTimeoutMs },
  });
  const forwarder = new Forwarder({ route: route.name, tokens, pool, requestHeaders, responseHeaders, replayBodyLimitBytes: route.replayBodyLimitBytes, ...(onBrokenResponse ? { onBrokenResponse } : {}) });
  const upgrades = websockets && {
    route,
    tokens,
    connect: route.websocket ? webSocketConnectorFor(route.upstreamOrigin, route.outboundProxy, route.connectTimeoutMs) : undefined,
    rewriteRequestHeaders: (request: FastifyRequest) => requestHeaders(request.raw, request.bearerToken, request.id),
    rewriteResponseHeaders: responseHeaders,
  };

  function handler(request: FastifyRequest, reply: FastifyReply): void {
    const url = request.raw.url as string;
    const query = url.indexOf('?');
    const path = upstreamPath(query < 0 ? url : url.slice(0, query), mapping);
    // Never reached when the router matched the prefix.
    if (path === undefined) return void reply.send(new SidecarError('BSC_NOT_FOUND', 'no route serves this path'));
    // The query string goes on byte for byte, as the caller wrote it.
    const target = query < 0 ? path : path + url.slice(query);
    if (isUpgradeFor(request.raw, route)) return void upgrade(request, reply);
    const token = tokens.peek();
    if (token !== undefined) return forwarder.forward(request, reply, target, token);
    tokens
      .getToken()
      .then((fresh) => forwarder.forward(request, reply, target, fresh))
      .catch((err: unknown) => failed(reply, err));
  }

  async function upgrade(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    try {
      request.bearerToken = tokens.peek() ?? (await tokens.getToken());
      await websockets?.forward(request, reply, upgrades as NonNullable<typeof upgrades>);
    } catch (err) {
      failed(reply, err);
    }
  }

  await app.register(async (scope) => {
    // Bodies are not parsed: whatever the content type, the request stream is forwarded as it comes.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
    scope.addHook('onClose', () => pool.close());
    // Body size is checked before a token is awaited: a refused upload costs nothing upstream.
    const preHandler = route.maxBodyBytes > 0 ? bodyLimit(route.maxBodyBytes) : undefined;
    const base = route.prefix === '/' ? '' : route.prefix;
    for (const url of [base || '/', `${base}/*`]) {
      scope.route({ method: proxiedMethods, url, config: { sidecarRoute: route.name }, ...(preHandler ? { preHandler } : {}), handler });
    }
  });
}
