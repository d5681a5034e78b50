// One route's layer of the shared token cache, between its token source (single flight and refresh
// ahead in this process) and its fetcher: fleet-wide single flight. An attempt at a token reads the
// cache: a usable token there is taken as it is (with the moment its life began, so every replica
// refreshes it at the same moment). Else one replica takes the credential's lock (a lease, so a
// replica that dies while fetching does not block the fleet past it), fetches, writes the token
// and releases the lock; the others poll for it and take it, or after half their tokenWaitMs fetch
// their own (half: a fetch of their own then still fits in a request's wait). A token the upstream
// rejected is deleted only if the cache still holds that same value (compare and delete).
// Whenever the cache fails or does not answer in time, the layer steps aside: `direct` alone.

import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { AuthConfig } from '../../config/types.js';
import { systemClock, type Clock } from '../clock.js';
import type { Token } from '../exchange.js';
import { tokenSchedule } from '../token-source.js';
import type { CacheConnection } from './connection.js';
import { entryKeys, type EntryKeys, type EntrySeal, type SharedToken } from './entry.js';
import type { CacheMetrics } from './metrics.js';
import type { FetchToken, RouteTokenCache } from './types.js';

/** Polling for another replica's token: 25 ms, growing by half each time to 200 ms. */
const firstPollMs = 25;
const maxPollMs = 200;
/** Rejected tokens remembered (they must not be taken from the cache again), and entries known by token. */
const remembered = 4;

export interface LayerOptions {
  readonly route: string;
  readonly auth: AuthConfig;
  readonly connection: CacheConnection;
  readonly seal: EntrySeal;
  readonly keyPrefix: string;
  readonly clock?: Clock | undefined;
  readonly metrics?: CacheMetrics | undefined;
  readonly logger?: Logger | undefined;
}

type Lookup = { readonly kind: 'usable'; readonly token: SharedToken } | { readonly kind: 'none' } | { readonly kind: 'error' };

export class SharedTokenLayer implements RouteTokenCache {
  readonly #options: LayerOptions;
  readonly #clock: Clock;
  /** The cache's value each recent token came in (read or written), for compare and delete. */
  readonly #values = new Map<string, string>();
  readonly #rejected = new Set<string>();
  readonly #removeRoute: (() => void) | undefined;
  #keys: EntryKeys | undefined;
  #unopenedLogged = false;

  constructor(options: LayerOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#removeRoute = options.metrics?.addRoute(options.route, () => options.connection.up);
  }

  async fetch(direct: FetchToken, signal: AbortSignal, attempt: number): Promise<Token> {
    const { connection, auth } = this.#options;
    if (!(await connection.usable())) return direct(signal, attempt);
    let keys: EntryKeys;
    try {
      keys = this.#keys = entryKeys(auth, this.#options.keyPrefix);
    } catch {
      return direct(signal, attempt); // the client id's file is unreadable: the fetch says so
    }
    const waitUntil = performance.now() + auth.tokenWaitMs / 2;
    let pollMs = firstPollMs;
    let waited = false;
    for (;;) {
      const found = await this.#lookup(keys, !waited);
      if (found.kind === 'usable') {
        if (waited) this.#options.metrics?.lockWait(this.#options.route, 'token');
        return { accessToken: found.token.accessToken, lifetimeSeconds: found.token.lifetimeSeconds, lifetimeFrom: found.token.lifetimeFrom, scope: found.token.scope, sharedSince: found.token.obtainedAt };
      }
      if (found.kind === 'error') return direct(signal, attempt);
      const lockId = randomUUID();
      let locked: boolean;
      try {
        // The lease covers one attempt: the token request's timeout, once more for discovery, and a second.
        locked = await connection.setIfAbsent(keys.lock, lockId, 2 * auth.timeoutMs + 1_000);
      } catch {
        this.#options.metrics?.error(this.#options.route, 'lock');
        return direct(signal, attempt);
      }
      this.#options.logger?.trace({ route: this.#options.route, locked }, locked ? 'token cache: fetching the token for the fleet' : 'token cache: another replica is fetching the token; waiting');
      if (locked) {
        // The replica that held the lock may have shared its token and let go between the lookup
        // above and this lock: look once more before fetching, or the fleet makes a second grant.
        const shared = await this.#lookup(keys, false);
        if (shared.kind === 'usable') {
          await this.#unlock(keys, lockId);
          if (waited) this.#options.metrics?.lockWait(this.#options.route, 'token');
          return { accessToken: shared.token.accessToken, lifetimeSeconds: shared.token.lifetimeSeconds, lifetimeFrom: shared.token.lifetimeFrom, scope: shared.token.scope, sharedSince: shared.token.obtainedAt };
        }
        return this.#fetchAndShare(direct, signal, attempt, keys, lockId);
      }
      // Another replica is fetching it.
      waited = true;
      if (performance.now() >= waitUntil || !connection.up) {
        this.#options.metrics?.lockWait(this.#options.route, 'timeout');
        this.#options.logger?.info({ route: this.#options.route, waitedMs: Math.round(auth.tokenWaitMs / 2) }, 'another replica is still fetching the token; fetching one here');
        return this.#fetchAndShare(direct, signal, attempt, keys, undefined);
      }
      await sleep(Math.min(pollMs, Math.max(1, waitUntil - performance.now())), undefined, { signal });
      pollMs = Math.min(maxPollMs, pollMs * 1.5);
    }
  }

  rejected(token: string): void {
    this.#rejected.add(token);
    trim(this.#rejected);
    const value = this.#values.get(token);
    const keys = this.#keys;
    if (value === undefined || keys === undefined) return;
    this.#options.connection.deleteIfEquals(keys.token, value).then(
      (deleted) => this.#options.logger?.debug({ route: this.#options.route, deleted }, deleted ? 'rejected token deleted from the token cache' : 'the token cache holds another token already'),
      () => this.#options.metrics?.error(this.#options.route, 'revoke'),
    );
  }

  close(): void {
    this.#removeRoute?.();
  }

  /** The entry, if it holds a token this replica may use until its refresh is due. `count`: a lookup of its own (polls while waiting are not). */
  async #lookup(keys: EntryKeys, count: boolean): Promise<Lookup> {
    let value: string | null;
    try {
      value = await this.#options.connection.get(keys.token);
    } catch {
      this.#options.metrics?.error(this.#options.route, 'read');
      if (count) this.#options.metrics?.lookup(this.#options.route, 'error');
      return { kind: 'error' };
    }
    const token = value === null ? undefined : this.#open(keys, value);
    let usable = false;
    if (token && value !== null) {
      if (this.#rejected.has(token.accessToken)) {
        // A replica that has not seen the 401 yet: the token it wrote (or read) is not taken again.
        this.#options.connection.deleteIfEquals(keys.token, value).catch(() => this.#options.metrics?.error(this.#options.route, 'revoke'));
      } else {
        remember(this.#values, token.accessToken, value);
        usable = this.#fresh(token);
      }
    }
    if (count) this.#options.metrics?.lookup(this.#options.route, usable ? 'hit' : 'miss');
    this.#options.logger?.trace({ route: this.#options.route, entry: value === null ? 'absent' : token ? (usable ? 'usable' : 'due or rejected') : 'unopened' }, 'token cache lookup');
    return usable && token ? { kind: 'usable', token } : { kind: 'none' };
  }

  #open(keys: EntryKeys, value: string): SharedToken | undefined {
    const token = this.#options.seal.open(keys.token, value);
    if (!token) {
      this.#options.metrics?.error(this.#options.route, 'decrypt');
      if (!this.#unopenedLogged) {
        this.#unopenedLogged = true;
        this.#options.logger?.warn({ route: this.#options.route }, 'a token cache entry does not open with any key of the encryption key file (another key, or not written by bearer-sidecar); taken as a miss and replaced');
      }
    }
    return token;
  }

  /**
   * Usable until its refresh is due, as the token source schedules it (the same moment on every
   * replica). Due up to a second early (a tenth of a short token's time before refresh): the
   * replica that fetched it counted its life from a few milliseconds earlier.
   */
  #fresh(token: SharedToken): boolean {
    const { refreshAt, usableUntil } = tokenSchedule(token.obtainedAt, token.lifetimeSeconds, this.#options.auth);
    const early = Math.min(1_000, (refreshAt - token.obtainedAt) / 10);
    const now = this.#clock.now();
    return now < refreshAt - early && now < usableUntil;
  }

  async #fetchAndShare(direct: FetchToken, signal: AbortSignal, attempt: number, keys: EntryKeys, lockId: string | undefined): Promise<Token> {
    const { connection } = this.#options;
    const obtainedAt = this.#clock.now();
    let token: Token;
    try {
      token = await direct(signal, attempt);
    } catch (err) {
      if (lockId) await this.#unlock(keys, lockId);
      throw err;
    }
    const value = this.#options.seal.seal(keys.token, { ...token, obtainedAt });
    // The entry lives as long as the token.
    const ttlMs = obtainedAt + token.lifetimeSeconds * 1000 - this.#clock.now();
    try {
      if (ttlMs > 0) {
        await connection.set(keys.token, value, ttlMs);
        remember(this.#values, token.accessToken, value);
      }
    } catch {
      this.#options.metrics?.error(this.#options.route, 'write');
    }
    if (lockId) await this.#unlock(keys, lockId);
    return token;
  }

  async #unlock(keys: EntryKeys, lockId: string): Promise<void> {
    try {
      await this.#options.connection.deleteIfEquals(keys.lock, lockId);
    } catch {
      this.#options.metrics?.error(this.#options.route, 'unlock'); // its lease ends it
    }
  }
}

function remember(values: Map<string, string>, token: string, value: string): void {
  values.delete(token);
  values.set(token, value);
  trim(values);
}

/** Keeps the last `remembered` of a Set or Map (both keep insertion order). */
function trim(collection: Set<string> | Map<string, string>): void {
  for (const key of collection.keys()) {
    if (collection.size <= remembered) return;
    collection.delete(key);
  }
}
