// One @fastify/http-proxy per route. A preHandler gets the route's token (without awaiting when a
// valid one is cached); the header rewrite sets Authorization; failures go to the app's error
// handler, which maps them to JSON in one place (errors.ts). A 401 is replayed once with a new
// token (replay.ts); a caller that goes away aborts its upstream request (caller-abort.ts).
// WebSocket upgrades leave in the preHandler, once the token is there (websocket.ts).

import httpProxy from '@fastify/http-proxy';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import type { RouteConfig } from '../config/types.js';
import { SidecarError } from '../errors.js';
import { tlsConnectOptions } from '../tls.js';
import type { TokenSource } from '../token/token-source.js';
import { callerAwarePool, tagWithCaller } from './caller-abort.js';
import { requestHeaderPolicy, responseHeaderPolicy } from './headers.js';
import { bodyLimit } from './limits.js';
import { upstreamPath } from './paths.js';
import { ReplayOn401 } from './replay.js';
import { isUpgradeFor, type WebSocketProxy } from './websocket.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The bearer token this request is forwarded with. */
    bearerToken: string;
  }
  interface FastifyContextConfig {
    /** The sidecar route a proxied request belongs to. */
    sidecarRoute?: string;
  }
}

export interface ProxyRouteOptions {
  readonly route: RouteConfig;
  readonly tokens: TokenSource;
  /** Upstream connections kept per route. */
  readonly connections?: number;
  /** The listener's shared-secret header, never forwarded. */
  readonly sharedSecretHeader?: string | undefined;
  /** Carries the route's WebSocket upgrades (routes with `websocket: true`). */
  readonly websockets?: WebSocketProxy;
}

function rawQueryString(_search: string, requestUrl: string): string {
  const index = requestUrl.indexOf('?');
  return index >= 0 ? requestUrl.slice(index + 1) : '';
}

export async function proxyRoute(app: FastifyInstance, { route, tokens, connections = 128, sharedSecretHeader, websockets }: ProxyRouteOptions): Promise<void> {
  const applyHeaderPolicy = requestHeaderPolicy({ route, sharedSecretHeader });
  const applyResponsePolicy = responseHeaderPolicy(route);
  const mapping = { prefix: route.prefix, basePath: route.upstreamBasePath };

  async function attachToken(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const upgrade = isUpgradeFor(request.raw, route);
    request.bearerToken = tokens.peek() ?? (await tokens.getToken());
    if (upgrade) await websockets?.forward(request, reply, { route, tokens, rewriteRequestHeaders, rewriteResponseHeaders });
  }

  function rewriteRequestHeaders(request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders {
    applyHeaderPolicy(request, headers);
    // Whatever the caller sent as Authorization is replaced, never forwarded.
    headers.authorization = `Bearer ${request.bearerToken}`;
    headers['x-request-id'] = request.id;
    tagWithCaller(headers, request.raw.socket);
    return headers;
  }

  function rewriteResponseHeaders(headers: IncomingHttpHeaders, request: FastifyRequest): IncomingHttpHeaders {
    applyResponsePolicy(headers);
    headers['x-request-id'] = request.id;
    return headers;
  }

  const replay = new ReplayOn401({
    route: route.name,
    tokens,
    bodyLimitBytes: route.replayBodyLimitBytes,
  });

  await app.register(httpProxy, {
    upstream: route.upstreamOrigin + route.upstreamBasePath,
    prefix: route.prefix,
    // @fastify/http-proxy joins "/" + base path "/api" + "hello" into "/apihello"; a trailing
    // slash on the rewrite prefix of the root route gives "/api/hello".
    rewritePrefix: route.prefix === '/' ? `${route.upstreamBasePath}/` : route.upstreamBasePath || '/',
    // Upgrades are ours (websocket.ts): its 101 comes only once the upstream has accepted.
    websocket: false,
    disableRequestLogging: true,
    config: { sidecarRoute: route.name },
    // Body size is checked before a token is awaited: a refused upload costs nothing upstream.
    preHandler: route.maxBodyBytes > 0 ? [bodyLimit(route.maxBodyBytes), attachToken] : attachToken,
    // The upstream path comes from paths.ts, the one mapping the guard and its property test
    // cover; the request then goes out through the 401 replay (replay.ts).
    handler(request: FastifyRequest, reply: FastifyReply, _dest: string, options: object) {
      const url = request.raw.url as string;
      const query = url.indexOf('?');
      const path = upstreamPath(query < 0 ? url : url.slice(0, query), mapping);
      // Never reached when the router matched the prefix; without a path reply.from would fall back to the raw URL.
      if (path === undefined) return reply.send(new SidecarError('BSC_NOT_FOUND', 'no route serves this path'));
      return replay.handler(request, reply, path, options);
    },
    // Location is mapped back by paths.ts (callerLocation), not by http-proxy's substring replace.
    internalRewriteLocationHeader: false,
    undici: {
      factory: callerAwarePool,
      connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connectTimeout: route.connectTimeoutMs,
      headersTimeout: route.responseTimeoutMs,
      bodyTimeout: route.responseTimeoutMs,
      connect: tlsConnectOptions(route.tls),
    },
    replyOptions: {
      rewriteRequestHeaders,
      rewriteHeaders: rewriteResponseHeaders,
      // Forward the query string byte for byte; the default re-serialises it (a+b -> a%20b).
      queryString: rawQueryString,
      // reply-from would retry a GET answered 503 up to ten times; the caller decides, not us.
      retryDelay: () => null,
      // reply-from's types call `res` a server response; it is { statusCode, headers, stream }.
      onResponse: replay.onResponse as never,
      onError(reply: FastifyReply, { error }: { error: Error }) {
        reply.send(error);
      },
    },
  } as Parameters<typeof httpProxy>[1]);
}
