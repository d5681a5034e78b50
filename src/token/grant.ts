// The grant of a token request: what it asks for, in form fields. client_credentials (RFC 6749
// §4.4) asks with the client's own credentials alone; token_exchange (RFC 8693 §2.1) presents a
// token from a file (a Kubernetes service-account token, say), read anew for each request, and
// asks for one the API takes. exchange.ts adds the client's authentication and sends it.

import type { AuthConfig, TokenExchangeConfig } from '../config/types.js';
import { readJwtFile, readTokenFile, type TokenFromFile } from './token-file.js';
import type { SecretSource } from '../config/secret.js';

export const tokenExchangeGrantType = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** Token types whose value is a JWT (RFC 8693 §3): checked for exp before they are sent. */
const jwtTokenTypes = new Set(['urn:ietf:params:oauth:token-type:jwt', 'urn:ietf:params:oauth:token-type:id_token']);

export interface GrantRequest {
  readonly form: Readonly<Record<string, string>>;
  /** Values in this request that must never reach a message. */
  readonly secrets: readonly string[];
}

/** The grant's form fields of one token request, from the files as they are at `now` (ms). Throws TokenError. */
export function grantRequest(auth: AuthConfig, now: number): GrantRequest {
  const form: Record<string, string> = {};
  const secrets: string[] = [];
  const exchange = auth.tokenExchange;
  if (auth.grantType === 'token_exchange' && exchange) {
    form.grant_type = tokenExchangeGrantType;
    const subject = presented(exchange.subjectToken, exchange.subjectTokenType, 'subject token', now);
    form.subject_token = subject.value;
    form.subject_token_type = exchange.subjectTokenType;
    secrets.push(subject.value);
    if (exchange.actorToken) {
      const actorType = exchange.actorTokenType as string;
      const actor = presented(exchange.actorToken, actorType, 'actor token', now);
      form.actor_token = actor.value;
      form.actor_token_type = actorType;
      secrets.push(actor.value);
    }
    if (exchange.requestedTokenType) form.requested_token_type = exchange.requestedTokenType;
    if (auth.resource) form.resource = auth.resource;
  } else {
    form.grant_type = 'client_credentials';
  }
  if (auth.scope) form.scope = auth.scope;
  if (auth.audience) form.audience = auth.audience;
  return { form, secrets };
}

function presented(source: SecretSource, tokenType: string, what: string, now: number): TokenFromFile {
  return jwtTokenTypes.has(tokenType) ? readJwtFile(source, what, now) : readTokenFile(source);
}

/**
 * RFC 8693 §2.2.1: a token exchange answer names the type of what it issued, and the sidecar can
 * send only an access token of type Bearer (token_type N_A marks a token that is no access token,
 * RFC 8693 §2.2.1). Returns why the answer cannot be used, or undefined.
 */
export function exchangeResponseProblem(exchange: TokenExchangeConfig | undefined, fields: Record<string, unknown>): string | undefined {
  if (!exchange) return undefined;
  const issued = fields.issued_token_type;
  if (typeof issued !== 'string' || issued === '') return 'issued_token_type is missing (RFC 8693 §2.2.1)';
  const tokenType = fields.token_type;
  if (typeof tokenType !== 'string') return 'token_type is missing (RFC 8693 §2.2.1)';
  if (tokenType.toLowerCase() === 'n_a') {
    return `the token it issued is no access token (token_type N_A, issued_token_type ${JSON.stringify(issued.slice(0, 100))}): ask for an access token with requestedTokenType urn:ietf:params:oauth:token-type:access_token`;
  }
  return undefined;
}
