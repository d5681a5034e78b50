// Errors with stable codes, in the style of fastify's FST_* codes: a code a program can match on
// and a message a person can act on. Messages never contain secrets or tokens.

export type ErrorCode =
  | 'BSC_CONFIG_INVALID'
  | 'BSC_TOKEN_REJECTED'
  | 'BSC_TOKEN_HTTP_ERROR'
  | 'BSC_TOKEN_MALFORMED'
  | 'BSC_TOKEN_NETWORK'
  | 'BSC_TOKEN_TIMEOUT'
  | 'BSC_TOKEN_UNAVAILABLE'
  | 'BSC_TOKEN_CREDENTIALS'
  | 'BSC_TOKEN_ASSERTION_INVALID'
  | 'BSC_TOKEN_ASSERTION_EXPIRED'
  | 'BSC_DISCOVERY_UNREACHABLE'
  | 'BSC_DISCOVERY_HTTP_ERROR'
  | 'BSC_DISCOVERY_MALFORMED'
  | 'BSC_DISCOVERY_ISSUER_MISMATCH'
  | 'BSC_DISCOVERY_INSECURE_ENDPOINT'
  | 'BSC_UPSTREAM_UNREACHABLE'
  | 'BSC_UPSTREAM_TIMEOUT'
  | 'BSC_UPSTREAM_RESET'
  | 'BSC_OUTBOUND_PROXY_UNREACHABLE'
  | 'BSC_OUTBOUND_PROXY_REFUSED'
  | 'BSC_OUTBOUND_PROXY_TIMEOUT'
  | 'BSC_BAD_UPSTREAM_RESPONSE'
  | 'BSC_BAD_REQUEST'
  | 'BSC_FORBIDDEN'
  | 'BSC_NOT_FOUND'
  | 'BSC_SOCKET_IN_USE'
  | 'BSC_SOCKET_PATH_OCCUPIED'
  | 'BSC_METHOD_NOT_ALLOWED'
  | 'BSC_PAYLOAD_TOO_LARGE'
  | 'BSC_HEADERS_TOO_LARGE'
  | 'BSC_OVERLOADED'
  | 'BSC_REQUEST_TIMEOUT'
  | 'BSC_DEPENDENCY_MISSING'
  | 'BSC_INTERNAL';

export class SidecarError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SidecarError';
    this.code = code;
  }
}

export class ConfigError extends SidecarError {
  /** One entry per problem, each `path: what is wrong`. */
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super('BSC_CONFIG_INVALID', `invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}
