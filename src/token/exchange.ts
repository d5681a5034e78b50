// One OAuth2 token request: a POST with the route's grant (grant.ts: client credentials, RFC 6749
// §4.4, or token exchange, RFC 8693), authenticated the route's way (client-auth/), a timeout, and
// a checked response. Every failure is a TokenError that says
// whether retrying can help. No caching, no retries: token-source.ts composes those around this.

import { request, type Dispatcher } from 'undici';
import type { AuthConfig } from '../config/types.js';
import { OutboundProxyError } from '../outbound/errors.js';
import { clientAuthentication } from './client-auth/index.js';
import { proxyFailed, TokenError } from './errors.js';
import { exchangeResponseProblem, grantRequest } from './grant.js';
import { jwtExpiry } from './jwt.js';

export interface Token {
  readonly accessToken: string;
  readonly lifetimeSeconds: number;
  /** Where the lifetime came from, for logs. */
  readonly lifetimeFrom: 'expires_in' | 'jwt' | 'default';
  readonly scope: string | undefined;
  /**
   * Set on a token another replica fetched (from the shared token cache): when its life began (ms,
   * the clock's), so that every replica schedules its refresh for the same moment.
   */
  readonly sharedSince?: number;
}

export interface ExchangeOptions {
  readonly signal?: AbortSignal;
  readonly dispatcher?: Dispatcher;
  /** The token endpoint for this request (discovered from auth.issuer); default auth.tokenUrl. */
  readonly tokenUrl?: string;
  /** Wall-clock now in ms, for JWT exp. */
  readonly now?: () => number;
  /** The outbound proxy the dispatcher goes through (host:port), for messages. */
  readonly via?: string | undefined;
}

/** OAuth2 error codes that no retry can fix (RFC 6749 §5.2). */
const permanentErrors = new Set(['invalid_client', 'invalid_grant', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope', 'invalid_request']);
/** The largest token response (and discovery document) read. */
const maxResponseBytes = 256 * 1024;

export async function exchangeClientCredentials(auth: AuthConfig, options: ExchangeOptions = {}): Promise<Token> {
  const tokenUrl = options.tokenUrl ?? auth.tokenUrl;
  // A programming error, not a token failure: discovery resolves the URL before any exchange.
  if (tokenUrl === undefined) throw new TypeError('no token URL: resolve auth.issuer first (token/discovery.ts)');
  const now = (options.now ?? Date.now)();
  const grant = grantRequest(auth, now);
  const client = await clientAuthentication(auth, tokenUrl, now);
  const form = new URLSearchParams(grant.form);
  for (const [key, value] of Object.entries(auth.extraParams)) form.set(key, value);
  // After extraParams: they cannot override the client's authentication.
  for (const [key, value] of Object.entries(client.form)) form.set(key, value);
  const secrets = [...grant.secrets, ...client.secrets];
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
    ...client.headers,
  };

  const timeout = AbortSignal.timeout(auth.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const startedAt = (options.now ?? Date.now)();
  let status: number;
  let retryAfter: string | string[] | undefined;
  let text: string;
  try {
    const response = await request(tokenUrl, {
      method: 'POST',
      headers,
      body: form.toString(),
      signal,
      headersTimeout: auth.timeoutMs,
      bodyTimeout: auth.timeoutMs,
      maxRedirections: 0,
      ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
    } as Parameters<typeof request>[1]);
    status = response.statusCode;
    retryAfter = response.headers['retry-after'];
    text = await readLimited(response.body);
  } catch (err) {
    if (timeout.aborted) {
      const via = options.via ? ` through the outbound proxy ${options.via}` : '';
      throw new TokenError('BSC_TOKEN_TIMEOUT', `token endpoint did not answer within ${auth.timeoutMs} ms${via}`, { retryable: true, cause: err });
    }
    if (options.signal?.aborted) throw err;
    if (err instanceof OutboundProxyError) throw proxyFailed('token endpoint', err);
    const code = (err as { code?: string }).code;
    throw new TokenError('BSC_TOKEN_NETWORK', `token endpoint unreachable: ${code ?? (err as Error).message}`, { retryable: true, cause: err });
  }

  const scrub = (message: string) => scrubSecrets(message, secrets);
  if (status >= 200 && status < 300) return parseTokenResponse(text, status, auth, startedAt, scrub);
  throw errorFromResponse(status, text, retryAfter, (options.now ?? Date.now)(), scrub, client.rejectedHint);
}

function parseTokenResponse(text: string, status: number, auth: AuthConfig, startedAt: number, scrub: (m: string) => string): Token {
  const malformed = (why: string) => new TokenError('BSC_TOKEN_MALFORMED', `token endpoint answered ${status} but ${why}`, { retryable: true, status });
  if (text.trim() === '') throw malformed('the body is empty');
  const fields = parseJsonObject(text, (why) => malformed(`the body ${why}`));
  const accessToken = fields.access_token;
  if (typeof accessToken !== 'string' || accessToken === '') throw malformed('access_token is missing');
  if (/[\s\x00-\x1f\x7f]/.test(accessToken)) throw malformed('access_token contains characters not allowed in a header');
  const exchangeProblem = exchangeResponseProblem(auth.tokenExchange, fields);
  if (exchangeProblem) throw new TokenError('BSC_TOKEN_MALFORMED', `token exchange answered ${status} but ${scrub(exchangeProblem)}`, { retryable: false, status });
  const tokenType = fields.token_type;
  if (tokenType !== undefined && (typeof tokenType !== 'string' || tokenType.toLowerCase() !== 'bearer')) {
    throw new TokenError('BSC_TOKEN_MALFORMED', `token endpoint issued a token of type ${scrub(JSON.stringify(tokenType))}, not Bearer`, { retryable: false, status });
  }

  let lifetimeSeconds: number;
  let lifetimeFrom: Token['lifetimeFrom'];
  const expiresIn = typeof fields.expires_in === 'string' && /^\d+$/.test(fields.expires_in) ? Number(fields.expires_in) : fields.expires_in;
  if (expiresIn !== undefined && expiresIn !== null) {
    if (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn) || expiresIn <= 0) {
      throw malformed(`expires_in is ${scrub(JSON.stringify(expiresIn))}, not a positive number of seconds`);
    }
    lifetimeSeconds = expiresIn;
    lifetimeFrom = 'expires_in';
  } else {
    const exp = jwtExpiry(accessToken);
    if (exp !== undefined) {
      lifetimeSeconds = exp - startedAt / 1000;
      lifetimeFrom = 'jwt';
      if (lifetimeSeconds <= 0) throw malformed('the token it issued has already expired (JWT exp)');
    } else {
      lifetimeSeconds = auth.defaultExpiresInSeconds;
      lifetimeFrom = 'default';
    }
  }
  return {
    accessToken,
    lifetimeSeconds: Math.min(lifetimeSeconds, auth.maxLifetimeSeconds),
    lifetimeFrom,
    scope: typeof fields.scope === 'string' ? fields.scope : undefined,
  };
}

function errorFromResponse(status: number, text: string, retryAfter: string | string[] | undefined, now: number, scrub: (m: string) => string, rejectedHint: string): TokenError {
  let oauthError: string | undefined;
  let description: string | undefined;
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    if (typeof body.error === 'string') oauthError = body.error;
    if (typeof body.error_description === 'string') description = body.error_description;
  } catch {
    // not JSON: the status alone says enough
  }
  const detail = oauthError ? `: ${oauthError}${description ? ` (${description})` : ''}` : '';
  // Scrubbed before it is cut: a cut would leave a prefix of a secret that no longer matches it.
  const message = scrub(`token endpoint answered ${status}${detail}`).slice(0, 300);
  const retryable = (status === 408 || status === 429 || status >= 500) && !(oauthError && permanentErrors.has(oauthError));
  if (!retryable) {
    const hint = oauthError === 'invalid_client' || status === 401 ? `; ${rejectedHint}` : '';
    return new TokenError('BSC_TOKEN_REJECTED', `${message}${hint}; retrying cannot change this answer`, { retryable: false, status });
  }
  return new TokenError('BSC_TOKEN_HTTP_ERROR', message, { retryable: true, retryAfterMs: parseRetryAfter(retryAfter, now), status });
}

/** `text` as a JSON object, else the error `malformed` makes of why ("is not JSON", "is not a JSON object"). */
export function parseJsonObject(text: string, malformed: (why: string) => Error): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw malformed('is not JSON');
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw malformed('is not a JSON object');
  return body as Record<string, unknown>;
}

/** Retry-After as delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  if (/^\d+$/.test(text.trim())) return Number(text.trim()) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export async function readLimited(body: AsyncIterable<Buffer> & { destroy(): unknown }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > maxResponseBytes) {
      body.destroy();
      throw new Error(`response larger than ${maxResponseBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Anything shaped like a JWT: an endpoint may echo a token the request did not send as it is. */
const jwtShaped = /ey[A-Za-z0-9_-]{10,}\.ey[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*)?/g;

function scrubSecrets(message: string, secrets: readonly string[]): string {
  let out = message;
  for (const secret of secrets) if (secret.length >= 4) out = out.replaceAll(secret, '[redacted]');
  return out.replace(jwtShaped, '[redacted]');
}
