// TLS for the sidecar's outgoing connections (upstreams and token endpoints): certificates are
// verified unless a route switches it off by name, a private CA is trusted in addition to Node's
// bundled CAs, never instead of them, and a client certificate (mutual TLS) is presented when one
// is configured. The secure context is built once per TLS setting, not per connection; with a
// client certificate it is built again when the certificate or key files change, for the
// connections opened after that. Which dispatcher carries the connections (direct or through an
// outbound proxy) is outbound/dispatcher.ts's.

import { statSync } from 'node:fs';
import type { ConnectionOptions, SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { buildConnector } from 'undici';
import { readClientCertificate } from './config/keys.js';
import type { ClientCertificateConfig, TlsConfig } from './config/types.js';

/**
 * node:tls when first needed: loading it costs ~5 MB of RSS (Node 24) that a sidecar whose upstreams and
 * token endpoints are all http:// never needs (issue 14).
 */
export const nodeTls = () => process.getBuiltinModule('node:tls');

/** Secure contexts by TLS setting (the config's objects are frozen; a reloaded config brings new ones). */
const contexts = new WeakMap<TlsConfig, { current(logger?: Logger): SecureContext } | undefined>();

/**
 * Options for tls.connect (undici's connect, ws) as of now. Verification is always explicit
 * (@fastify/reply-from, used before forward.ts, defaulted to rejectUnauthorized: false).
 */
export function tlsConnectOptions(tls: TlsConfig, logger?: Logger): ConnectionOptions {
  if (!contexts.has(tls)) contexts.set(tls, contextSource(tls));
  const secureContext = contexts.get(tls)?.current(logger);
  return { rejectUnauthorized: tls.rejectUnauthorized, ...(secureContext ? { secureContext } : {}) };
}

/**
 * undici's `connect` option for a Pool or Agent. Without a client certificate: the options
 * themselves, fixed for the dispatcher's life. With one: a connector that looks at the files for
 * each new connection and, once they have changed, connects with a fresh connector, whose TLS
 * session cache is empty too (a resumed session would go on with the old certificate).
 */
export function undiciConnect(tls: TlsConfig, { timeoutMs, logger }: { timeoutMs?: number; logger?: Logger } = {}): ConnectionOptions | buildConnector.connector {
  if (!tls.clientCertificate) return tlsConnectOptions(tls);
  const connectorFor = (options: ConnectionOptions) => buildConnector({ ...options, ...(timeoutMs === undefined ? {} : { timeout: timeoutMs }) } as buildConnector.BuildOptions);
  // Built now, at start-up, not at the first connection.
  let current = tlsConnectOptions(tls, logger);
  let connector = connectorFor(current);
  return (options, callback) => {
    const now = tlsConnectOptions(tls, logger);
    if (now.secureContext !== current.secureContext) {
      current = now;
      connector = connectorFor(now);
    }
    return connector(options, callback);
  };
}

/** One loud line per connection that is not verified: it should never go unnoticed in production. */
export function warnUnverifiedTls(routeName: string, target: 'upstream' | 'token endpoint', tls: TlsConfig, logger: Pick<Logger, 'warn'>): void {
  if (!tls.rejectUnauthorized) {
    logger.warn({ route: routeName, target }, `TLS certificate verification is OFF for the ${target} of route "${routeName}": anyone on the network path can read its tokens`);
  }
}

function contextSource(tls: TlsConfig): { current(logger?: Logger): SecureContext } | undefined {
  const ca = tls.ca ? [...nodeTls().rootCertificates, tls.ca] : undefined;
  if (!tls.clientCertificate) {
    if (!ca) return undefined;
    const context = nodeTls().createSecureContext({ ca });
    return { current: () => context };
  }
  return rotatingContext(tls.clientCertificate, ca);
}

/**
 * A secure context with a client certificate, built again when its files change (judged by their
 * size, inode and mtime, which a Kubernetes Secret update or a rewrite changes). Files that cannot
 * be used (a rotation half done, a wrong key) leave the previous certificate in use, and say so once.
 */
function rotatingContext(certificate: ClientCertificateConfig, ca: string[] | undefined): { current(logger?: Logger): SecureContext } {
  const files = [certificate.cert.file, certificate.key.file, certificate.keyPassphrase?.file].filter((file) => file !== undefined);
  const stamp = () => files.map(fileStamp).join('|');
  const build = () => nodeTls().createSecureContext({ ...(ca ? { ca } : {}), ...readClientCertificate(certificate) });
  // The config check at start-up has read these files already: a failure here is a change since.
  let builtFrom = stamp();
  let context = build();
  let refused: string | undefined;
  return {
    current(logger) {
      const now = stamp();
      if (now === builtFrom || now === refused) return context;
      try {
        context = build();
        builtFrom = now;
        refused = undefined;
        logger?.info({ certFile: certificate.cert.file }, 'client certificate files changed; new connections present the new certificate');
      } catch (err) {
        refused = now;
        logger?.warn({ certFile: certificate.cert.file, reason: (err as Error).message }, 'client certificate files changed but cannot be used; new connections present the previous certificate');
      }
      return context;
    },
  };
}

function fileStamp(file: string): string {
  try {
    const stat = statSync(file);
    return `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'error';
  }
}
