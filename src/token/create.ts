// One route's token lifecycle, put together in one place for everyone who needs one: the sidecar
// (server.ts), createTokenSource and the Fastify plugin. It builds the token request (the exchange
// and the dispatcher it goes out through), the TokenSource around it (single flight, refresh
// ahead, backoff) and the watch on its credential files; close() undoes all of it.

import type { Logger } from 'pino';
import { watchSecretFiles } from '../config/secret-watch.js';
import type { AuthConfig } from '../config/types.js';
import { tokenDispatcher } from '../outbound/dispatcher.js';
import { direct, type OutboundProxySettings } from '../config/outbound-proxy.js';
import { warnUnverifiedTls } from '../tls.js';
import { credentialSources } from './client-auth/index.js';
import type { Clock } from './clock.js';
import type { Token } from './exchange.js';
import { TokenFetcher } from './fetcher.js';
import type { FetchToken, RouteTokenCache, SharedTokenCache } from './shared-cache/types.js';
import { TokenSource, type TokenSourceOptions } from './token-source.js';
import type { GrantTracing } from '../tracing/types.js';

export interface RouteTokenSourceOptions {
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Replaces the token exchange (tests). */
  readonly fetchToken?: (signal: AbortSignal, attempt: number) => Promise<Token>;
  /** Told of every fetch's outcome (metrics). */
  readonly onFetch?: TokenSourceOptions['onFetch'];
  /** Each grant is a span when traces are on (tracing/). */
  readonly tracing?: GrantTracing | null;
  /**
   * The shared token cache (shared-cache/open.ts), or its opening: a layer between the source and
   * its fetcher. A cache that does not open leaves the route fetching on its own.
   */
  readonly sharedCache?: SharedTokenCache | Promise<SharedTokenCache> | undefined;
}

export interface RouteTokens {
  readonly source: TokenSource;
  /**
   * Stops the source (its timers and any fetch under way; its token is dropped), the file watch,
   * and the token dispatcher. `reason` goes to callers still waiting for a token (a reload says why).
   */
  close(reason?: string): Promise<void>;
}

/**
 * Builds, but does not start, the token source of a route (`name` is used in logs and errors). Its
 * requests go through the route's outbound proxy, when it has one (in-process callers give none: direct).
 */
export function createRouteTokenSource(route: { readonly name: string; readonly auth: AuthConfig; readonly outboundProxy?: OutboundProxySettings }, options: RouteTokenSourceOptions = {}): RouteTokens {
  const { name, auth } = route;
  const outboundProxy = route.outboundProxy ?? direct;
  const { logger, clock } = options;
  if (logger) warnUnverifiedTls(name, 'token endpoint', auth.tls, logger);
  const dispatcher = tokenDispatcher(outboundProxy, auth.tls, auth.timeoutMs, logger);
  // The token endpoint (auth.tokenUrl, or discovered from auth.issuer), then the exchange there.
  const fetcher = new TokenFetcher(auth, { dispatcher, outboundProxy, logger, route: name, now: clock && (() => clock.now()), tracing: options.tracing });
  const fetchOwn: FetchToken = options.fetchToken ?? ((signal, attempt) => fetcher.fetch(signal, attempt));
  // A token exchange's token is the subject's (its subject token, read from a file at every grant),
  // which the cache key cannot name without reading that token: such a route fetches its own.
  const cache = options.sharedCache && auth.grantType !== 'token_exchange' ? sharedLayer(options.sharedCache, name, auth, clock) : undefined;
  const fetchToken: FetchToken = cache ? async (signal, attempt) => ((await cache.layer) ?? passThrough).fetch(fetchOwn, signal, attempt) : fetchOwn;
  const source = new TokenSource({
    name,
    fetchToken,
    refreshAheadRatio: auth.refreshAheadRatio,
    refreshAheadMinSeconds: auth.refreshAheadMinSeconds,
    safetyMarginSeconds: auth.safetyMarginSeconds,
    tokenWaitMs: auth.tokenWaitMs,
    refreshOn401CooldownSeconds: auth.refreshOn401CooldownSeconds,
    retry: auth.retry,
    ...(logger ? { logger } : {}),
    ...(options.onFetch ? { onFetch: options.onFetch } : {}),
    ...(cache ? { onRejected: (token: string) => cache.rejected(token) } : {}),
    ...(clock ? { clock } : {}),
  });
  const watch = watchSecretFiles(credentialSources(auth), () => source.credentialsChanged(), logger ? { logger } : {});
  return {
    source,
    async close(reason) {
      watch.close();
      source.close(reason);
      (await cache?.layer)?.close();
      await dispatcher?.close();
    },
  };
}

const passThrough: Pick<RouteTokenCache, 'fetch'> = { fetch: (direct, signal, attempt) => direct(signal, attempt) };

/** The route's layer of the shared cache, at once when the cache is open, else once it has opened (undefined if it failed to). */
function sharedLayer(opening: SharedTokenCache | Promise<SharedTokenCache>, name: string, auth: AuthConfig, clock: Clock | undefined) {
  let layer: RouteTokenCache | undefined;
  const made = (cache: SharedTokenCache) => (layer = cache.forRoute(name, auth, clock));
  const ready = opening instanceof Promise ? opening.then(made, () => undefined) : Promise.resolve(made(opening));
  return {
    layer: ready,
    // At once when it can be: the fetch that follows a rejection must not take the rejected token from the cache.
    rejected: (token: string) => (layer ? layer.rejected(token) : void ready.then((made) => made?.rejected(token))),
  };
}
