// What a route does to headers beyond Authorization: X-Forwarded-* and Forwarded (strip, append
// or pass), cookies (both ways, or neither), the listener's shared-secret header (never forwarded),
// and Location (mapped back under the route's prefix). Lists are built once per route; per request
// this is a few deletes.

import type { FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import type { RouteConfig } from '../config/types.js';
import { callerLocation } from './paths.js';

/**
 * Headers that belong to one connection (RFC 9110 §7.6.1) or to the caller's proxy credentials,
 * and Expect: Node's server already answered the caller's 100-continue, and undici refuses to
 * send a request that carries it (the caller got a 502). reply-from has already removed
 * Connection and the headers it names.
 */
const hopByHopRequestHeaders = ['proxy-authorization', 'proxy-connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'expect'];

/** Headers through which a caller could claim to be someone or somewhere else to the upstream. */
const forwardedHeaderNames = ['forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-forwarded-prefix', 'x-real-ip'];

export interface HeaderPolicyOptions {
  readonly route: RouteConfig;
  /** The listener's shared-secret header name, if one is required. */
  readonly sharedSecretHeader?: string | undefined;
}

/** Returns the per-request rewrite of the headers sent upstream (in place). */
export function requestHeaderPolicy({ route, sharedSecretHeader }: HeaderPolicyOptions): (request: FastifyRequest, headers: IncomingHttpHeaders) => void {
  const drop = [
    ...hopByHopRequestHeaders,
    ...(sharedSecretHeader ? [sharedSecretHeader] : []),
    ...(route.forwardedHeaders === 'pass' ? [] : forwardedHeaderNames.filter((name) => route.forwardedHeaders === 'strip' || name !== 'x-forwarded-for')),
    ...(route.forwardCookies ? [] : ['cookie']),
  ];
  const append = route.forwardedHeaders === 'append';
  return (request, headers) => {
    for (const name of drop) delete headers[name];
    if (append) {
      const previous = headers['x-forwarded-for'];
      const client = request.socket.remoteAddress ?? 'unknown';
      headers['x-forwarded-for'] = previous ? `${String(previous)}, ${client}` : client;
      headers['x-forwarded-proto'] = 'http';
      if (request.headers.host) headers['x-forwarded-host'] = request.headers.host;
    }
  };
}

/**
 * Response headers that describe the sidecar's connection to the upstream, not the caller's to
 * the sidecar: forwarded, `connection: keep-alive` would override a caller's `Connection: close`.
 */
const hopByHopResponseHeaders = ['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'proxy-authenticate'];

/** Returns the rewrite of the upstream's response headers (in place) before they reach the caller. */
export function responseHeaderPolicy(route: RouteConfig): (headers: IncomingHttpHeaders) => void {
  const mapping = { prefix: route.prefix, basePath: route.upstreamBasePath };
  const dropCookies = !route.forwardCookies;
  return (headers) => {
    const connection = headers.connection;
    if (typeof connection === 'string' && connection.includes(',')) {
      for (const name of connection.split(',')) delete headers[name.trim().toLowerCase()];
    } else if (typeof connection === 'string' && connection !== 'keep-alive' && connection !== 'close') {
      delete headers[connection.trim().toLowerCase()];
    }
    for (const name of hopByHopResponseHeaders) delete headers[name];
    const location = headers.location;
    if (typeof location === 'string') headers.location = callerLocation(location, mapping);
    if (dropCookies) delete headers['set-cookie'];
  };
}
