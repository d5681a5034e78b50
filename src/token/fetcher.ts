// One token request for a route, as the token source makes it: the token endpoint (auth.tokenUrl,
// or discovered from auth.issuer), then the exchange there. Used by the server and by the
// `check` and `token` commands, so they fetch tokens the same way.

import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import type { AuthConfig } from '../config/types.js';
import { proxyFor, type OutboundProxySettings } from '../config/outbound-proxy.js';
import { TokenEndpointResolver, type TokenEndpoint } from './discovery.js';
import { exchangeClientCredentials, type Token } from './exchange.js';
import type { GrantTracing } from '../tracing/types.js';

export interface TokenFetcherOptions {
  /** The route's token dispatcher (TLS settings of auth.tls, outbound proxy); discovery goes through it too. */
  readonly dispatcher?: Dispatcher | undefined;
  /** The outbound proxy settings that dispatcher follows, to name the proxy in messages. */
  readonly outboundProxy?: OutboundProxySettings | undefined;
  readonly logger?: Logger | undefined;
  readonly route?: string | undefined;
  /** Wall-clock now in ms, for JWT exp. */
  readonly now?: (() => number) | undefined;
  /** Each attempt is a span when traces are on (tracing/). */
  readonly tracing?: GrantTracing | null | undefined;
}

export class TokenFetcher {
  readonly #auth: AuthConfig;
  readonly #options: TokenFetcherOptions;
  readonly #endpoints: TokenEndpointResolver;

  constructor(auth: AuthConfig, options: TokenFetcherOptions = {}) {
    this.#auth = auth;
    this.#options = options;
    this.#endpoints = new TokenEndpointResolver(auth, options);
  }

  /** The outbound proxy (host:port) a request to `url` goes through, if any. */
  via(url: string): string | undefined {
    const settings = this.#options.outboundProxy;
    return settings && proxyFor(url, settings)?.name;
  }

  /** Where the last token request went (or goes, without discovery). */
  get endpoint(): TokenEndpoint | undefined {
    return this.#endpoints.current;
  }

  /** One attempt; `attempt` is its number within the fetch cycle. Throws TokenError. */
  fetch(signal?: AbortSignal, attempt = 1): Promise<Token> {
    const tracing = this.#options.tracing;
    return tracing ? tracing.grant(this.#options.route ?? '', attempt, () => this.#fetch(signal, attempt)) : this.#fetch(signal, attempt);
  }

  async #fetch(signal: AbortSignal | undefined, attempt: number): Promise<Token> {
    const endpoint = await this.#endpoints.resolve(signal, attempt);
    // The method discovery chose, when the config left it to the default.
    const auth = endpoint.method === this.#auth.method ? this.#auth : { ...this.#auth, method: endpoint.method };
    const { dispatcher, now } = this.#options;
    try {
      return await exchangeClientCredentials(auth, { tokenUrl: endpoint.url, via: this.via(endpoint.url), ...(signal ? { signal } : {}), ...(dispatcher ? { dispatcher } : {}), ...(now ? { now } : {}) });
    } catch (err) {
      this.#endpoints.tokenRequestFailed();
      throw err;
    }
  }
}
