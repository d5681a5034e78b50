// One route's token: fetched once however many requests ask at the same moment (single flight),
// refreshed in the background ahead of expiry, never handed out in its last seconds of life, and
// retried with backoff when the endpoint fails. It knows nothing of HTTP requests: the proxy asks
// it for a token and tells it when a token was rejected.

import pRetry from 'p-retry';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { RetryConfig } from '../config/types.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { TokenError } from './errors.js';
import type { Token } from './exchange.js';

export interface TokenSourceOptions {
  readonly name: string;
  /** One attempt at a token; `attempt` counts the attempts of one fetch cycle from 1. Throws TokenError. */
  readonly fetchToken: (signal: AbortSignal, attempt: number) => Promise<Token>;
  readonly refreshAheadRatio: number;
  readonly refreshAheadMinSeconds: number;
  readonly safetyMarginSeconds: number;
  readonly tokenWaitMs: number;
  readonly retry: RetryConfig;
  /** After a rejection (401) made it drop a token, further rejections are ignored this long. Default 0. */
  readonly refreshOn401CooldownSeconds?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Told of every fetch's outcome (for metrics); `shared`: the token came from the shared token cache, no grant. */
  readonly onFetch?: (outcome: 'success' | 'failure', error?: TokenError, shared?: boolean) => void;
  /** Told when a token the upstream rejected is dropped (the shared token cache drops it too). */
  readonly onRejected?: (token: string) => void;
}

export type TokenState = 'starting' | 'ready' | 'refreshing' | 'unavailable' | 'closed';

export interface TokenStatus {
  readonly name: string;
  readonly state: TokenState;
  /** Seconds until the current token may no longer be sent; absent without a token. */
  readonly expiresInSeconds?: number;
  readonly lastError?: string;
  /** The stable code of lastError (BSC_...). */
  readonly lastErrorCode?: string;
}

interface CachedToken {
  readonly value: string;
  readonly lifetimeSeconds: number;
  /** Last moment (ms) the token may be sent: expiry less the safety margin. */
  readonly usableUntil: number;
  readonly refreshAt: number;
}

/** Timings for a token of a given lifetime obtained at `obtainedAt` (ms). Exported for tests. */
export function tokenSchedule(
  obtainedAt: number,
  lifetimeSeconds: number,
  options: Pick<TokenSourceOptions, 'refreshAheadRatio' | 'refreshAheadMinSeconds' | 'safetyMarginSeconds'>,
): { usableUntil: number; refreshAt: number } {
  // The margin is clamped so short lifetimes stay usable for most of their life.
  const margin = Math.min(options.safetyMarginSeconds, lifetimeSeconds / 4);
  // Refresh after `ratio` of the lifetime, and at least `min` seconds before expiry, but never in
  // the first half of the lifetime (that would refresh in a loop) and never after the margin starts.
  let ahead = Math.max(lifetimeSeconds * (1 - options.refreshAheadRatio), options.refreshAheadMinSeconds);
  ahead = Math.max(Math.min(ahead, lifetimeSeconds / 2), margin);
  return {
    usableUntil: obtainedAt + (lifetimeSeconds - margin) * 1000,
    refreshAt: obtainedAt + (lifetimeSeconds - ahead) * 1000,
  };
}

/** The longest Retry-After honoured; a longer one is read as this. */
const maxRetryAfterMs = 3_600_000;

/**
 * The wait between fetch cycles after the token endpoint rejected the request (a TokenError that
 * is not retryable: invalid_client, unauthorized_client, invalid_scope, any 4xx but 408 and 429):
 * 1 minute after the first rejection, doubling to 15 minutes. Such an answer cannot change until
 * someone fixes the credentials or the client's registration. A change of the credential files is
 * tried at once (credentialsChanged), so this schedule only paces the checks for a fix made
 * elsewhere (at the provider), slowly enough that no provider's rate limit or lockout minds it;
 * answers that can change (5xx, 429, timeouts) keep the retry config's faster backoff.
 */
export const rejectedRetry = { firstDelayMs: 60_000, maxDelayMs: 15 * 60_000 } as const;

/**
 * What the proxy needs of a route's token: the TokenSource itself in one process; in a worker
 * (workers > 1), a copy of the primary's (workers/remote-token-source.ts).
 */
export type TokenProvider = Pick<TokenSource, 'name' | 'start' | 'peek' | 'getToken' | 'invalidate' | 'status' | 'close'>;

export class TokenSource {
  readonly name: string;
  readonly #options: TokenSourceOptions;
  readonly #clock: Clock;
  readonly #closing = new AbortController();
  #current: CachedToken | undefined;
  #inflight: Promise<void> | undefined;
  #lastError: TokenError | undefined;
  /** After a failed fetch, requests fail fast until then instead of hammering the endpoint. */
  #retryNotBefore = 0;
  #consecutiveFailures = 0;
  /** Rejections (non-retryable failures) since the last token or credentials change. */
  #rejections = 0;
  #timer: TimerHandle | undefined;
  #closed = false;
  #closedReason = 'the token source is closed (shutting down)';
  /** When a rejection (401) last made it drop the current token. */
  #droppedOn401At = Number.NEGATIVE_INFINITY;
  /** Bumped when the credential files change, so a fetch that read the old ones can tell. */
  #credentialsVersion = 0;

  constructor(options: TokenSourceOptions) {
    this.name = options.name;
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  /** Starts the first fetch in the background; requests arriving meanwhile wait for it. */
  start(): void {
    void this.refresh().catch(() => {});
  }

  /** The current token if it may still be sent, without waiting. The proxy's hot path. */
  peek(): string | undefined {
    const current = this.#current;
    return current && this.#clock.now() < current.usableUntil ? current.value : undefined;
  }

  /** The current token and the last moment (ms, the clock's) it may be sent; for the copies in workers. */
  held(): { readonly value: string; readonly usableUntil: number } | undefined {
    const current = this.#current;
    return current && this.#clock.now() < current.usableUntil ? { value: current.value, usableUntil: current.usableUntil } : undefined;
  }

  /** A token that may be sent now, fetching one (once, for all callers) if needed. Throws TokenError. */
  async getToken(): Promise<string> {
    if (this.#closed) throw this.#unavailable(this.#closedReason);
    const token = this.peek();
    if (token) return token;
    const now = this.#clock.now();
    if (!this.#inflight && this.#lastError && now < this.#retryNotBefore) {
      throw this.#unavailable(this.#lastError.message, this.#retryNotBefore - now);
    }
    const wait = this.#options.tokenWaitMs;
    const timedOut = Symbol('timeout');
    const stopWaiting = new AbortController();
    const result = await Promise.race([
      this.refresh().then(
        () => undefined,
        () => undefined,
      ),
      sleep(wait, timedOut, { signal: stopWaiting.signal }).catch(() => undefined),
    ]);
    stopWaiting.abort();
    const fresh = this.peek();
    if (fresh) return fresh;
    if (this.#closed) throw this.#unavailable(this.#closedReason);
    if (result === timedOut) throw this.#unavailable(`no token after waiting ${wait} ms; the token endpoint is slow or failing`);
    throw this.#unavailable(this.#lastError?.message ?? 'no token', Math.max(0, this.#retryNotBefore - this.#clock.now()));
  }

  /**
   * The upstream rejected `token` (401). Drop it if it is still the current one and fetch another,
   * once however many requests report the same token. Within the cooldown after such a drop the
   * report is ignored: an upstream that answers 401 for other reasons must not make every request
   * cost a token request.
   */
  invalidate(token: string): Promise<void> {
    const now = this.#clock.now();
    const cooldownMs = (this.#options.refreshOn401CooldownSeconds ?? 0) * 1000;
    if (this.#current?.value === token) {
      if (now - this.#droppedOn401At < cooldownMs) {
        this.#options.logger?.debug({ route: this.name }, 'upstream rejected the token again within the cooldown; keeping it');
        return Promise.resolve();
      }
      this.#current = undefined;
      this.#droppedOn401At = now;
      this.#options.onRejected?.(token);
      if (this.#rejectedUntil(now)) {
        this.#options.logger?.warn({ route: this.name }, 'upstream rejected the token; the token endpoint rejected the credentials too, so no new token before the next scheduled attempt');
        return Promise.resolve();
      }
      this.#retryNotBefore = 0;
      this.#options.logger?.warn({ route: this.name }, 'upstream rejected the token; fetching a new one');
    }
    // A newer token already replaced the rejected one, or the credentials were rejected: nothing to fetch.
    if (this.peek() || this.#rejectedUntil(now)) return Promise.resolve();
    return this.refresh().catch(() => {});
  }

  /**
   * The credential files changed. A valid token stays in use (the next fetch reads the new
   * files anyway); but after a failed fetch, say invalid_client before a rotated Secret reached
   * this pod, the next attempt starts now instead of after the backoff.
   */
  credentialsChanged(): void {
    if (this.#closed) return;
    this.#credentialsVersion += 1;
    if (!this.#lastError || this.#inflight) return; // a fetch under way retries at its end (see #reject)
    this.#options.logger?.info({ route: this.name }, 'credentials changed after a failed token request; retrying now');
    this.#retryNotBefore = 0;
    this.#rejections = 0;
    void this.refresh().catch(() => {});
  }

  /** Fetches a new token unless a fetch is already under way (single flight). */
  refresh(): Promise<void> {
    this.#inflight ??= this.#fetch().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  status(): TokenStatus {
    const now = this.#clock.now();
    const current = this.#current && now < this.#current.usableUntil ? this.#current : undefined;
    let state: TokenState;
    if (this.#closed) state = 'closed';
    else if (current) state = this.#inflight ? 'refreshing' : 'ready';
    else if (this.#lastError) state = 'unavailable';
    else state = 'starting';
    return {
      name: this.name,
      state,
      ...(current ? { expiresInSeconds: Math.floor((current.usableUntil - now) / 1000) } : {}),
      ...(this.#lastError ? { lastError: this.#lastError.message, lastErrorCode: this.#lastError.code } : {}),
    };
  }

  /**
   * Stops fetching and drops the token: it is never handed out again (a reload that changed the
   * route's auth closes its source). Callers still waiting for a token get a TokenError (503)
   * with `reason`.
   */
  close(reason?: string): void {
    this.#closed = true;
    if (reason !== undefined) this.#closedReason = reason;
    this.#current = undefined;
    this.#closing.abort();
    if (this.#timer) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #fetch(): Promise<void> {
    if (this.#closed) return;
    const { retry, logger } = this.#options;
    const signal = this.#closing.signal;
    const credentialsVersion = this.#credentialsVersion;
    let obtainedAt = 0;
    try {
      const token = await pRetry(
        (attempt) => {
          obtainedAt = this.#clock.now();
          return this.#options.fetchToken(signal, attempt);
        },
        {
          retries: retry.retries,
          minTimeout: retry.minDelayMs,
          maxTimeout: retry.maxDelayMs,
          factor: 2,
          randomize: true,
          maxRetryTime: retry.maxTimeMs,
          signal,
          shouldRetry: ({ error }) => error instanceof TokenError && error.retryable,
          onFailedAttempt: async ({ error, attemptNumber, retriesLeft }) => {
            const retryable = error instanceof TokenError && error.retryable;
            logger?.warn(
              { route: this.name, attempt: attemptNumber, retriesLeft: retryable ? retriesLeft : 0, code: (error as TokenError).code, reason: error.message },
              'token request failed',
            );
            // Honour Retry-After before p-retry's own delay. One longer than the longest backoff
            // ends this fetch: the wait between fetch cycles (#reject) then lasts the whole of it.
            const retryAfterMs = error instanceof TokenError ? error.retryAfterMs : undefined;
            if (retryable && retriesLeft > 0 && retryAfterMs) {
              if (retryAfterMs > retry.maxDelayMs) throw error;
              await sleep(retryAfterMs, undefined, { signal }).catch(() => {});
            }
          },
        },
      );
      if (this.#closed) return;
      this.#accept(token, token.sharedSince ?? obtainedAt);
    } catch (err) {
      if (this.#closed) return;
      const error =
        err instanceof TokenError ? err : new TokenError('BSC_TOKEN_NETWORK', `token request failed: ${(err as Error).message}`, { retryable: true, cause: err });
      this.#reject(error, credentialsVersion !== this.#credentialsVersion);
      throw error;
    }
  }

  #accept(token: Token, obtainedAt: number): void {
    const { usableUntil, refreshAt } = tokenSchedule(obtainedAt, token.lifetimeSeconds, this.#options);
    this.#current = { value: token.accessToken, lifetimeSeconds: token.lifetimeSeconds, usableUntil, refreshAt };
    this.#lastError = undefined;
    this.#consecutiveFailures = 0;
    this.#rejections = 0;
    this.#retryNotBefore = 0;
    this.#schedule(refreshAt);
    const shared = token.sharedSince !== undefined;
    this.#options.onFetch?.('success', undefined, shared);
    this.#options.logger?.info(
      {
        route: this.name,
        lifetimeSeconds: Math.round(token.lifetimeSeconds),
        lifetimeFrom: token.lifetimeFrom,
        ...(shared ? { from: 'shared token cache' } : {}),
        nextRefreshInSeconds: Math.round((refreshAt - this.#clock.now()) / 1000),
      },
      'token refreshed',
    );
  }

  #reject(error: TokenError, credentialsChanged: boolean): void {
    this.#lastError = error;
    this.#consecutiveFailures += 1;
    if (!error.retryable) this.#rejections += 1;
    const { minDelayMs, maxDelayMs } = this.#options.retry;
    // Back off between whole fetch cycles too, growing with each failed cycle (slowly after a
    // rejection, see rejectedRetry), and at least as long as the endpoint's Retry-After asked (up
    // to an hour, against absurd values).
    const grown = error.retryable
      ? Math.min(maxDelayMs, Math.max(minDelayMs, 1000) * 2 ** Math.min(this.#consecutiveFailures - 1, 16))
      : Math.min(rejectedRetry.maxDelayMs, rejectedRetry.firstDelayMs * 2 ** Math.min(this.#rejections - 1, 16));
    const backoff = Math.max(grown, Math.min(error.retryAfterMs ?? 0, maxRetryAfterMs));
    const now = this.#clock.now();
    // Credentials that changed while this fetch used the old ones deserve an attempt at once.
    this.#retryNotBefore = credentialsChanged ? now : now + backoff;
    // A still-valid token is kept and used meanwhile; the next attempt comes after the backoff.
    const keep = this.#current && now < this.#current.usableUntil ? this.#current : undefined;
    if (!keep) this.#current = undefined;
    this.#schedule(this.#retryNotBefore);
    this.#options.onFetch?.('failure', error);
    this.#options.logger?.error(
      {
        route: this.name,
        code: error.code,
        reason: error.message,
        retryable: error.retryable,
        keptTokenSeconds: keep ? Math.floor((keep.usableUntil - now) / 1000) : 0,
        nextAttemptInSeconds: Math.round((this.#retryNotBefore - now) / 1000),
      },
      'could not get a token',
    );
  }

  #schedule(at: number): void {
    if (this.#timer) this.#clock.clearTimeout(this.#timer);
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      void this.refresh().catch(() => {});
    }, at - this.#clock.now());
  }

  /** True while the last fetch was rejected (not retryable) and its next attempt is not yet due. */
  #rejectedUntil(now: number): boolean {
    return this.#lastError !== undefined && !this.#lastError.retryable && now < this.#retryNotBefore;
  }

  #unavailable(reason: string, retryAfterMs?: number): TokenError {
    return new TokenError('BSC_TOKEN_UNAVAILABLE', `no valid token for route "${this.name}": ${reason}`, {
      retryable: true,
      retryAfterMs: retryAfterMs ?? 1000,
    });
  }
}
