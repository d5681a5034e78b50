// Resolves the security settings of a config: who may use the listener (listen.allowedClients,
// listen.sharedSecretHeader), its limits, and TLS trust for upstreams and token endpoints. Files
// are read here, once, so a missing CA or secret file fails at start-up with its field's path.

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseCidr, type Cidr } from './cidr.js';
import type { RawListen, RawTls } from './schema.js';
import { SecretSource } from './secret.js';
import type { InboundConfig, SharedSecretHeader, TlsConfig } from './types.js';

const minSecretLength = 16;

export function resolveInbound(listen: RawListen, problems: string[]): InboundConfig {
  return {
    // The schema has checked every entry.
    allowedClients: listen.allowedClients.map((text) => parseCidr(text) as Cidr),
    sharedSecretHeader: listen.sharedSecretHeader && resolveSharedSecretHeader(listen.sharedSecretHeader, problems),
    maxHeaderBytes: listen.maxHeaderBytes,
    maxInFlight: listen.maxInFlight,
  };
}

function resolveSharedSecretHeader(raw: NonNullable<RawListen['sharedSecretHeader']>, problems: string[]): SharedSecretHeader {
  const name = raw.name.toLowerCase();
  if (raw.value !== undefined) return { name, value: SecretSource.inline(raw.value) };
  const value = SecretSource.fromFile(raw.valueFile as string);
  try {
    if (value.read().length < minSecretLength) problems.push(`listen.sharedSecretHeader.valueFile: the secret must be at least ${minSecretLength} characters`);
  } catch (err) {
    problems.push(`listen.sharedSecretHeader.valueFile: ${(err as Error).message}`);
  }
  return { name, value };
}

export function resolveTls(tls: RawTls, at: string, problems: string[]): TlsConfig {
  let ca: string | undefined;
  if (tls.caFile !== undefined) {
    try {
      ca = readFileSync(tls.caFile, 'utf8');
      // Parses the first certificate of the bundle: enough to catch a wrong file (a key, a DER file).
      new X509Certificate(ca);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push(`${at}.caFile: ${ca === undefined ? `cannot read ${tls.caFile} (${code ?? 'error'})` : `${tls.caFile} is not a PEM certificate bundle`}`);
      ca = undefined;
    }
  }
  return { ca, caFile: tls.caFile, rejectUnauthorized: tls.rejectUnauthorized };
}
