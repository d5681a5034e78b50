// Why a token request failed, and whether trying again can help.

import { SidecarError, type ErrorCode } from '../errors.js';
import type { OutboundProxyError } from '../outbound/errors.js';

export class TokenError extends SidecarError {
  /** False for answers that cannot change by retrying (bad credentials, unknown grant, ...). */
  readonly retryable: boolean;
  /** From a Retry-After header on a 429 or 503. */
  readonly retryAfterMs: number | undefined;
  /** HTTP status of the token endpoint's answer, when there was one. */
  readonly status: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { retryable: boolean; retryAfterMs?: number | undefined; status?: number | undefined; cause?: unknown },
  ) {
    super(code, message, { cause: options.cause });
    this.name = 'TokenError';
    this.retryable = options.retryable;
    this.retryAfterMs = options.retryAfterMs;
    this.status = options.status;
  }
}

export function isTokenError(err: unknown): err is TokenError {
  return err instanceof TokenError;
}

/**
 * A credential file (client id, secret, private key or certificate) could not be read. A mounted
 * Secret can be briefly missing while Kubernetes swaps it: worth another try. Its code says
 * credentials, not network: what to look at is the file.
 */
export function credentialsUnreadable(err: unknown): TokenError {
  return new TokenError('BSC_TOKEN_CREDENTIALS', `cannot read credentials: ${(err as Error).message}`, { retryable: true });
}

/**
 * The outbound proxy failed on the way to `what` (the token endpoint, a discovery document): its
 * code and reason (which name the proxy by host:port), and no retry after a 407.
 */
export function proxyFailed(what: string, err: OutboundProxyError): TokenError {
  return new TokenError(err.code, `${what} unreachable: ${err.message}${err.retryable ? '' : '; not retrying'}`, { retryable: err.retryable, cause: err });
}
