// The shared token cache as the rest of the program sees it, without loading it: the token source's
// stack (token/create.ts) takes a route's layer from it; the server opens it (open.ts, by dynamic
// import) only when the config has a `tokenCache`.

import type { AuthConfig } from '../../config/types.js';
import type { Clock } from '../clock.js';
import type { Token } from '../exchange.js';

export type FetchToken = (signal: AbortSignal, attempt: number) => Promise<Token>;

/** One route's layer between its token source and its fetcher (layer.ts). */
export interface RouteTokenCache {
  /**
   * A token for one attempt of the token source: a usable one from the cache; else one this
   * replica fetches with `direct` and shares (or another replica's, when it is fetching one). When
   * the cache fails, `direct` alone. Throws what `direct` throws.
   */
  fetch(direct: FetchToken, signal: AbortSignal, attempt: number): Promise<Token>;
  /** The upstream rejected `token`: dropped from the cache if the cache still holds it. */
  rejected(token: string): void;
  close(): void;
}

/** The process's connection to the cache (open.ts), shared by its routes. */
export interface SharedTokenCache {
  forRoute(route: string, auth: AuthConfig, clock?: Clock): RouteTokenCache;
  /** One line on the cache for `check`: reachable (and how fast) or why not. Throws when it is not reachable. */
  check(): Promise<string>;
  close(): Promise<void>;
}
