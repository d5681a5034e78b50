// TLS for the sidecar's outgoing connections (upstreams and token endpoints): certificates are
// verified unless a route switches it off by name, and a private CA is trusted in addition to
// Node's bundled CAs, never instead of them. The secure context is built once per route, not per
// connection.

import { createSecureContext, rootCertificates, type ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import { Agent } from 'undici';
import type { TlsConfig } from './config/types.js';

/** Options for undici's `connect` (and tls.connect). Always explicit (@fastify/reply-from, used before forward.ts, defaulted to rejectUnauthorized: false). */
export function tlsConnectOptions(tls: TlsConfig): ConnectionOptions {
  return {
    rejectUnauthorized: tls.rejectUnauthorized,
    ...(tls.ca ? { secureContext: createSecureContext({ ca: [...rootCertificates, tls.ca] }) } : {}),
  };
}

/** An undici dispatcher for token requests when the route's TLS settings differ from the defaults; undefined otherwise. */
export function tokenDispatcher(tls: TlsConfig): Agent | undefined {
  if (tls.ca === undefined && tls.rejectUnauthorized) return undefined;
  return new Agent({ connect: tlsConnectOptions(tls) });
}

/** One loud line per connection that is not verified: it should never go unnoticed in production. */
export function warnUnverifiedTls(routeName: string, target: 'upstream' | 'token endpoint', tls: TlsConfig, logger: Pick<Logger, 'warn'>): void {
  if (!tls.rejectUnauthorized) {
    logger.warn({ route: routeName, target }, `TLS certificate verification is OFF for the ${target} of route "${routeName}": anyone on the network path can read its tokens`);
  }
}
