// What a route does to headers: the request headers sent upstream are built in one pass from the
// caller's (hop-by-hop, Host, forwarded headers, cookies and the listener's shared-secret header
// left out; the token's header (routes[].inject, Authorization by default) and X-Request-Id set by
// us), and the upstream's response headers are
// copied back the same way (hop-by-hop out, Location mapped back under the route's prefix, cookies
// only when the route forwards them). The name sets are built once per route; per request this
// is one loop over the headers there are, into a fresh object (no deletes of absent names).

import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { RouteConfig } from '../config/types.js';
import { callerLocation } from './paths.js';

export type OutgoingHeaders = Record<string, string | string[]>;

/**
 * Headers that belong to one connection (RFC 9110 §7.6.1) or to the caller's proxy credentials,
 * and Expect: Node's server already answered the caller's 100-continue, and undici refuses to
 * send a request that carries it. Host is the upstream's (undici sets it from the origin);
 * Transfer-Encoding is undici's to choose for the body it sends.
 */
export const hopByHopRequestHeaders = ['connection', 'proxy-authorization', 'proxy-connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'expect', 'host', 'transfer-encoding'];

/** Headers through which a caller could claim to be someone or somewhere else to the upstream. */
const forwardedHeaderNames = ['forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-forwarded-prefix', 'x-real-ip'];

export interface HeaderPolicyOptions {
  readonly route: RouteConfig;
  /** The listener's shared-secret header name, if one is required. */
  readonly sharedSecretHeader?: string | undefined;
}

/** Builds the headers of an upstream request: the caller's, filtered, plus the token's header and X-Request-Id. */
export type RequestHeaderBuilder = (raw: IncomingMessage, token: string, requestId: string) => OutgoingHeaders;

export function requestHeaderPolicy({ route, sharedSecretHeader }: HeaderPolicyOptions): RequestHeaderBuilder {
  const drop = new Set([
    ...hopByHopRequestHeaders,
    // Whatever the caller sent as Authorization, X-Request-Id or the token's header is replaced (or
    // dropped: Authorization also when the token goes elsewhere), never forwarded.
    'authorization',
    'x-request-id',
    route.inject.header,
    ...(sharedSecretHeader ? [sharedSecretHeader.toLowerCase()] : []),
    ...(route.forwardedHeaders === 'pass' ? [] : forwardedHeaderNames.filter((name) => route.forwardedHeaders === 'strip' || name !== 'x-forwarded-for')),
    ...(route.forwardCookies ? [] : ['cookie']),
  ]);
  const append = route.forwardedHeaders === 'append';
  // Worked out once here, so a request costs what it did before the header was configurable.
  const tokenHeader = route.inject.header;
  const tokenPrefix = route.inject.scheme === '' ? '' : `${route.inject.scheme} `;
  return (raw, token, requestId) => {
    const source = raw.headers;
    const headers: OutgoingHeaders = {};
    for (const name in source) {
      if (!drop.has(name)) headers[name] = source[name] as string | string[];
    }
    // Headers the caller named in Connection are hop-by-hop too (keep-alive and close name none).
    const connection = source.connection;
    if (connection !== undefined && connection !== 'keep-alive' && connection !== 'close') {
      for (const name of connection.split(',')) delete headers[name.trim().toLowerCase()];
    }
    if (append) {
      const previous = source['x-forwarded-for'];
      const client = raw.socket.remoteAddress ?? 'unknown';
      headers['x-forwarded-for'] = previous ? `${previous}, ${client}` : client;
      headers['x-forwarded-proto'] = 'http';
      if (source.host) headers['x-forwarded-host'] = source.host;
    }
    headers[tokenHeader] = tokenPrefix + token;
    headers['x-request-id'] = requestId;
    return headers;
  };
}

/**
 * Response headers that describe the sidecar's connection to the upstream, not the caller's to
 * the sidecar: forwarded, `connection: keep-alive` would override a caller's `Connection: close`.
 * Transfer-Encoding: undici has decoded the body; Node frames it afresh for the caller.
 */
const hopByHopResponseHeaders = ['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'proxy-authenticate', 'transfer-encoding', 'trailer'];

/** Copies the upstream's response headers for the caller, with the response policy applied. */
export type ResponseHeaderBuilder = (upstream: IncomingHttpHeaders | Record<string, string | string[] | undefined>, requestId: string) => OutgoingHeaders;

export function responseHeaderPolicy(route: RouteConfig): ResponseHeaderBuilder {
  const mapping = { prefix: route.prefix, basePath: route.upstreamBasePath };
  const drop = new Set([...hopByHopResponseHeaders, 'x-request-id', ...(route.forwardCookies ? [] : ['set-cookie'])]);
  return (upstream, requestId) => {
    const headers: OutgoingHeaders = {};
    for (const name in upstream) {
      const value = upstream[name];
      if (value !== undefined && !drop.has(name)) headers[name] = value;
    }
    const connection = upstream.connection;
    if (typeof connection === 'string' && connection !== 'keep-alive' && connection !== 'close') {
      for (const name of connection.split(',')) delete headers[name.trim().toLowerCase()];
    }
    const location = headers.location;
    if (typeof location === 'string') headers.location = callerLocation(location, mapping);
    headers['x-request-id'] = requestId;
    return headers;
  };
}
