// Failures of an outbound proxy, named by host:port (never by its URL, which may carry a password),
// with codes of their own so a caller, a log reader and /readyz can tell "the proxy" from "the API".

import { maxHeaderSize, STATUS_CODES } from 'node:http';
import { errors } from 'undici';
import { SidecarError } from '../errors.js';
import type { ProxyEndpoint } from '../config/proxy-endpoint.js';

export type OutboundProxyErrorCode = 'BSC_OUTBOUND_PROXY_UNREACHABLE' | 'BSC_OUTBOUND_PROXY_REFUSED' | 'BSC_OUTBOUND_PROXY_TIMEOUT';

export class OutboundProxyError extends SidecarError {
  declare readonly code: OutboundProxyErrorCode;
  /** The proxy, as host:port. */
  readonly proxy: string;
  /** False when only a change of configuration can help (the proxy wants other credentials: 407). */
  readonly retryable: boolean;

  constructor(code: OutboundProxyErrorCode, proxy: ProxyEndpoint, message: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super(code, message, { cause: options.cause });
    this.name = 'OutboundProxyError';
    this.proxy = proxy.name;
    this.retryable = options.retryable ?? true;
  }
}

const timeoutCodes = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'ETIMEDOUT']);
const closedCodes = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE', 'UND_ERR_CLOSED']);

/** A failure to reach `proxy` or to hear its answer; `target` is the host:port it was asked for. */
export function proxyFailure(err: unknown, proxy: ProxyEndpoint, target: string, timeoutMs: number): OutboundProxyError {
  if (err instanceof OutboundProxyError) return err;
  const code = (err as { code?: string }).code ?? 'error';
  if (timeoutCodes.has(code)) {
    return new OutboundProxyError('BSC_OUTBOUND_PROXY_TIMEOUT', proxy, `the outbound proxy ${proxy.name} did not answer within ${timeoutMs} ms (on the way to ${target})`, { cause: err });
  }
  // Connected, but the answer to CONNECT was no HTTP (a SOCKS port, a TLS port named http://) or too large to read.
  if (err instanceof errors.HTTPParserError) {
    return new OutboundProxyError('BSC_OUTBOUND_PROXY_UNREACHABLE', proxy, `the outbound proxy ${proxy.name} answered CONNECT with something that is not HTTP: is it an HTTP proxy, and does it speak the URL's scheme? (on the way to ${target})`, { cause: err });
  }
  if (code === 'UND_ERR_HEADERS_OVERFLOW') {
    return new OutboundProxyError('BSC_OUTBOUND_PROXY_UNREACHABLE', proxy, `the outbound proxy ${proxy.name} answered CONNECT with headers larger than ${Math.round(maxHeaderSize / 1024)} KiB (on the way to ${target})`, { cause: err });
  }
  if (closedCodes.has(code)) {
    return new OutboundProxyError('BSC_OUTBOUND_PROXY_UNREACHABLE', proxy, `the outbound proxy ${proxy.name} closed the connection before answering (on the way to ${target})`, { cause: err });
  }
  return new OutboundProxyError('BSC_OUTBOUND_PROXY_UNREACHABLE', proxy, `cannot connect to the outbound proxy ${proxy.name} (${code})`, { cause: err });
}

/** The proxy answered `status` instead of letting the request through to `target`. */
export function proxyRefusal(status: number, proxy: ProxyEndpoint, target: string): OutboundProxyError {
  const hint =
    status === 407
      ? proxy.proxyAuthorization()
        ? '; check the user and password in the proxy URL'
        : '; the proxy wants credentials: give them in the proxy URL (http://user:password@host:port)'
      : status === 403
        ? '; the proxy does not allow this destination'
        : '';
  return new OutboundProxyError('BSC_OUTBOUND_PROXY_REFUSED', proxy, `the outbound proxy ${proxy.name} refused the connection to ${target}: ${status} ${STATUS_CODES[status] ?? ''}`.trimEnd() + hint, {
    // Until the configuration changes, a 407 is all this proxy will ever answer.
    retryable: status !== 407,
  });
}
