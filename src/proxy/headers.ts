// The request headers an upstream receives, for plain requests and WebSocket upgrades alike: the
// caller's connection-level headers and credentials go, the route's bearer token and the request
// id come in. And the response headers the caller receives: the upstream's connection-level ones go.

import type { IncomingHttpHeaders } from 'node:http';

/** Headers that belong to one connection (RFC 9110 §7.6.1) or to the caller's proxy credentials. */
export const hopByHopHeaders = ['proxy-authorization', 'proxy-connection', 'keep-alive', 'te', 'trailer', 'upgrade'];

/** Rewrites `headers` in place for the upstream and returns them. */
export function upstreamRequestHeaders(headers: IncomingHttpHeaders, bearerToken: string, requestId: string): IncomingHttpHeaders {
  for (const name of hopByHopHeaders) delete headers[name];
  // Whatever the caller sent as Authorization is replaced, never forwarded.
  headers.authorization = `Bearer ${bearerToken}`;
  headers['x-request-id'] = requestId;
  return headers;
}

/**
 * Rewrites the upstream's response headers in place for the caller: its Connection and Keep-Alive
 * describe the upstream connection, so Node writes the caller's own (close, after an upgrade).
 */
export function callerResponseHeaders(headers: IncomingHttpHeaders, requestId: string): IncomingHttpHeaders {
  delete headers.connection;
  delete headers['keep-alive'];
  headers['x-request-id'] = requestId;
  return headers;
}
