// Discovery: a route with `auth.issuer` instead of `tokenUrl` learns its token endpoint and the
// client authentication methods the server takes from the server's metadata document, OpenID
// Connect Discovery 1.0 (`{issuer}/.well-known/openid-configuration`) first, then RFC 8414
// (`https://host/.well-known/oauth-authorization-server{path}`). It is a token-URL resolver in front
// of exchange.ts: the document comes through the route's token dispatcher (the TLS and proxy
// settings of token requests), is kept until a token request fails, and is read again at the start
// of the next fetch cycle. Its failures are TokenErrors, so the token source retries them with the
// token backoff, and /readyz and `check` show them as they show a failing token endpoint.

import type { Logger } from 'pino';
import { request, type Dispatcher } from 'undici';
import { credentialUrlProblem } from '../config/endpoint-url.js';
import type { AuthMethod } from '../config/presets.js';
import type { AuthConfig } from '../config/types.js';
import { OutboundProxyError } from '../outbound/errors.js';
import { proxyFailed, TokenError } from './errors.js';
import { parseJsonObject, readLimited } from './exchange.js';

/** What the sidecar takes from an authorization server's metadata document. */
export interface ServerMetadata {
  readonly issuer: string;
  readonly tokenEndpoint: string;
  /** token_endpoint_auth_methods_supported; when absent, its default: client_secret_basic (RFC 8414 §2). */
  readonly authMethods: readonly string[];
  /** The URL the document was read from. */
  readonly documentUrl: string;
  /** mtls_endpoint_aliases.token_endpoint (RFC 8705 §5): where a client authenticating with mutual TLS sends token requests. */
  readonly mtlsTokenEndpoint?: string;
}

export interface DiscoveryOptions {
  readonly signal?: AbortSignal | undefined;
  readonly dispatcher?: Dispatcher | undefined;
  /** Bound on each document request. */
  readonly timeoutMs: number;
  /** allowInsecureTokenUrl: an http:// token_endpoint off loopback is accepted. */
  readonly allowInsecure: boolean;
}

/**
 * The two places a document may be, in the order they are tried. OpenID Connect Discovery §4
 * appends to the issuer; RFC 8414 §3.1 puts the well-known segment between host and path. A
 * terminating "/" of the issuer is removed first (both specifications say so).
 */
export function discoveryUrls(issuer: string): { readonly oidc: string; readonly rfc8414: string } {
  const trimmed = issuer.replace(/\/$/, '');
  const { origin, pathname } = new URL(trimmed);
  const path = pathname === '/' ? '' : pathname;
  return { oidc: `${trimmed}/.well-known/openid-configuration`, rfc8414: `${origin}/.well-known/oauth-authorization-server${path}` };
}

/** Reads and checks the issuer's metadata document. Throws TokenError (BSC_DISCOVERY_*). */
export async function discover(issuer: string, options: DiscoveryOptions): Promise<ServerMetadata> {
  const { oidc, rfc8414 } = discoveryUrls(issuer);
  let answer = await getDocument(oidc, options);
  // A server without OpenID Connect answers 404 (or another refusal) there; RFC 8414's place is next.
  if (isAbsent(answer.status)) {
    const fallback = await getDocument(rfc8414, options);
    if (isAbsent(fallback.status)) {
      throw new TokenError(
        'BSC_DISCOVERY_HTTP_ERROR',
        `no discovery document for issuer ${issuer}: ${oidc} answered ${answer.status} and ${rfc8414} answered ${fallback.status}; check auth.issuer (or set auth.tokenUrl)`,
        { retryable: false, status: fallback.status },
      );
    }
    answer = fallback;
  }
  if (answer.status < 200 || answer.status >= 300) {
    const retryable = answer.status === 408 || answer.status === 429 || answer.status >= 500;
    const redirect = answer.status >= 300 && answer.status < 400 ? ' (redirects are not followed: auth.issuer must be the exact issuer)' : '';
    throw new TokenError('BSC_DISCOVERY_HTTP_ERROR', `discovery document ${answer.url} answered ${answer.status}${redirect}`, { retryable, status: answer.status });
  }
  return parseMetadata(answer.text, answer.url, issuer, options.allowInsecure);
}

/** A status that says "no document here" rather than "try again later". */
function isAbsent(status: number): boolean {
  return status >= 400 && status < 500 && status !== 408 && status !== 429;
}

async function getDocument(url: string, options: DiscoveryOptions): Promise<{ url: string; status: number; text: string }> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  try {
    const response = await request(url, {
      method: 'GET',
      headers: { accept: 'application/json' },
      signal,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
    });
    return { url, status: response.statusCode, text: await readLimited(response.body) };
  } catch (err) {
    if (timeout.aborted) throw new TokenError('BSC_DISCOVERY_UNREACHABLE', `discovery document ${url} did not come within ${options.timeoutMs} ms`, { retryable: true, cause: err });
    if (options.signal?.aborted) throw err;
    if (err instanceof OutboundProxyError) throw proxyFailed(`discovery document ${url}`, err);
    const code = (err as { code?: string }).code;
    throw new TokenError('BSC_DISCOVERY_UNREACHABLE', `discovery document ${url} unreachable: ${code ?? (err as Error).message}`, { retryable: true, cause: err });
  }
}

/** The checks of RFC 8414 §3.2–3.3 that matter here, each failure a specific error. */
export function parseMetadata(text: string, documentUrl: string, issuer: string, allowInsecure: boolean): ServerMetadata {
  const malformed = (why: string) => new TokenError('BSC_DISCOVERY_MALFORMED', `discovery document ${documentUrl} ${why}`, { retryable: false });
  const fields = parseJsonObject(text, malformed);
  if (fields.issuer !== issuer) {
    throw new TokenError(
      'BSC_DISCOVERY_ISSUER_MISMATCH',
      `discovery document ${documentUrl} names issuer ${quote(fields.issuer)}, not the configured ${quote(issuer)}; they must be equal to the character (RFC 8414 §3.3); fix auth.issuer if this is the right server`,
      { retryable: false },
    );
  }
  const tokenEndpoint = endpointUrl(fields.token_endpoint, 'token_endpoint', documentUrl, allowInsecure, malformed);
  const aliases = fields.mtls_endpoint_aliases;
  const alias = aliases && typeof aliases === 'object' && !Array.isArray(aliases) ? (aliases as Record<string, unknown>).token_endpoint : undefined;
  const mtlsTokenEndpoint = alias === undefined ? undefined : endpointUrl(alias, 'mtls_endpoint_aliases.token_endpoint', documentUrl, allowInsecure, malformed);
  const methods = fields.token_endpoint_auth_methods_supported;
  return {
    issuer,
    tokenEndpoint,
    authMethods: Array.isArray(methods) && methods.every((m) => typeof m === 'string') ? (methods as string[]) : ['client_secret_basic'],
    documentUrl,
    ...(mtlsTokenEndpoint ? { mtlsTokenEndpoint } : {}),
  };
}

/** A token endpoint URL from the document (`field` names it), held to the rule of auth.tokenUrl. */
function endpointUrl(value: unknown, field: string, documentUrl: string, allowInsecure: boolean, malformed: (why: string) => TokenError): string {
  if (typeof value !== 'string' || value === '') throw malformed(`has no ${field}`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw malformed(`has a ${field} that is not a URL: ${quote(value)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw malformed(`has a ${field} that is not http(s): ${quote(url.protocol)}`);
  const problem = credentialUrlProblem(url, allowInsecure);
  if (problem) {
    // Not the URL itself: it may carry credentials.
    throw new TokenError('BSC_DISCOVERY_INSECURE_ENDPOINT', `discovery document ${documentUrl} names ${field} ${printable(url)}, which ${problem}`, { retryable: false });
  }
  return value;
}

/** A URL without its credentials, query or fragment: what a message may show. */
function printable(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/** A value from the document, for an error message: JSON-quoted (no log injection) and bounded. */
function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/** Where one token request goes, and how the client authenticates there. */
export interface TokenEndpoint {
  readonly url: string;
  readonly method: AuthMethod;
  /** Set when `url` came from this issuer's discovery document. */
  readonly issuer?: string;
  /** Said once when the document is read: the method is not among the methods the server lists. */
  readonly warning?: string;
}

/**
 * The method to use with a discovered endpoint. A configured one is used as it is, with a warning
 * when the server does not list it (many servers' lists are incomplete). Otherwise
 * client_secret_basic when listed, else client_secret_post when listed, else client_secret_basic
 * (RFC 6749 §2.3.1 makes every server take it) with a warning.
 */
export function chooseMethod(auth: Pick<AuthConfig, 'method' | 'methodSet'>, supported: readonly string[]): { method: AuthMethod; warning?: string } {
  const listed = supported.join(', ') || 'none';
  if (auth.methodSet) {
    return supported.includes(auth.method)
      ? { method: auth.method }
      : { method: auth.method, warning: `auth.method ${auth.method} is not in the issuer's token_endpoint_auth_methods_supported (${listed}); using it anyway` };
  }
  for (const method of ['client_secret_basic', 'client_secret_post'] as const) if (supported.includes(method)) return { method };
  return { method: 'client_secret_basic', warning: `the issuer lists neither client_secret_basic nor client_secret_post (${listed}); trying client_secret_basic; set auth.method` };
}

/**
 * Where a client authenticating with `method` sends its token requests: for tls_client_auth the
 * mTLS alias of the token endpoint when the server publishes one (RFC 8705 §5: Keycloak and Okta,
 * among others, do; the plain endpoint may not ask for a client certificate), else
 * token_endpoint. tls_client_auth needs https://: its certificate goes in the TLS handshake.
 */
export function tokenEndpointFor(method: AuthMethod, metadata: ServerMetadata): string {
  if (method !== 'tls_client_auth') return metadata.tokenEndpoint;
  const url = metadata.mtlsTokenEndpoint ?? metadata.tokenEndpoint;
  if (!url.startsWith('https:')) {
    const field = metadata.mtlsTokenEndpoint ? 'mtls_endpoint_aliases.token_endpoint' : 'token_endpoint';
    throw new TokenError(
      'BSC_DISCOVERY_INSECURE_ENDPOINT',
      `discovery document ${metadata.documentUrl} names ${field} ${printable(new URL(url))}, but tls_client_auth needs https:// (the client certificate goes in the TLS handshake)`,
      { retryable: false },
    );
  }
  return url;
}

export interface TokenEndpointResolverOptions {
  readonly dispatcher?: Dispatcher | undefined;
  readonly logger?: Logger | undefined;
  /** The route's name, for logs. */
  readonly route?: string | undefined;
}

/**
 * A route's token endpoint: auth.tokenUrl as it is, or the one its issuer's document names. The
 * document is read once and kept; after a token request fails it is read again, once, at the start
 * of the next fetch cycle (attempt 1): an endpoint that moved is found again without doubling the
 * requests of every retry while a server is down.
 */
export class TokenEndpointResolver {
  readonly #auth: AuthConfig;
  readonly #options: TokenEndpointResolverOptions;
  #current: TokenEndpoint | undefined;
  #stale = false;

  constructor(auth: AuthConfig, options: TokenEndpointResolverOptions = {}) {
    this.#auth = auth;
    this.#options = options;
    if (auth.tokenUrl !== undefined) this.#current = { url: auth.tokenUrl, method: auth.method };
  }

  /** The endpoint last resolved, if any. */
  get current(): TokenEndpoint | undefined {
    return this.#current;
  }

  /** The endpoint for a token request; `attempt` is the attempt's number within its fetch cycle (1 for the first). */
  async resolve(signal?: AbortSignal, attempt = 1): Promise<TokenEndpoint> {
    const issuer = this.#auth.issuer;
    if (issuer === undefined) return this.#current as TokenEndpoint;
    if (this.#stale && attempt === 1) this.#current = undefined;
    if (this.#current) return this.#current;
    this.#stale = false;
    const metadata = await discover(issuer, { signal, dispatcher: this.#options.dispatcher, timeoutMs: this.#auth.timeoutMs, allowInsecure: this.#auth.allowInsecureTokenUrl });
    const { method, warning } = chooseMethod(this.#auth, metadata.authMethods);
    const endpoint: TokenEndpoint = { url: tokenEndpointFor(method, metadata), method, issuer, ...(warning ? { warning } : {}) };
    this.#current = endpoint;
    const { logger, route } = this.#options;
    logger?.info({ route, issuer, tokenEndpoint: endpoint.url, method, document: metadata.documentUrl }, 'token endpoint discovered');
    if (warning) logger?.warn({ route, issuer }, warning);
    return endpoint;
  }

  /** A token request failed: a discovered endpoint is looked up again by the next fetch cycle. */
  tokenRequestFailed(): void {
    if (this.#auth.issuer !== undefined) this.#stale = true;
  }
}
