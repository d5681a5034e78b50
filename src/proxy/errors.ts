// The one place where an error becomes an HTTP status and a JSON body. Bodies name the route and
// the reason, never a token or secret.

import { SidecarError, type ErrorCode } from '../errors.js';
import { OutboundProxyError } from '../outbound/errors.js';
import { TokenError } from '../token/errors.js';

export interface ErrorReply {
  readonly statusCode: number;
  readonly body: { readonly error: string; readonly message: string; readonly route?: string; readonly requestId?: string };
  readonly retryAfterSeconds?: number;
}

/** Undici's and Node's error codes, by what they mean for the caller. */
const timeoutCodes = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT', 'BSC_OUTBOUND_PROXY_TIMEOUT']);
const resetCodes = new Set(['ECONNRESET', 'UND_ERR_SOCKET', 'EPIPE', 'UND_ERR_CLOSED']);
const unreachableCodes = new Set(['BSC_OUTBOUND_PROXY_UNREACHABLE', 'BSC_OUTBOUND_PROXY_REFUSED', 'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_INFO', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'ERR_TLS_CERT_ALTNAME_INVALID']);

/** The sidecar's own refusals (and an upstream answer it cannot relay). The body's `error` is the code without BSC_, in lower case. */
const ownStatus: Partial<Record<ErrorCode, number>> = {
  BSC_BAD_REQUEST: 400,
  BSC_FORBIDDEN: 403,
  BSC_NOT_FOUND: 404,
  BSC_METHOD_NOT_ALLOWED: 405,
  BSC_REQUEST_TIMEOUT: 408,
  BSC_PAYLOAD_TOO_LARGE: 413,
  BSC_HEADERS_TOO_LARGE: 431,
  BSC_OVERLOADED: 503,
  BSC_BAD_UPSTREAM_RESPONSE: 502,
};

/** A refusal of the sidecar's own, also when it comes wrapped (a body cut by the size limit surfaces as an upstream error). */
function ownRefusal(err: unknown): SidecarError | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof SidecarError && ownStatus[e.code] !== undefined) return e;
  }
  return undefined;
}

export type UpstreamErrorKind = 'timeout' | 'reset' | 'connect';

/** Classifies an upstream failure, for the status code and for metrics. */
export function upstreamErrorKind(err: unknown): UpstreamErrorKind | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: string }).code;
    if (!code) continue;
    if (timeoutCodes.has(code)) return 'timeout';
    if (resetCodes.has(code)) return 'reset';
    if (unreachableCodes.has(code)) return 'connect';
  }
  return undefined;
}

export function errorReply(err: unknown, route?: string): ErrorReply {
  const where = route ? ` (route "${route}")` : '';
  if (err instanceof TokenError) {
    return {
      statusCode: 503,
      body: { error: 'token_unavailable', message: err.message, ...(route ? { route } : {}) },
      retryAfterSeconds: Math.max(1, Math.ceil((err.retryAfterMs ?? 1000) / 1000)),
    };
  }
  const own = ownRefusal(err);
  if (own) {
    return {
      statusCode: ownStatus[own.code] as number,
      body: { error: own.code.slice(4).toLowerCase(), message: own.message, ...(route ? { route } : {}) },
      ...(own.code === 'BSC_OVERLOADED' ? { retryAfterSeconds: 1 } : {}),
    };
  }
  if (err instanceof OutboundProxyError) {
    // The message names the proxy (host:port) and what it did; never its URL.
    return { statusCode: err.code === 'BSC_OUTBOUND_PROXY_TIMEOUT' ? 504 : 502, body: { error: err.code.slice(4).toLowerCase(), message: `${err.message}${where}`, ...(route ? { route } : {}) } };
  }
  const kind = upstreamErrorKind(err);
  if (kind === 'timeout') return { statusCode: 504, body: { error: 'upstream_timeout', message: `the upstream did not answer in time${where}`, ...(route ? { route } : {}) } };
  if (kind === 'reset') return { statusCode: 502, body: { error: 'upstream_reset', message: `the upstream closed the connection${where}`, ...(route ? { route } : {}) } };
  if (kind === 'connect') return { statusCode: 502, body: { error: 'upstream_unreachable', message: `cannot connect to the upstream${where}`, ...(route ? { route } : {}) } };
  if (err instanceof SidecarError) return { statusCode: 500, body: { error: err.code.slice(4).toLowerCase(), message: err.message } };
  const statusCode = (err as { statusCode?: number }).statusCode;
  if (statusCode && statusCode >= 400 && statusCode < 500) {
    return { statusCode, body: { error: 'bad_request', message: (err as Error).message } };
  }
  return { statusCode: 502, body: { error: 'proxy_error', message: `the request could not be forwarded${where}`, ...(route ? { route } : {}) } };
}
