// One @fastify/http-proxy per route. A preHandler gets the route's token (without awaiting when a
// valid one is cached); the header rewrite sets Authorization; failures go to the app's error
// handler, which maps them to JSON in one place (errors.ts). A 401 is replayed once with a new
// token (replay.ts); a caller that goes away aborts its upstream request (caller-abort.ts).

import httpProxy from '@fastify/http-proxy';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import type { RouteConfig } from '../config/types.js';
import type { TokenSource } from '../token/token-source.js';
import { callerAwarePool, whileCallerConnected } from './caller-abort.js';
import { ReplayOn401 } from './replay.js';

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

/** Headers that belong to one connection (RFC 9110 §7.6.1) or to the caller's proxy credentials. */
const hopByHopHeaders = ['proxy-authorization', 'proxy-connection', 'keep-alive', 'te', 'trailer', 'upgrade'];

export interface ProxyRouteOptions {
  readonly route: RouteConfig;
  readonly tokens: TokenSource;
  /** Upstream connections kept per route. */
  readonly connections?: number;
}

function rawQueryString(_search: string, requestUrl: string): string {
  const index = requestUrl.indexOf('?');
  return index >= 0 ? requestUrl.slice(index + 1) : '';
}

export async function proxyRoute(app: FastifyInstance, { route, tokens, connections = 128 }: ProxyRouteOptions): Promise<void> {
  async function attachToken(request: FastifyRequest): Promise<void> {
    request.bearerToken = tokens.peek() ?? (await tokens.getToken());
  }

  function rewriteRequestHeaders(request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders {
    for (const name of hopByHopHeaders) delete headers[name];
    // Whatever the caller sent as Authorization is replaced, never forwarded.
    headers.authorization = `Bearer ${request.bearerToken}`;
    return headers;
  }

  const replay = new ReplayOn401({
    route: route.name,
    tokens,
    bodyLimitBytes: route.replayBodyLimitBytes,
    forward: (request, reply, dest, options) => whileCallerConnected(reply, () => reply.from(dest, options)),
  });

  await app.register(httpProxy, {
    upstream: route.upstreamOrigin + route.upstreamBasePath,
    prefix: route.prefix,
    // @fastify/http-proxy joins "/" + base path "/api" + "hello" into "/apihello"; a trailing
    // slash on the rewrite prefix of the root route gives "/api/hello".
    rewritePrefix: route.prefix === '/' ? `${route.upstreamBasePath}/` : route.upstreamBasePath || '/',
    websocket: false,
    disableRequestLogging: true,
    config: { sidecarRoute: route.name },
    preHandler: attachToken,
    handler: replay.handler,
    undici: {
      factory: callerAwarePool,
      connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connectTimeout: route.connectTimeoutMs,
      headersTimeout: route.responseTimeoutMs,
      bodyTimeout: route.responseTimeoutMs,
    },
    replyOptions: {
      rewriteRequestHeaders,
      // Forward the query string byte for byte; the default re-serialises it (a+b -> a%20b).
      queryString: rawQueryString,
      // reply-from's types call `res` a server response; it is { statusCode, headers, stream }.
      onResponse: replay.onResponse as never,
      onError(reply: FastifyReply, { error }: { error: Error }) {
        reply.send(error);
      },
    },
  } as Parameters<typeof httpProxy>[1]);
}
