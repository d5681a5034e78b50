// A config generation: what the proxy serves from one config. Its routes, each with a token source
// and a ProxyRoute (upstream pool, header policies, handler), and the table that finds a request's
// route. Loading a config builds the next generation from the one in force: a route whose `auth`
// (and outbound proxy, which its token requests go through, and its use of the shared token cache)
// is unchanged keeps its token source,
// and so its token (no new grant); a route whose settings are all
// unchanged keeps its ProxyRoute too (and its upstream connections); everything else is built
// anew. What the new generation no longer uses is handed back, to be closed once the swap is done.
// The server swaps generations in one assignment (server.ts); start-up is the first build.

import { changedFields, configHash, sameValue } from './config/compare.js';
import type { RouteConfig, SidecarConfig } from './config/types.js';
import { RouteTable } from './proxy/route-table.js';
import type { ProxyRoute } from './proxy/routes.js';
import type { TokenProvider } from './token/token-source.js';

/** A route's token provider and how to close it (token/create.ts's RouteTokens, or a worker's remote copy). */
export interface RouteTokens {
  readonly source: TokenProvider;
  close(reason?: string): Promise<void>;
}

export interface LiveRoute {
  readonly config: RouteConfig;
  readonly tokens: RouteTokens;
  readonly proxy: ProxyRoute;
}

export interface Generation {
  readonly config: SidecarConfig;
  /** configHash(config): names the config in the log and on /readyz. */
  readonly hash: string;
  readonly loadedAt: Date;
  readonly routes: ReadonlyMap<string, LiveRoute>;
  readonly tokenSources: ReadonlyMap<string, TokenProvider>;
  readonly table: RouteTable<ProxyRoute>;
}

/** How a route's parts are made (server.ts). */
export interface RouteFactories {
  tokens(route: RouteConfig): RouteTokens;
  proxy(route: RouteConfig, tokens: TokenProvider, config: SidecarConfig): ProxyRoute;
}

export interface GenerationChange {
  readonly generation: Generation;
  readonly added: readonly string[];
  readonly removed: readonly string[];
  /** Routes in both, by name, with the RouteConfig fields that differ. */
  readonly changed: Readonly<Record<string, readonly string[]>>;
  /** Token sources the new generation made (every one at start-up). */
  readonly newTokens: readonly RouteTokens[];
  /** What the previous generation had and the new one does not use: to be closed. */
  readonly retiredTokens: readonly RouteTokens[];
  readonly retiredProxies: readonly ProxyRoute[];
}

/**
 * Builds the generation for `config`, reusing what it can of `previous`. Nothing of `previous`
 * is touched: it serves on until the caller swaps. If a factory throws, what was made is closed
 * and the error goes to the caller.
 */
export function nextGeneration(config: SidecarConfig, previous: Generation | undefined, make: RouteFactories, loadedAt = new Date(), hash = configHash(config)): GenerationChange {
  const routes = new Map<string, LiveRoute>();
  const newTokens: RouteTokens[] = [];
  const newProxies: ProxyRoute[] = [];
  const changed: Record<string, string[]> = {};
  // A new shared-secret header name changes what every route must not forward.
  const sameListener = previous !== undefined && sameValue(previous.config.inbound.sharedSecretHeader?.name, config.inbound.sharedSecretHeader?.name);
  try {
    for (const route of config.routes) {
      const before = previous?.routes.get(route.name);
      if (before && !sameValue(before.config, route)) changed[route.name] = changedFields(before.config, route);
      let tokens = before?.tokens;
      if (!tokens || !sameValue(before?.config.auth, route.auth) || !sameValue(before?.config.outboundProxy, route.outboundProxy) || before?.config.tokenCache !== route.tokenCache) {
        tokens = make.tokens(route);
        newTokens.push(tokens);
      }
      let proxy = before?.proxy;
      if (!proxy || proxy.tokens !== tokens.source || !sameListener || changed[route.name]) {
        proxy = make.proxy(route, tokens.source, config);
        newProxies.push(proxy);
      }
      routes.set(route.name, { config: route, tokens, proxy });
    }
  } catch (err) {
    for (const proxy of newProxies) void proxy.close();
    for (const tokens of newTokens) void tokens.close();
    throw err;
  }
  const kept = [...routes.values()];
  const old = [...(previous?.routes.values() ?? [])];
  return {
    generation: {
      config,
      hash,
      loadedAt,
      routes,
      tokenSources: new Map(kept.map((route) => [route.config.name, route.tokens.source])),
      table: new RouteTable(kept.map((route) => route.proxy)),
    },
    added: config.routes.filter((route) => !previous?.routes.has(route.name)).map((route) => route.name),
    removed: old.filter((route) => !routes.has(route.config.name)).map((route) => route.config.name),
    changed,
    newTokens,
    retiredTokens: old.filter((route) => !kept.some((live) => live.tokens === route.tokens)).map((route) => route.tokens),
    retiredProxies: old.filter((route) => !kept.some((live) => live.proxy === route.proxy)).map((route) => route.proxy),
  };
}

/**
 * Settings that need a new socket (the proxy's and admin listeners, and the header size limit,
 * which Node's HTTP server takes when it is made) cannot change at a reload, nor can `workers`,
 * `tracing` (its exporter is made once, at start) and the shared token cache's connection (its URL,
 * keys and TLS: one connection for the process's life; a route's `tokenCache: false` does apply at a
 * reload). Returns `next` with those of `live` in their place, and the fields that differed
 * ("listen.port"), for the log.
 */
export function keepSocketSettings(live: SidecarConfig, next: SidecarConfig): { config: SidecarConfig; refused: readonly string[] } {
  const refused = [
    ...changedFields(live.listen, next.listen).map((field) => `listen.${field}`),
    ...(live.inbound.maxHeaderBytes === next.inbound.maxHeaderBytes ? [] : ['listen.maxHeaderBytes']),
    ...changedFields(live.admin, next.admin).map((field) => `admin.${field}`),
    ...(live.workers === next.workers ? [] : ['workers']),
    // The exporter and sampler are set up once, at start (tracing/otel.ts).
    ...(sameValue(live.tracing, next.tracing) ? [] : ['tracing']),
    ...(sameValue(live.tokenCache, next.tokenCache) ? [] : ['tokenCache']),
  ];
  if (refused.length === 0) return { config: next, refused };
  const inbound = Object.freeze({ ...next.inbound, maxHeaderBytes: live.inbound.maxHeaderBytes });
  const { tracing: _nextTracing, tokenCache: _nextCache, ...rest } = next;
  return {
    config: Object.freeze({ ...rest, listen: live.listen, admin: live.admin, workers: live.workers, inbound, ...(live.tracing ? { tracing: live.tracing } : {}), ...(live.tokenCache ? { tokenCache: live.tokenCache } : {}) }),
    refused,
  };
}
