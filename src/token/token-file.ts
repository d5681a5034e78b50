// A token the platform issues and rotates in a file (a Kubernetes projected service-account token,
// AKS's AZURE_FEDERATED_TOKEN_FILE): a client assertion, or the subject or actor token of a token
// exchange. It is read anew for every token request: Kubernetes rotates the file by swapping the
// `..data` link of the volume, and a provider may refuse an assertion it has seen. Before it is
// sent, a JWT is checked to be one compact JWT whose exp leaves time for the request; every
// failure names the file, and an expired one says when it expired, never what the file holds.

import type { SecretSource } from '../config/secret.js';
import { credentialsUnreadable, TokenError } from './errors.js';
import { jwtClaims } from './jwt.js';

/**
 * A token from a file is sent only if it stays valid at least this long: the request may take a
 * while and the provider's clock may run ahead. The platform renews its tokens long before
 * (the kubelet at 80 % of the lifetime, so at least 12 minutes ahead for AKS's one-hour tokens).
 */
export const minRemainingSeconds = 30;

export interface TokenFromFile {
  readonly value: string;
  /** Its exp, seconds since the epoch; undefined for a token that is not checked as a JWT. */
  readonly expiresAt: number | undefined;
}

/**
 * The JWT `source` holds now. `what` names it in messages ("client assertion", "subject token").
 * Throws TokenError: BSC_TOKEN_CREDENTIALS when the file cannot be read, BSC_TOKEN_ASSERTION_INVALID
 * when it is not one JWT with exp (not retryable: a new file is noticed by the credential watch and
 * tried at once), BSC_TOKEN_ASSERTION_EXPIRED when its exp has passed or is too near (retryable: the
 * file is read again at the next attempt, by which time the platform may have rotated it).
 */
export function readJwtFile(source: SecretSource, what: string, nowMs: number): TokenFromFile {
  let value: string;
  try {
    value = source.read();
  } catch (err) {
    throw credentialsUnreadable(err);
  }
  const file = source.file ?? 'its inline value';
  const claims = jwtClaims(value);
  if (claims === undefined) {
    throw new TokenError('BSC_TOKEN_ASSERTION_INVALID', `the ${what} in ${file} is not a JWT (one compact JWT, header.payload.signature, is expected)`, { retryable: false });
  }
  const exp = claims.exp;
  if (typeof exp !== 'number' || !Number.isFinite(exp)) {
    throw new TokenError('BSC_TOKEN_ASSERTION_INVALID', `the ${what} in ${file} has no exp claim; only a JWT that expires is sent`, { retryable: false });
  }
  const now = nowMs / 1000;
  if (exp - now < minRemainingSeconds) {
    const when = new Date(exp * 1000).toISOString();
    const state = exp <= now ? `expired at ${when} (${Math.round(now - exp)} s ago)` : `expires at ${when}, in less than ${minRemainingSeconds} s`;
    throw new TokenError('BSC_TOKEN_ASSERTION_EXPIRED', `the ${what} in ${file} ${state}; it is read again at the next attempt: check that the platform rotates it (a projected service-account token's expirationSeconds)`, { retryable: true });
  }
  return { value, expiresAt: exp };
}

/** What `source` holds now, as it is (an opaque token is not checked). Throws TokenError. */
export function readTokenFile(source: SecretSource): TokenFromFile {
  try {
    return { value: source.read(), expiresAt: undefined };
  } catch (err) {
    throw credentialsUnreadable(err);
  }
}
