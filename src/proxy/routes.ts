// One @fastify/http-proxy per route. A preHandler gets the route's token (without awaiting when a
// valid one is cached) and hands WebSocket upgrades to websocket.ts; the header rewrite sets
// Authorization; failures go to the app's error handler, which maps them to JSON in one place
// (errors.ts).

import httpProxy from '@fastify/http-proxy';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import type { RouteConfig } from '../config/types.js';
import type { TokenSource } from '../token/token-source.js';
import { callerResponseHeaders, upstreamRequestHeaders } from './headers.js';
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
  /** Carries the route's WebSocket upgrades (routes with `websocket: true`). */
  readonly websockets?: WebSocketProxy;
}

function rawQueryString(_search: string, requestUrl: string): string {
  const index = requestUrl.indexOf('?');
  return index >= 0 ? requestUrl.slice(index + 1) : '';
}

export async function proxyRoute(app: FastifyInstance, { route, tokens, connections = 128, websockets }: ProxyRouteOptions): Promise<void> {
  async function attachToken(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const upgrade = isUpgradeFor(request.raw, route);
    request.bearerToken = tokens.peek() ?? (await tokens.getToken());
    if (upgrade) await websockets?.forward(request, reply, route);
  }

  function rewriteRequestHeaders(request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders {
    return upstreamRequestHeaders(headers, request.bearerToken, request.id);
  }

  function rewriteResponseHeaders(headers: IncomingHttpHeaders, request: FastifyRequest): IncomingHttpHeaders {
    return callerResponseHeaders(headers, request.id);
  }

  await app.register(httpProxy, {
    upstream: route.upstreamOrigin + route.upstreamBasePath,
    prefix: route.prefix,
    // @fastify/http-proxy joins "/" + base path "/api" + "hello" into "/apihello"; a trailing
    // slash on the rewrite prefix of the root route gives "/api/hello".
    rewritePrefix: route.prefix === '/' ? `${route.upstreamBasePath}/` : route.upstreamBasePath || '/',
    // Upgrades are ours (websocket.ts), in the preHandler, before this plugin's handler.
    websocket: false,
    disableRequestLogging: true,
    config: { sidecarRoute: route.name },
    preHandler: attachToken,
    undici: {
      connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connectTimeout: route.connectTimeoutMs,
      headersTimeout: route.responseTimeoutMs,
      bodyTimeout: route.responseTimeoutMs,
    },
    replyOptions: {
      rewriteRequestHeaders,
      rewriteHeaders: rewriteResponseHeaders,
      // Forward the query string byte for byte; the default re-serialises it (a+b -> a%20b).
      queryString: rawQueryString,
      onError(reply: FastifyReply, { error }: { error: Error }) {
        reply.send(error);
      },
    },
  } as Parameters<typeof httpProxy>[1]);
}
