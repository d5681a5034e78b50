// private_key_jwt (RFC 7523 §2.2, OpenID Connect Core §9): a short-lived JWT signed with the
// client's private key, sent as client_assertion. The key file is read at every token request, so
// a rotated key applies without a restart. jose signs; it is loaded the first time it is needed.

import { randomUUID, type KeyObject } from 'node:crypto';
import { algorithmMismatch, certificateThumbprint, defaultSigningAlgorithm, KeyFileError, readPrivateKey, signingKeyEncryptedHint } from '../../config/keys.js';
import type { SigningAlgorithm } from '../../config/signing-algorithms.js';
import type { SecretSource } from '../../config/secret.js';
import { credentialsUnreadable, TokenError } from '../errors.js';
import type { ClientAuthentication, ClientAuthRequest } from './types.js';

export const assertionType = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** How long an assertion is valid: enough for one request and some clock skew, well under the 5 minutes identity providers allow. */
export const assertionLifetimeSeconds = 120;

export async function privateKeyJwt({ auth, clientId, tokenUrl, now }: ClientAuthRequest): Promise<ClientAuthentication> {
  // The config guarantees a key for this method.
  const { key, alg, thumbprint } = signingKey(auth.privateKey as SecretSource, auth.signingAlgorithm, auth.certificate);
  const { SignJWT } = await import('jose/jwt/sign');
  const issuedAt = Math.floor(now / 1000);
  const assertion = await new SignJWT()
    .setProtectedHeader({ alg, ...(auth.keyId ? { kid: auth.keyId } : {}), ...(thumbprint ? { 'x5t#S256': thumbprint } : {}) })
    .setIssuer(clientId)
    .setSubject(clientId)
    // Auth0 asks for its issuer (and has announced it will stop taking the token endpoint).
    .setAudience(auth.assertionAudience === 'issuer' ? (auth.assertionIssuer as string) : tokenUrl)
    .setJti(randomUUID())
    .setIssuedAt(issuedAt)
    // Some providers (Microsoft Entra ID among them) ask for nbf.
    .setNotBefore(issuedAt)
    .setExpirationTime(issuedAt + assertionLifetimeSeconds)
    .sign(key);
  return {
    // client_id is optional with an assertion (RFC 7521 §4.2) and many providers want it.
    form: { client_id: clientId, client_assertion_type: assertionType, client_assertion: assertion },
    headers: {},
    secrets: [assertion],
    rejectedHint: 'check the client id, that the identity provider holds the public key of auth.privateKeyFile (and its keyId), and the signing algorithm it expects',
  };
}

/**
 * The key as its file holds it now, the algorithm it signs with, and its certificate's thumbprint
 * when a certificate is configured. A file that holds no usable key fails as not retryable: quick
 * retries cannot help, a new file can (the credential watcher notices it and retries at once).
 */
function signingKey(source: SecretSource, configured: SigningAlgorithm | undefined, certificate: SecretSource | undefined): { key: KeyObject; alg: SigningAlgorithm; thumbprint: string | undefined } {
  const unusable = (reason: string) => new TokenError('BSC_TOKEN_CREDENTIALS', `cannot sign the client assertion: ${reason}`, { retryable: false });
  let key: KeyObject;
  let thumbprint: string | undefined;
  try {
    key = readPrivateKey(source, undefined, signingKeyEncryptedHint);
    thumbprint = certificate && certificateThumbprint(certificate, key);
  } catch (err) {
    throw err instanceof KeyFileError ? unusable(err.message) : credentialsUnreadable(err);
  }
  try {
    const alg = configured ?? defaultSigningAlgorithm(key);
    const mismatch = algorithmMismatch(alg, key);
    if (mismatch) throw new Error(mismatch);
    return { key, alg, thumbprint };
  } catch (err) {
    throw unusable(`${source.file}: ${(err as Error).message}`);
  }
}
