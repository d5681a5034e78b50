// Private keys and certificates from PEM files: the client's signing key (private_key_jwt) and a
// client certificate with its key (mutual TLS). Node's createPrivateKey reads PKCS#8, PKCS#1 RSA
// and SEC1 EC alike. Every message names the file and what is wrong with it, never a byte of what
// it holds. Used at start-up (config checks) and again whenever the files are read anew.

import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import type { SecretSource } from './secret.js';
import type { SigningAlgorithm } from './signing-algorithms.js';
import type { ClientCertificateConfig } from './types.js';

/** EC curves by their Node name, with the one algorithm each signs with (RFC 7518 §3.4). */
const curveAlgorithms: Readonly<Record<string, { curve: string; alg: SigningAlgorithm }>> = {
  prime256v1: { curve: 'P-256', alg: 'ES256' },
  secp384r1: { curve: 'P-384', alg: 'ES384' },
  secp521r1: { curve: 'P-521', alg: 'ES512' },
};

const minRsaBits = 2048;
const supported = 'an RSA key (PKCS#8 or PKCS#1), an EC key on P-256, P-384 or P-521 (PKCS#8 or SEC1), or an Ed25519 key (PKCS#8)';

/** True when a PEM text is a passphrase-protected key (PKCS#8 "ENCRYPTED PRIVATE KEY" or OpenSSL's legacy Proc-Type header). */
export function isEncryptedPem(pem: string): boolean {
  return pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /^Proc-Type:\s*4,\s*ENCRYPTED/m.test(pem);
}

/** What to do about an encrypted private_key_jwt key: the sidecar does not take a passphrase for it. */
export const signingKeyEncryptedHint = 'private_key_jwt takes an unencrypted key (protect the file instead)';

/** A certificate or key file that cannot be used; `field` says which file to fix. */
export class KeyFileError extends Error {
  readonly field: 'cert' | 'key' | 'passphrase';

  constructor(field: 'cert' | 'key' | 'passphrase', message: string) {
    super(message);
    this.name = 'KeyFileError';
    this.field = field;
  }
}

/**
 * The private key in `source`'s file, decrypted with `passphrase` when given. Throws a KeyFileError
 * naming the file and what is wrong with its content (`encryptedHint` ends the message for an
 * encrypted key without a passphrase: what the user can do), or SecretSource's Error when the key
 * file cannot be read.
 */
export function readPrivateKey(source: SecretSource, passphrase: SecretSource | undefined, encryptedHint: string): KeyObject {
  // An unreadable or empty file throws SecretSource's own Error: that one may pass (a Secret mid-swap).
  const pem = source.read();
  const file = source.file ?? 'the key';
  const encrypted = isEncryptedPem(pem);
  if (encrypted && !passphrase) throw new KeyFileError('key', `${file} is encrypted (passphrase-protected); ${encryptedHint}`);
  let secret: string | undefined;
  if (encrypted && passphrase) {
    try {
      secret = passphrase.read();
    } catch (err) {
      throw new KeyFileError('passphrase', (err as Error).message);
    }
  }
  try {
    return createPrivateKey(secret === undefined ? { key: pem, format: 'pem' } : { key: pem, format: 'pem', passphrase: secret });
  } catch (err) {
    if (encrypted && (err as { code?: string }).code === 'ERR_OSSL_BAD_DECRYPT') {
      throw new KeyFileError('passphrase', `the passphrase in ${passphrase?.file ?? 'its file'} does not decrypt ${file}`);
    }
    throw new KeyFileError('key', `${file} is not a PEM private key (expected PKCS#8, PKCS#1 RSA or SEC1 EC)`);
  }
}

/** The algorithm a key signs with when none is configured: RS256 for RSA, ES256/384/512 by curve, EdDSA for Ed25519. Throws for keys no JWS algorithm here fits. */
export function defaultSigningAlgorithm(key: KeyObject): SigningAlgorithm {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < minRsaBits) {
        throw new Error(`holds an RSA key of ${key.asymmetricKeyDetails?.modulusLength} bits; RSA signing keys must have at least ${minRsaBits}`);
      }
      return 'RS256';
    case 'ec': {
      const curve = curveAlgorithms[key.asymmetricKeyDetails?.namedCurve ?? ''];
      if (!curve) throw new Error(`holds an EC key on curve ${key.asymmetricKeyDetails?.namedCurve}; use ${supported}`);
      return curve.alg;
    }
    case 'ed25519':
      return 'EdDSA';
    default:
      throw new Error(`holds a key of type ${key.asymmetricKeyType}; use ${supported}`);
  }
}

/** Why `alg` cannot sign with `key` (a message naming the algorithm that fits), or undefined when it can. */
export function algorithmMismatch(alg: SigningAlgorithm, key: KeyObject): string | undefined {
  const fits = defaultSigningAlgorithm(key);
  const family = (a: SigningAlgorithm) => (a.startsWith('RS') || a.startsWith('PS') ? 'rsa' : a);
  if (family(alg) === family(fits)) return undefined;
  const kind = key.asymmetricKeyType === 'ec' ? `${curveAlgorithms[key.asymmetricKeyDetails?.namedCurve ?? '']?.curve} EC` : key.asymmetricKeyType === 'rsa' ? 'RSA' : 'Ed25519';
  const choices = fits === 'RS256' ? 'RS256, RS384, RS512, PS256, PS384 or PS512' : fits;
  return `${alg} does not fit the ${kind} key; use ${choices} (or leave signingAlgorithm out)`;
}

/** A client certificate and its key as PEM, the key decrypted: what tls.createSecureContext takes. */
export interface ClientCertificatePem {
  readonly cert: string;
  readonly key: string;
}

/** The certificate in `source`'s file. Throws KeyFileError, or SecretSource's Error when the file cannot be read. */
function readCertificate(source: SecretSource): { pem: string; certificate: X509Certificate } {
  const pem = source.read();
  try {
    return { pem, certificate: new X509Certificate(pem) };
  } catch {
    throw new KeyFileError('cert', `${source.file} is not a PEM certificate`);
  }
}

/** Reads a client certificate's files now and checks them: a certificate, a key that opens, and the two a pair. Throws KeyFileError. */
export function readClientCertificate(config: ClientCertificateConfig): ClientCertificatePem {
  // Every failure names its file here, an unreadable one too: start-up reports it under that field.
  const named = <T>(field: KeyFileError['field'], read: () => T): T => {
    try {
      return read();
    } catch (err) {
      throw err instanceof KeyFileError ? err : new KeyFileError(field, (err as Error).message);
    }
  };
  const { pem, certificate } = named('cert', () => readCertificate(config.cert));
  const key = named('key', () => readPrivateKey(config.key, config.keyPassphrase, 'set keyPassphraseFile to the file holding its passphrase'));
  if (!certificate.checkPrivateKey(key)) throw new KeyFileError('key', `${config.key.file} is not the key of the certificate in ${config.cert.file}`);
  return { cert: pem, key: key.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/**
 * The x5t#S256 JWS header of the certificate in `source` (RFC 7515 §4.1.8: base64url SHA-256 of
 * its DER), after checking that `key` is its key. Throws KeyFileError, or SecretSource's Error
 * when the file cannot be read.
 */
export function certificateThumbprint(source: SecretSource, key: KeyObject): string {
  const { certificate } = readCertificate(source);
  if (!certificate.checkPrivateKey(key)) throw new KeyFileError('cert', `${source.file} is not the certificate of the key in privateKeyFile`);
  return Buffer.from(certificate.fingerprint256.replaceAll(':', ''), 'hex').toString('base64url');
}
