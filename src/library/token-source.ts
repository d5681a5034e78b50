// createTokenSource: the sidecar's token handling for any Node program. It takes what a route's
// `auth` takes in the config file, validated by the same schema, and gives back the route's token
// source behind a small interface. Built by createRouteTokenSource, as the sidecar's own are.

import type { Logger } from 'pino';
import { resolveInProcessOptions } from '../config/load.js';
import type { AuthOptions, OutboundProxyOptions, TokenCacheOptions } from '../config/schema.js';
import type { Clock } from '../token/clock.js';
import { createRouteTokenSource } from '../token/create.js';
import type { TokenStatus } from '../token/token-source.js';

export interface TokenSourceLike {
  /** A token that may be sent now; waits (at most `auth.tokenWaitMs`) for one being fetched. Throws TokenError. */
  getToken(): Promise<string>;
  /**
   * The API rejected `token` (it answered 401): it is dropped, and one new token is fetched
   * however many callers report it; within `auth.refreshOn401CooldownSeconds` of such a drop the
   * report is ignored. Resolves when the fetch it started (if any) has settled; never rejects.
   */
  invalidate(token: string): Promise<void>;
}

export interface BearerTokenSource extends TokenSourceLike {
  readonly name: string;
  /** State without waiting: starting, ready, refreshing, unavailable or closed; never the token. */
  status(): TokenStatus;
  /** Stops refreshing, retries and the credential-file watch; getToken() then fails. */
  close(): Promise<void>;
}

export interface CreateTokenSourceOptions {
  /** Names the source in log lines and error messages. Default "default". */
  readonly name?: string;
  /** A pino logger (or one with the same methods, e.g. `fastify.log`); without it nothing is logged. */
  readonly logger?: Logger;
  /** Time source (tests). */
  readonly clock?: Clock;
  /**
   * The outbound (forward) proxy of the token requests, as a route's `outboundProxy`: `false` for
   * none whatever the environment says, or `{ url | urlFile, noProxy }`. Default: HTTPS_PROXY,
   * HTTP_PROXY and NO_PROXY, read as the sidecar reads them.
   */
  readonly outboundProxy?: OutboundProxyOptions;
  /**
   * A token cache shared with other processes (Redis or Valkey), as the config file's top-level
   * `tokenCache` (url or urlFile, encryptionKeyFile, keyPrefix, timeoutMs, tls): one token per
   * credential for all of them. This source opens its own connection and close() closes it.
   */
  readonly tokenCache?: TokenCacheOptions;
}

/**
 * Validates `auth` (ConfigError naming the field, e.g. `auth.clientSecret: is required`) and
 * starts fetching the first token at once, in the background, so that the first getToken() is
 * usually answered from the cache. The refresh timer and the file watch never keep a program
 * alive; a token request under way, or its retries after a failure (at most auth.retry.maxTimeMs),
 * do, until close(), which stops everything at once.
 */
export function createTokenSource(auth: AuthOptions, options: CreateTokenSourceOptions = {}): BearerTokenSource {
  const resolved = resolveInProcessOptions({ auth, outboundProxy: options.outboundProxy, ...(options.tokenCache ? { tokenCache: options.tokenCache } : {}) });
  const name = options.name ?? 'default';
  const { logger, clock } = options;
  // Loaded only when asked for (ioredis and the cache's code).
  const tokenCache = resolved.tokenCache;
  const sharedCache = tokenCache && import('../token/shared-cache/open.js').then(({ openSharedTokenCache }) => openSharedTokenCache(tokenCache, { logger }));
  const { source, close } = createRouteTokenSource(
    { name, auth: resolved.auth, outboundProxy: resolved.outboundProxy },
    { ...(logger ? { logger } : {}), ...(clock ? { clock } : {}), ...(sharedCache ? { sharedCache } : {}) },
  );
  source.start();
  return {
    name,
    getToken: () => source.getToken(),
    invalidate: (token) => source.invalidate(token),
    status: () => source.status(),
    async close() {
      await close();
      await (await sharedCache?.catch(() => undefined))?.close();
    },
  };
}
