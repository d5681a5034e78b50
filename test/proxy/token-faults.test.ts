// Token endpoint faults, end to end through the proxy, with the injectable clock: while a valid
// token exists requests keep flowing with it and refreshes keep retrying; once none is valid,
// requests get 503 JSON within tokenWaitMs; the sidecar recovers by itself when the endpoint
// does, and /readyz follows every step.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startEchoUpstream } from '../../src/demo/echo-upstream.js';
import { audit, call } from '../helpers/audit.js';
import { ManualClock } from '../helpers/clock.js';
import { issue, signingKey, startScriptedTokenServer, type Answer, type ScriptedTokenServer } from '../helpers/servers.js';
import { eventually, route, startSidecar } from '../helpers/sidecar.js';

const lifetimeSeconds = 600; // refresh at 480 s, last use at 570 s
const fastFailing = { tokenWaitMs: 400, timeoutMs: 200, retry: { retries: 1, minDelayMs: 10, maxDelayMs: 50, maxTimeMs: 1500 } };

/** What goes wrong at the token endpoint; `down` closes it altogether (connection refused). */
const faults: Record<string, Answer | 'down'> = {
  'down (connection refused)': 'down',
  'slow (no answer within timeoutMs)': 'hang',
  '500': { status: 500, body: 'internal error' },
  '503 with Retry-After': { status: 503, body: { error: 'temporarily_unavailable' }, headers: { 'retry-after': '1' } },
  '429 with Retry-After': { status: 429, body: { error: 'slow_down' }, headers: { 'retry-after': '1' } },
  'connection reset': 'reset',
  'truncated body': 'truncate',
  'non-JSON body': { status: 200, body: '<html>gateway</html>' },
  'access_token missing': { status: 200, body: { token_type: 'Bearer', expires_in: 600 } },
  'expires_in 0': { status: 200, body: { ...issue(600), expires_in: 0 } },
  'expires_in -1': { status: 200, body: { ...issue(600), expires_in: -1 } },
};

describe('token endpoint faults, through the proxy', () => {
  for (const [name, fault] of Object.entries(faults)) {
    test(`${name}: the old token keeps requests flowing, then 503 in bounded time, then recovery by itself; /readyz follows`, async () => {
      const clock = new ManualClock();
      let tokens: ScriptedTokenServer = await startScriptedTokenServer(() => ({ status: 200, body: issue(lifetimeSeconds) }));
      const upstream = await startEchoUpstream({ signingKey });
      const sidecar = await startSidecar({ routes: [route(tokens.url, upstream.url, {}, fastFailing)] }, { clock });
      const source = sidecar.sidecar.tokenSources.get('api')!;
      const ready = async () => (await call(`${sidecar.adminUrl}/readyz`)).status;
      const lastToken = () => upstream.received.at(-1)?.headers.authorization;
      try {
        // The first token, however loaded the machine: a first fetch slower than timeoutMs is
        // retried by the sidecar's own (manual-clock) timer, so move the clock to it.
        await eventually(() => {
          if (source.peek() !== undefined) return true;
          const next = clock.nextTimerAt();
          if (source.status().lastError && next !== undefined && next > clock.now()) clock.advance(next - clock.now());
          return false;
        }, 20_000);
        const start = clock.now(); // when the token was obtained: the timeline below counts from it
        assert.equal((await call(`${sidecar.proxyUrl}/a`)).status, 200);
        const first = lastToken();

        const port = Number(new URL(tokens.url).port);
        if (fault === 'down') await tokens.close();
        else tokens.script = () => fault;
        const attempts = () => tokens.requests.length;

        clock.advance(480_000); // the refresh falls due and fails
        await eventually(() => source.status().lastError !== undefined);
        assert.equal((await call(`${sidecar.proxyUrl}/b`)).status, 200, 'the old token is still valid');
        assert.equal(lastToken(), first);
        assert.equal(await ready(), 200);

        const before = attempts();
        clock.advance(clock.nextTimerAt()! - clock.now()); // the next background attempt
        if (fault !== 'down') await eventually(() => attempts() > before);
        assert.equal((await call(`${sidecar.proxyUrl}/c`)).status, 200);

        clock.advance(start + 570_000 - clock.now()); // the old token may no longer be sent
        const started = Date.now();
        const refused = await call(`${sidecar.proxyUrl}/d`);
        assert.equal(refused.status, 503);
        assert.ok(Date.now() - started < 3000, `503 after ${Date.now() - started} ms (tokenWaitMs ${fastFailing.tokenWaitMs})`);
        assert.equal(refused.json().error, 'token_unavailable');
        assert.ok(Number(refused.headers.get('retry-after')) >= 1);
        const readiness = await call(`${sidecar.adminUrl}/readyz`);
        assert.equal(readiness.status, 503);
        assert.equal(readiness.json<{ routes: { state: string }[] }>().routes[0]?.state, 'unavailable');

        if (fault === 'down') tokens = await startScriptedTokenServer(() => ({ status: 200, body: issue(lifetimeSeconds) }), { port });
        else tokens.script = () => ({ status: 200, body: issue(lifetimeSeconds) });
        // Nothing but the sidecar's own timers moves it: advance to each, until it is ready.
        await eventually(async () => {
          const next = clock.nextTimerAt();
          if (next !== undefined && next > clock.now()) clock.advance(next - clock.now());
          return (await ready()) === 200;
        }, 10_000);
        assert.equal((await call(`${sidecar.proxyUrl}/e`)).status, 200);
        assert.notEqual(lastToken(), first);
      } finally {
        await sidecar.close();
        await Promise.all([tokens.close(), upstream.close()]);
      }
    });
  }

  // Retry-After within retry.maxDelayMs (20 s of 60 s), and longer than it (120 s of 30 s): either
  // way callers are told to come back then, and no token request comes sooner. The longer one
  // also ends the fetch at once instead of sleeping maxDelayMs inside it.
  const retryAfterCases = [
    { seconds: 20, retry: { retries: 0, minDelayMs: 10, maxDelayMs: 60_000, maxTimeMs: 1000 } },
    { seconds: 120, retry: { retries: 5, minDelayMs: 10, maxDelayMs: 30_000, maxTimeMs: 60_000 } },
  ];
  for (const { seconds, retry } of retryAfterCases) {
    test(`429 with Retry-After: ${seconds} (maxDelayMs ${retry.maxDelayMs / 1000} s) and no token: callers are told to come back in ${seconds} s, and the next attempt waits for it`, async () => {
      const clock = new ManualClock();
      const tokens = await startScriptedTokenServer(() => ({ status: 429, body: { error: 'slow_down' }, headers: { 'retry-after': String(seconds) } }));
      const upstream = await startEchoUpstream({ signingKey });
      const sidecar = await startSidecar({ routes: [route(tokens.url, upstream.url, {}, { tokenWaitMs: 1000, retry })] }, { clock });
      try {
        const started = Date.now();
        const refused = await call(`${sidecar.proxyUrl}/x`);
        assert.equal(refused.status, 503);
        assert.ok(Date.now() - started < 5000, 'the fetch did not sleep inside');
        assert.equal(refused.headers.get('retry-after'), String(seconds));
        assert.equal(tokens.requests.length, 1, 'no retry inside the fetch');
        clock.advance(seconds * 1000 - 1000);
        assert.equal((await call(`${sidecar.proxyUrl}/x`)).status, 503);
        assert.equal(tokens.requests.length, 1, 'no attempt before Retry-After');
        tokens.script = () => ({ status: 200, body: issue(600) });
        clock.advance(1_000);
        await eventually(() => sidecar.sidecar.tokenSources.get('api')!.peek() !== undefined);
        assert.equal(tokens.requests.length, 2);
        assert.equal((await call(`${sidecar.proxyUrl}/x`)).status, 200);
      } finally {
        await sidecar.close();
        await Promise.all([tokens.close(), upstream.close()]);
      }
    });
  }

  test('expires_in huge (1e12): accepted, but cut to maxLifetimeSeconds and refreshed on that schedule', async () => {
    const clock = new ManualClock();
    const tokens = await startScriptedTokenServer(() => ({ status: 200, body: { ...issue(600), expires_in: 1e12 } }));
    const upstream = await startEchoUpstream({ signingKey });
    const sidecar = await startSidecar({ routes: [route(tokens.url, upstream.url, {}, { maxLifetimeSeconds: 3600 })] }, { clock });
    try {
      assert.equal((await call(`${sidecar.proxyUrl}/x`)).status, 200);
      const status = sidecar.sidecar.tokenSources.get('api')!.status();
      assert.ok((status.expiresInSeconds ?? Infinity) <= 3600, `expires in ${status.expiresInSeconds} s`);
      assert.equal(clock.nextTimerAt()! - clock.now(), 2_880_000, 'refresh at 80% of the capped lifetime');
    } finally {
      await sidecar.close();
      await Promise.all([tokens.close(), upstream.close()]);
    }
  });
});

test('no client secret or issued token in any log line, error body or /readyz of the faults above', () => audit.assertNothingLeaked());
