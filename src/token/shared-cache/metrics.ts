// The shared token cache's metrics, per route, registered only when a cache is configured. Token
// grants stay counted by bearer_sidecar_token_fetches_total (a token taken from the cache is none),
// so the saving shows as grants that did not happen. Alert rules use these names: keep them.

import { Counter, Gauge, type Registry } from 'prom-client';

export type LookupResult = 'hit' | 'miss' | 'error';
export type LockWaitOutcome = 'token' | 'timeout';
/** read: GET of the entry; lock / unlock: the fetching replica's lock; write: the new entry; revoke: compare and delete after a 401; decrypt: an entry that did not open. */
export type CacheOperation = 'read' | 'lock' | 'unlock' | 'write' | 'revoke' | 'decrypt';
const operations: readonly CacheOperation[] = ['read', 'lock', 'unlock', 'write', 'revoke', 'decrypt'];

export interface CacheMetrics {
  /** A route uses the cache (its gauge shows `up()`) until the returned function is called. */
  addRoute(route: string, up: () => boolean): () => void;
  lookup(route: string, result: LookupResult): void;
  lockWait(route: string, outcome: LockWaitOutcome): void;
  error(route: string, operation: CacheOperation): void;
}

export function cacheMetrics(registry: Registry): CacheMetrics {
  const routes = new Map<string, { up: () => boolean; users: number }>();
  new Gauge({
    name: 'bearer_sidecar_token_cache_up',
    help: 'Shared token cache, per route using it: 1 when it answers, 0 when it is down (each replica then fetches its own tokens).',
    labelNames: ['route'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [route, { up }] of routes) this.set({ route }, up() ? 1 : 0);
    },
  });
  const lookups = new Counter({
    name: 'bearer_sidecar_token_cache_lookups_total',
    help: 'Shared token cache lookups by route and result: hit (a usable token), miss (none, or one due for refresh), error (the cache failed).',
    labelNames: ['route', 'result'] as const,
    registers: [registry],
  });
  const lockWaits = new Counter({
    name: 'bearer_sidecar_token_cache_lock_waits_total',
    help: 'Waits for another replica fetching the token, by route and outcome: token (it came) or timeout (this replica fetched its own).',
    labelNames: ['route', 'outcome'] as const,
    registers: [registry],
  });
  const errors = new Counter({
    name: 'bearer_sidecar_token_cache_errors_total',
    help: 'Shared token cache calls that failed, by route and operation (read, lock, unlock, write, revoke, decrypt).',
    labelNames: ['route', 'operation'] as const,
    registers: [registry],
  });
  return {
    addRoute(route, up) {
      const entry = routes.get(route);
      if (entry) entry.users += 1;
      else routes.set(route, { up, users: 1 });
      // Every series from the start, so rate() and alerts see one before the first event.
      for (const result of ['hit', 'miss', 'error'] as const) lookups.inc({ route, result }, 0);
      for (const outcome of ['token', 'timeout'] as const) lockWaits.inc({ route, outcome }, 0);
      for (const operation of operations) errors.inc({ route, operation }, 0);
      let removed = false;
      return () => {
        const current = routes.get(route);
        if (removed || !current) return;
        removed = true;
        if (--current.users === 0) routes.delete(route);
      };
    },
    lookup: (route, result) => lookups.inc({ route, result }),
    lockWait: (route, outcome) => lockWaits.inc({ route, outcome }),
    error: (route, operation) => errors.inc({ route, operation }),
  };
}
