// Resolves the security settings of a config: who may use the listener (listen.allowedClients,
// listen.sharedSecretHeader), its limits, and TLS trust and client certificates for upstreams and
// token endpoints. Files are read here, so a missing or unusable CA, secret, certificate or key
// file fails at start-up with its field's path.

import { X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseCidr, type Cidr } from './cidr.js';
import { algorithmMismatch, certificateThumbprint, defaultSigningAlgorithm, readClientCertificate, readPrivateKey, signingKeyEncryptedHint, type KeyFileError } from './keys.js';
import type { SigningAlgorithm } from './signing-algorithms.js';
import type { RawListen, RawTls } from './schema.js';
import { SecretSource } from './secret.js';
import type { ClientCertificateConfig, InboundConfig, SharedSecretHeader, TlsConfig } from './types.js';

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
  const resolved = { ca, caFile: tls.caFile, rejectUnauthorized: tls.rejectUnauthorized };
  // The schema has checked that certFile and keyFile come together.
  if (!tls.certFile || !tls.keyFile) return resolved;
  return { ...resolved, clientCertificate: resolveClientCertificate(tls.certFile, tls.keyFile, tls.keyPassphraseFile, at, problems) };
}

/** The client certificate's files, checked now; they are read again when they change (src/tls.ts). */
function resolveClientCertificate(certFile: string, keyFile: string, passphraseFile: string | undefined, at: string, problems: string[]): ClientCertificateConfig {
  const config = { cert: SecretSource.fromFile(certFile), key: SecretSource.fromFile(keyFile), keyPassphrase: passphraseFile === undefined ? undefined : SecretSource.fromFile(passphraseFile) };
  try {
    readClientCertificate(config);
  } catch (err) {
    const field = { cert: 'certFile', key: 'keyFile', passphrase: 'keyPassphraseFile' }[(err as KeyFileError).field];
    problems.push(`${at}.${field}: ${(err as Error).message}`);
  }
  return config;
}

/**
 * private_key_jwt's signing key (and certificate), checked now: the key opens, it is of a type a
 * JWS algorithm signs with, `alg` (when set) fits it, and the certificate is the key's. Both files
 * are read again at every token request.
 */
export function resolveSigningKey(
  auth: { privateKeyFile: string; signingAlgorithm: SigningAlgorithm | undefined; certificateFile: string | undefined },
  at: string,
  problems: string[],
): { privateKey: SecretSource; certificate: SecretSource | undefined } {
  const privateKey = SecretSource.fromFile(auth.privateKeyFile);
  const certificate = auth.certificateFile === undefined ? undefined : SecretSource.fromFile(auth.certificateFile);
  let key: KeyObject;
  try {
    key = readPrivateKey(privateKey, undefined, signingKeyEncryptedHint);
    try {
      defaultSigningAlgorithm(key);
    } catch (err) {
      throw new Error(`${auth.privateKeyFile} ${(err as Error).message}`);
    }
  } catch (err) {
    problems.push(`${at}.privateKeyFile: ${(err as Error).message}`);
    return { privateKey, certificate };
  }
  const mismatch = auth.signingAlgorithm && algorithmMismatch(auth.signingAlgorithm, key);
  if (mismatch) problems.push(`${at}.signingAlgorithm: ${mismatch}`);
  if (certificate) {
    try {
      certificateThumbprint(certificate, key);
    } catch (err) {
      problems.push(`${at}.certificateFile: ${(err as Error).message}`);
    }
  }
  return { privateKey, certificate };
}
