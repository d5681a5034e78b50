// TLS for the sidecar's outgoing connections (upstreams and token endpoints): certificates are
// verified unless a route switches it off by name, and a private CA is trusted in addition to
// Node's bundled CAs, never instead of them. The secure context is built once per route, not per
// connection. Which dispatcher carries them (direct or through a proxy) is outbound/dispatcher.ts's.

import { createSecureContext, rootCertificates, type ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { RouteConfig, TlsConfig } from './config/types.js';

/** Options for undici's `connect` (and tls.connect). Always explicit (@fastify/reply-from, used before forward.ts, defaulted to rejectUnauthorized: false). */
export function tlsConnectOptions(tls: TlsConfig): ConnectionOptions {
  return {
    rejectUnauthorized: tls.rejectUnauthorized,
    ...(tls.ca ? { secureContext: createSecureContext({ ca: [...rootCertificates, tls.ca] }) } : {}),
  };
}

/** One loud line per connection that is not verified: it should never go unnoticed in production. */
export function warnUnverifiedTls(route: RouteConfig, logger: Logger): void {
  for (const [target, tls] of [['upstream', route.tls], ['token endpoint', route.auth.tls]] as const) {
    if (!tls.rejectUnauthorized) {
      logger.warn({ route: route.name, target }, `TLS certificate verification is OFF for the ${target} of route "${route.name}": anyone on the network path can read its tokens`);
    }
  }
}
