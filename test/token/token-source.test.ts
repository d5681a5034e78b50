import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TokenError } from '../../src/token/errors.js';
import type { Token } from '../../src/token/exchange.js';
import { TokenSource, tokenSchedule, type TokenSourceOptions } from '../../src/token/token-source.js';
import { ManualClock } from '../helpers/clock.js';

const defaults = { refreshAheadRatio: 0.8, refreshAheadMinSeconds: 60, safetyMarginSeconds: 30 };
const fastRetry = { retries: 3, minDelayMs: 1, maxDelayMs: 5, maxTimeMs: 5000 };

function token(n: number, lifetimeSeconds: number): Token {
  return { accessToken: `token-${n}`, lifetimeSeconds, lifetimeFrom: 'expires_in', scope: undefined };
}

/** A fetcher the test scripts: each call takes the next behaviour; it counts calls. */
function scripted(...behaviours: ((n: number) => Promise<Token>)[]) {
  let calls = 0;
  const fetchToken = (_signal: AbortSignal) => {
    calls += 1;
    const behaviour = behaviours[Math.min(calls, behaviours.length) - 1] as (n: number) => Promise<Token>;
    return behaviour(calls);
  };
  return { fetchToken, calls: () => calls };
}

const ok = (lifetime: number) => async (n: number) => token(n, lifetime);
const fail = (retryable: boolean, extra: Partial<{ retryAfterMs: number }> = {}) => async () => {
  throw new TokenError(retryable ? 'BSC_TOKEN_HTTP_ERROR' : 'BSC_TOKEN_REJECTED', retryable ? 'token endpoint answered 503' : 'token endpoint answered 401: invalid_client; retrying cannot change this answer', { retryable, ...extra });
};

function source(fetchToken: TokenSourceOptions['fetchToken'], clock: ManualClock, options: Partial<TokenSourceOptions> = {}): TokenSource {
  return new TokenSource({ name: 'api', fetchToken, clock, tokenWaitMs: 2000, retry: fastRetry, ...defaults, ...options });
}

describe('single flight', () => {
  test('200 concurrent requests at a cold start cause exactly one token request', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const fetcher = scripted(async (n) => {
      await gate;
      return token(n, 3600);
    });
    const tokens = source(fetcher.fetchToken, new ManualClock());
    const waiting = Array.from({ length: 200 }, () => tokens.getToken());
    await new Promise((resolve) => setImmediate(resolve));
    release();
    const results = await Promise.all(waiting);
    assert.equal(fetcher.calls(), 1);
    assert.ok(results.every((t) => t === 'token-1'));
    tokens.close();
  });

  test('at expiry too: 100 concurrent requests after the token ran out cause one token request', async () => {
    const clock = new ManualClock();
    let release!: () => void;
    const fetcher = scripted(ok(300), async (n) => {
      await new Promise<void>((resolve) => (release = resolve));
      return token(n, 300);
    });
    // refreshAheadMinSeconds 0 and ratio ~1: the refresh falls due just as the token stops being
    // usable, so the 100 requests meet no valid token (as after a suspended machine) and must
    // join the one fetch under way rather than start their own.
    const tokens = source(fetcher.fetchToken, clock, { refreshAheadRatio: 0.99, refreshAheadMinSeconds: 0, safetyMarginSeconds: 30 });
    assert.equal(await tokens.getToken(), 'token-1');
    clock.advance(271_000);
    assert.equal(tokens.peek(), undefined);
    const waiting = Array.from({ length: 100 }, () => tokens.getToken());
    await new Promise((resolve) => setImmediate(resolve));
    release();
    const results = await Promise.all(waiting);
    assert.equal(fetcher.calls(), 2, 'one fetch for the 100 requests');
    assert.ok(results.every((t) => t === 'token-2'));
    tokens.close();
  });

  test('100 reports of the same rejected token cause one refresh', async () => {
    const fetcher = scripted(ok(3600));
    const tokens = source(fetcher.fetchToken, new ManualClock());
    const first = await tokens.getToken();
    await Promise.all(Array.from({ length: 100 }, () => tokens.invalidate(first)));
    assert.equal(fetcher.calls(), 2);
    assert.equal(await tokens.getToken(), 'token-2');
    // A report about a token that is no longer current changes nothing.
    await tokens.invalidate(first);
    assert.equal(fetcher.calls(), 2);
    tokens.close();
  });
});

describe('refresh ahead of expiry, with the clock', () => {
  test('schedule: 80% of the lifetime, at least 60 s ahead, 30 s safety margin, clamped for short lifetimes', () => {
    assert.deepEqual(tokenSchedule(0, 86_400, defaults), { refreshAt: 69_120_000, usableUntil: 86_370_000 });
    assert.deepEqual(tokenSchedule(0, 3600, defaults), { refreshAt: 2_880_000, usableUntil: 3_570_000 });
    // Megaport's minimum lifetime: 60 s ahead wins over 20%.
    assert.deepEqual(tokenSchedule(0, 300, defaults), { refreshAt: 240_000, usableUntil: 270_000 });
    // A 60 s token: margin clamped to 15 s, refresh at half-life (never in a loop).
    assert.deepEqual(tokenSchedule(0, 60, defaults), { refreshAt: 30_000, usableUntil: 45_000 });
  });

  test('a 5-minute token is refreshed in the background at 240 s while requests keep the current one', async () => {
    const clock = new ManualClock();
    const fetcher = scripted(ok(300));
    const tokens = source(fetcher.fetchToken, clock);
    assert.equal(await tokens.getToken(), 'token-1');
    clock.advance(239_000);
    assert.equal(fetcher.calls(), 1);
    assert.equal(tokens.peek(), 'token-1');
    clock.advance(1_000);
    assert.equal(fetcher.calls(), 2, 'the refresh timer fired at 240 s');
    assert.equal(tokens.peek(), 'token-1', 'the current token is still served during the refresh');
    await tokens.refresh();
    assert.equal(tokens.peek(), 'token-2');
    assert.equal(tokens.status().state, 'ready');
    tokens.close();
  });

  test('a 24-hour token is refreshed at 19.2 h, not before', async () => {
    const clock = new ManualClock();
    const fetcher = scripted(ok(86_400));
    const tokens = source(fetcher.fetchToken, clock);
    await tokens.getToken();
    clock.advance(69_119_000);
    assert.equal(fetcher.calls(), 1);
    clock.advance(1_000);
    assert.equal(fetcher.calls(), 2);
    tokens.close();
  });

  test('a token is never handed out in its last 30 s', async () => {
    const clock = new ManualClock();
    let release!: () => void;
    const fetcher = scripted(ok(300), async (n) => {
      await new Promise<void>((resolve) => (release = resolve));
      return token(n, 300);
    });
    const tokens = source(fetcher.fetchToken, clock);
    await tokens.getToken();
    clock.advance(269_999);
    assert.equal(tokens.peek(), 'token-1');
    clock.advance(1);
    assert.equal(tokens.peek(), undefined, 'inside the safety margin');
    assert.equal(tokens.status().state, 'starting');
    const waiting = tokens.getToken();
    release();
    assert.equal(await waiting, 'token-2');
    tokens.close();
  });
});

describe('failures', () => {
  test('retries a failing endpoint with backoff, then succeeds', async () => {
    const fetcher = scripted(fail(true), fail(true), ok(3600));
    const tokens = source(fetcher.fetchToken, new ManualClock());
    assert.equal(await tokens.getToken(), 'token-3');
    assert.equal(fetcher.calls(), 3);
    tokens.close();
  });

  test('invalid_client fails fast: one request, no retry, and requests fail fast during the backoff', async () => {
    const fetcher = scripted(fail(false));
    const tokens = source(fetcher.fetchToken, new ManualClock());
    await assert.rejects(tokens.getToken(), (err: TokenError) => {
      assert.equal(err.code, 'BSC_TOKEN_UNAVAILABLE');
      assert.match(err.message, /route "api".*invalid_client/);
      return true;
    });
    assert.equal(fetcher.calls(), 1);
    await assert.rejects(tokens.getToken(), /invalid_client/);
    assert.equal(fetcher.calls(), 1, 'no new request before the backoff is over');
    assert.equal(tokens.status().state, 'unavailable');
    tokens.close();
  });

  test('a failed background refresh keeps the old token while it is valid, keeps retrying, then recovers', async () => {
    const clock = new ManualClock();
    let endpointUp = true;
    const fetcher = scripted(async (n) => {
      if (!endpointUp) throw new TokenError('BSC_TOKEN_HTTP_ERROR', 'token endpoint answered 500', { retryable: true });
      return token(n, 300);
    });
    const tokens = source(fetcher.fetchToken, clock, { retry: { ...fastRetry, retries: 0 } });
    await tokens.getToken();
    endpointUp = false;
    clock.advance(240_000); // refresh time
    await tokens.refresh().catch(() => {});
    assert.equal(tokens.peek(), 'token-1', 'the old token is kept while valid');
    assert.equal(tokens.status().state, 'ready');
    const callsAfterFirstFailure = fetcher.calls();
    clock.advance(clock.nextTimerAt()! - clock.now()); // the next background attempt
    await tokens.refresh().catch(() => {});
    assert.ok(fetcher.calls() > callsAfterFirstFailure, 'it keeps retrying in the background');
    clock.advance(270_000 - (clock.now() - Date.UTC(2026, 10, 25, 12, 0, 0)));
    await tokens.refresh().catch(() => {}); // let the attempt under way (endpoint still down) finish
    assert.equal(tokens.peek(), undefined, 'the old token is dropped once it is no longer valid');
    assert.equal(tokens.status().state, 'unavailable');
    endpointUp = true;
    clock.advance(clock.nextTimerAt()! - clock.now());
    await tokens.refresh();
    assert.match(tokens.peek() ?? '', /^token-\d+$/);
    assert.equal(tokens.status().state, 'ready');
    tokens.close();
  });

  test('one fetch gives up within retry.maxTimeMs however many retries are left', async () => {
    const fetcher = scripted(fail(true));
    const tokens = source(fetcher.fetchToken, new ManualClock(), { tokenWaitMs: 10_000, retry: { retries: 100, minDelayMs: 50, maxDelayMs: 50, maxTimeMs: 400 } });
    const started = Date.now();
    await assert.rejects(tokens.refresh());
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 2000, `gave up after ${elapsed} ms`);
    assert.ok(fetcher.calls() > 1 && fetcher.calls() < 100, `${fetcher.calls()} attempts`);
    tokens.close();
  });

  test('Retry-After is honoured before the next attempt', async () => {
    const fetcher = scripted(fail(true, { retryAfterMs: 300 }), ok(3600));
    const tokens = source(fetcher.fetchToken, new ManualClock(), { retry: { ...fastRetry, maxDelayMs: 1000 } });
    const started = Date.now();
    await tokens.getToken();
    assert.ok(Date.now() - started >= 290, `retried after ${Date.now() - started} ms`);
    tokens.close();
  });

  test('a hanging endpoint gives 503-class errors after tokenWaitMs, never a hang', async () => {
    const fetcher = scripted(() => new Promise<Token>(() => {}));
    const tokens = source(fetcher.fetchToken, new ManualClock(), { tokenWaitMs: 100 });
    const started = Date.now();
    await assert.rejects(tokens.getToken(), (err: TokenError) => err.code === 'BSC_TOKEN_UNAVAILABLE' && /waiting 100 ms/.test(err.message));
    assert.ok(Date.now() - started < 1000);
    tokens.close();
  });

  test('status never includes the token', async () => {
    const tokens = source(scripted(ok(3600)).fetchToken, new ManualClock());
    await tokens.getToken();
    const status = tokens.status();
    assert.equal(status.expiresInSeconds, 3570);
    assert.doesNotMatch(JSON.stringify(status), /token-1/);
    tokens.close();
  });
});

describe('rejections, rotation and Retry-After', () => {
  test('within the 401 cooldown a rejection of the new token is ignored; after it, the token is dropped again', async () => {
    const clock = new ManualClock();
    const fetcher = scripted(ok(3600));
    const tokens = source(fetcher.fetchToken, clock, { refreshOn401CooldownSeconds: 10 });
    await tokens.invalidate(await tokens.getToken());
    assert.equal(fetcher.calls(), 2);
    await tokens.invalidate('token-2');
    assert.equal(fetcher.calls(), 2, 'ignored within the cooldown');
    assert.equal(tokens.peek(), 'token-2');
    clock.advance(10_000);
    await tokens.invalidate('token-2');
    assert.equal(fetcher.calls(), 3);
    assert.equal(tokens.peek(), 'token-3');
    tokens.close();
  });

  test('credentials that change after a failed fetch start the next attempt at once, not after the backoff', async () => {
    const clock = new ManualClock();
    const fetcher = scripted(ok(3600), fail(false), ok(3600));
    const tokens = source(fetcher.fetchToken, clock);
    await tokens.getToken();
    await tokens.refresh().catch(() => {});
    assert.equal(tokens.status().lastError?.includes('invalid_client'), true);
    assert.equal(tokens.peek(), 'token-1', 'the valid token is kept');
    tokens.credentialsChanged();
    await tokens.refresh();
    assert.equal(fetcher.calls(), 3, 'retried without the clock moving');
    assert.equal(tokens.peek(), 'token-3');
    tokens.credentialsChanged(); // healthy: nothing to do
    assert.equal(fetcher.calls(), 3);
    tokens.close();
  });

  test('credentials that change while a fetch is under way make a failure of that fetch retry at once', async () => {
    const clock = new ManualClock();
    let release!: () => void;
    const fetcher = scripted(async () => {
      await new Promise<void>((resolve) => (release = resolve));
      throw new TokenError('BSC_TOKEN_REJECTED', 'token endpoint answered 401: invalid_client; retrying cannot change this answer', { retryable: false });
    }, ok(3600));
    const tokens = source(fetcher.fetchToken, clock);
    const first = tokens.refresh().catch(() => {});
    await new Promise((resolve) => setImmediate(resolve));
    tokens.credentialsChanged();
    release();
    await first;
    assert.equal(clock.nextTimerAt(), clock.now(), 'the next attempt is due now');
    clock.advance(0);
    await tokens.refresh();
    assert.equal(tokens.peek(), 'token-2');
    tokens.close();
  });

  test("a failed cycle waits at least the endpoint's Retry-After (bounded by maxDelayMs) before the next", async () => {
    const clock = new ManualClock();
    const fetcher = scripted(fail(true, { retryAfterMs: 20_000 }));
    const tokens = source(fetcher.fetchToken, clock, { retry: { retries: 0, minDelayMs: 1, maxDelayMs: 60_000, maxTimeMs: 5000 } });
    await assert.rejects(tokens.getToken(), (err: TokenError) => (err.retryAfterMs ?? 0) >= 19_000);
    assert.equal(clock.nextTimerAt(), clock.now() + 20_000);
    tokens.close();
  });
});

describe('wrong credentials (a rejection no retry can change)', () => {
  /** A token source whose endpoint always fails (rejects, unless `retryable`), with the times it was asked, in seconds from the start. */
  async function failing(retryable: boolean, options: Partial<TokenSourceOptions> = {}) {
    const clock = new ManualClock();
    const start = clock.now();
    const askedAt: number[] = [];
    const fetcher = scripted(async () => {
      askedAt.push((clock.now() - start) / 1000);
      return fail(retryable)();
    });
    const tokens = source(fetcher.fetchToken, clock, options);
    await tokens.refresh().catch(() => {});
    /** Moves the clock to the next timer and waits for the fetch it starts. */
    const nextAttempt = async () => {
      clock.advance(clock.nextTimerAt()! - clock.now());
      await tokens.refresh().catch(() => {});
    };
    return { clock, tokens, fetcher, askedAt, nextAttempt };
  }

  test('the token endpoint is asked again after 1, 2, 4 and 8 minutes, then every 15 minutes, one request each time', async () => {
    const { clock, tokens, fetcher, askedAt, nextAttempt } = await failing(false);
    for (let i = 0; i < 7; i++) await nextAttempt();
    assert.deepEqual(askedAt, [0, 60, 180, 420, 900, 1800, 2700, 3600]);
    assert.equal(fetcher.calls(), 8, 'one request per attempt: no retries within one');
    assert.equal(clock.nextTimerAt(), clock.now() + 15 * 60_000);
    tokens.close();
  });

  test('answers that can change (503) keep the faster backoff: 1, 2, 4, 8, 16 s, then every retry.maxDelayMs', async () => {
    const { tokens, askedAt, nextAttempt } = await failing(true, { retry: { retries: 0, minDelayMs: 500, maxDelayMs: 30_000, maxTimeMs: 60_000 } });
    for (let i = 0; i < 7; i++) await nextAttempt();
    assert.deepEqual(askedAt, [0, 1, 3, 7, 15, 31, 61, 91]);
    tokens.close();
  });

  test('requests meanwhile fail fast with the time to the next attempt, and never cause a token request', async () => {
    const { clock, tokens, fetcher } = await failing(false);
    await assert.rejects(tokens.getToken(), (err: TokenError) => err.code === 'BSC_TOKEN_UNAVAILABLE' && err.retryAfterMs === 60_000 && /invalid_client/.test(err.message));
    clock.advance(45_000);
    for (let i = 0; i < 50; i++) {
      await assert.rejects(tokens.getToken(), (err: TokenError) => err.code === 'BSC_TOKEN_UNAVAILABLE' && err.retryAfterMs === 15_000);
    }
    assert.equal(fetcher.calls(), 1);
    assert.equal(tokens.status().state, 'unavailable');
    tokens.close();
  });

  test('a change of the credential files is tried at once, and the schedule starts again at 1 minute', async () => {
    const { clock, tokens, askedAt, nextAttempt } = await failing(false);
    await nextAttempt(); // 60 s
    await nextAttempt(); // 180 s; the next one would be at 420 s
    clock.advance(10_000);
    tokens.credentialsChanged();
    await tokens.refresh().catch(() => {});
    assert.deepEqual(askedAt, [0, 60, 180, 190]);
    assert.equal(clock.nextTimerAt(), clock.now() + 60_000, 'the new credentials were rejected too: 1 minute');
    tokens.close();
  });

  test('a token still valid when the refresh is rejected serves until it expires; an upstream 401 of it then fetches nothing', async () => {
    const clock = new ManualClock();
    const fetcher = scripted(ok(3600), fail(false));
    const tokens = source(fetcher.fetchToken, clock, { refreshOn401CooldownSeconds: 0 });
    await tokens.getToken();
    await tokens.refresh().catch(() => {});
    assert.equal(tokens.peek(), 'token-1', 'kept while valid');
    assert.equal(clock.nextTimerAt(), clock.now() + 60_000);
    await tokens.invalidate('token-1');
    assert.equal(fetcher.calls(), 2, 'the credentials were just rejected: no new request for a revoked token');
    assert.equal(tokens.peek(), undefined, 'the revoked token is dropped');
    await assert.rejects(tokens.getToken(), (err: TokenError) => err.code === 'BSC_TOKEN_UNAVAILABLE' && err.retryAfterMs === 60_000);
    assert.equal(fetcher.calls(), 2);
    tokens.close();
  });
});
