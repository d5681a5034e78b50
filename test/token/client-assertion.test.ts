// A route with no secret at all, only a client assertion file that the platform rotates (a
// projected service-account token in the kubelet's `..data` layout), served through the proxy over
// several token lifetimes with the injectable clock. The token endpoint checks each assertion's
// exp against the same clock, as the identity provider would, and records what it received.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { startEchoUpstream } from '../../src/demo/echo-upstream.js';
import { SecretSource } from '../../src/config/secret.js';
import { TokenError } from '../../src/token/errors.js';
import { minRemainingSeconds, readJwtFile } from '../../src/token/token-file.js';
import { audit, call } from '../helpers/audit.js';
import { ManualClock } from '../helpers/clock.js';
import { problems, secretVolume, tempFiles } from '../helpers/config.js';
import { expOf, platformToken } from '../helpers/jwt-files.js';
import { issue, signingKey, startScriptedTokenServer } from '../helpers/servers.js';
import { eventually, startSidecar } from '../helpers/sidecar.js';
import { resolveConfig } from '../../src/config/load.js';

const tokenLifetimeSeconds = 600; // refreshed at 480 s
const assertionLifetimeSeconds = 900; // the platform writes a new one well before that

describe('client_assertion from a rotated file, through the proxy', () => {
  test('no secret, only a rotated assertion file: it keeps serving across several token lifetimes, each grant with the file as it was then', async () => {
    const clock = new ManualClock();
    const volume = secretVolume({ token: platformToken(clock.now(), assertionLifetimeSeconds) });
    const received: string[] = [];
    const tokens = await startScriptedTokenServer((request) => {
      const assertion = request.form.client_assertion ?? '';
      received.push(assertion);
      // The provider's check, on the test's clock: an expired assertion is refused.
      if (expOf(assertion) * 1000 <= clock.now()) return { status: 400, body: { error: 'invalid_client', error_description: 'assertion expired' } };
      return { status: 200, body: issue(tokenLifetimeSeconds) };
    });
    const upstream = await startEchoUpstream({ signingKey });
    const auth = { tokenUrl: tokens.url, method: 'client_assertion', clientId: 'workload', clientAssertionFile: join(volume.dir, 'token'), retry: { retries: 1, minDelayMs: 10, maxDelayMs: 50, maxTimeMs: 1000 } };
    const sidecar = await startSidecar({ routes: [{ name: 'api', upstream: upstream.url, auth }] }, { clock });
    try {
      const inFile: string[] = [];
      for (let lifetime = 0; lifetime < 4; lifetime++) {
        await eventually(() => tokens.requests.length === lifetime + 1);
        const answer = await call(`${sidecar.proxyUrl}/orders`);
        assert.equal(answer.status, 200, `lifetime ${lifetime}`);
        assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${tokens.issued.at(-1)}`);
        const request = tokens.requests.at(-1);
        assert.equal(request?.form.client_assertion_type, 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
        assert.equal(request?.form.client_id, 'workload');
        assert.equal(request?.form.client_secret, undefined);
        assert.equal(request?.headers.authorization, undefined);
        // The kubelet rotates the token (here at the token's refresh, where it matters most), then the refresh falls due.
        const next = platformToken(clock.now(), assertionLifetimeSeconds);
        inFile.push(next);
        clock.advance(300_000);
        volume.rotate({ token: next });
        clock.advance(180_000);
      }
      await eventually(() => tokens.requests.length === 5);
      // The first grant used the file as it was at start; each later one the file as rotated just before.
      assert.deepEqual(received.slice(1), inFile);
      assert.equal(new Set(received).size, received.length, 'never the same assertion twice');
      assert.equal(tokens.requests.filter((r) => r.form.client_secret !== undefined || r.headers.authorization !== undefined).length, 0);
    } finally {
      await sidecar.close();
      await Promise.all([tokens.close(), upstream.close()]);
    }
    audit.assertNothingLeaked(sidecar.logs);
  });

  test('a file the platform has not rotated yet: the expired assertion is never sent, the error names the file and when it expired, and the rotated file is used as soon as it comes', async () => {
    const clock = new ManualClock();
    // Valid for 700 s: the refresh at 480 s finds it good, the one at 960 s expired.
    const volume = secretVolume({ token: platformToken(clock.now(), 700) });
    const file = join(volume.dir, 'token');
    const tokens = await startScriptedTokenServer(() => ({ status: 200, body: issue(tokenLifetimeSeconds) }));
    const upstream = await startEchoUpstream({ signingKey });
    const auth = { tokenUrl: tokens.url, method: 'client_assertion', clientId: 'workload', clientAssertionFile: file, tokenWaitMs: 300, retry: { retries: 1, minDelayMs: 10, maxDelayMs: 50, maxTimeMs: 1000 } };
    const sidecar = await startSidecar({ routes: [{ name: 'api', upstream: upstream.url, auth }] }, { clock });
    try {
      const readyz = async () => (await call(`${sidecar.adminUrl}/readyz`)).json<{ routes: { state: string; lastErrorCode?: string; lastError?: string }[] }>().routes[0];
      await eventually(async () => (await readyz())?.state === 'ready');
      clock.advance(480_000);
      await eventually(() => tokens.requests.length === 2);
      await eventually(async () => (await readyz())?.state === 'ready');
      clock.advance(480_000); // 960 s: the file expired at 700 s
      await eventually(async () => (await readyz())?.lastErrorCode === 'BSC_TOKEN_ASSERTION_EXPIRED');
      const route = await readyz();
      assert.ok(route?.lastError?.includes(file), 'the error names the file');
      assert.match(route?.lastError ?? '', /expired at 2026-11-25T12:11:40\.000Z/);
      assert.equal(tokens.requests.length, 2, 'the expired assertion was not sent');
      // The token obtained at 480 s is still good until 1050 s: requests keep flowing meanwhile.
      assert.equal((await call(`${sidecar.proxyUrl}/x`)).status, 200);
      // The platform catches up: the file watch notices and the next attempt is made at once.
      const fresh = platformToken(clock.now(), assertionLifetimeSeconds);
      volume.rotate({ token: fresh });
      await eventually(() => tokens.requests.length === 3);
      assert.equal(tokens.requests[2]?.form.client_assertion, fresh);
      await eventually(async () => (await readyz())?.lastErrorCode === undefined);
      const lines = sidecar.logs.filter((line) => line.includes('BSC_TOKEN_ASSERTION_EXPIRED'));
      assert.ok(lines.length > 0, 'the failure is logged with its code');
    } finally {
      await sidecar.close();
      await Promise.all([tokens.close(), upstream.close()]);
    }
    audit.assertNothingLeaked(sidecar.logs);
  });
});

describe('reading a JWT from a file', () => {
  const files = tempFiles('bsc-token-file-');
  const now = Date.UTC(2026, 10, 25, 12, 0, 0);
  const read = (name: string, text: string) => readJwtFile(SecretSource.fromFile(files.file(name, text)), 'client assertion', now);
  const failure = (fn: () => unknown): TokenError => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof TokenError);
      return err;
    }
    assert.fail('expected a TokenError');
  };

  test('one compact JWT with exp ahead is read as it is (a trailing newline dropped)', () => {
    const token = platformToken(now, 3600);
    assert.deepEqual(read('ok', `${token}\n`), { value: token, expiresAt: expOf(token) });
  });

  test('every failure names the file, never its content', () => {
    const cases: [string, string, string, RegExp][] = [
      ['garbage', 'not a token at all', 'BSC_TOKEN_ASSERTION_INVALID', /is not a JWT/],
      ['two', `${platformToken(now, 60)}\n${platformToken(now, 60)}`, 'BSC_TOKEN_ASSERTION_INVALID', /is not a JWT/],
      ['no-exp', platformToken(now, 60, { exp: undefined }), 'BSC_TOKEN_ASSERTION_INVALID', /has no exp claim/],
      ['expired', platformToken(now - 7_200_000, 3600), 'BSC_TOKEN_ASSERTION_EXPIRED', /expired at 2026-11-25T11:00:00\.000Z \(3600 s ago\)/],
      ['nearly', platformToken(now, minRemainingSeconds - 1), 'BSC_TOKEN_ASSERTION_EXPIRED', /expires at .* in less than 30 s/],
    ];
    for (const [name, text, code, message] of cases) {
      const err = failure(() => read(name, text));
      assert.equal(err.code, code, name);
      assert.match(err.message, message, name);
      assert.ok(err.message.includes(`${files.dir}/${name}`), `${name}: names the file`);
      for (const part of text.split(/[.\n]/)) if (part.length > 8) assert.ok(!err.message.includes(part), `${name}: no part of the content`);
      assert.equal(err.retryable, code === 'BSC_TOKEN_ASSERTION_EXPIRED', name);
    }
    const missing = failure(() => readJwtFile(SecretSource.fromFile(`${files.dir}/absent`), 'client assertion', now));
    assert.equal(missing.code, 'BSC_TOKEN_CREDENTIALS');
    assert.match(missing.message, /absent \(ENOENT\)/);
  });
});

describe('client_assertion config', () => {
  const files = tempFiles('bsc-assertion-config-');
  const base = (auth: Record<string, unknown>) => ({ routes: [{ name: 'r', upstream: 'https://api.example', auth: { tokenUrl: 'https://idp.example/token', clientId: 'c', ...auth } }] });

  test('needs clientAssertionFile, refuses a secret beside it, and a missing file fails at start with its path', () => {
    assert.deepEqual(problems(() => resolveConfig(base({ method: 'client_assertion' }))), ['routes[0].auth.clientAssertionFile: is required with method: client_assertion (the file holding the JWT to present, e.g. a projected service-account token)']);
    assert.deepEqual(problems(() => resolveConfig(base({ method: 'client_assertion', clientAssertionFile: '/nonexistent/token', clientSecret: 'x' }))), [
      'routes[0].auth.clientSecret: is not used with method: client_assertion; remove it',
    ]);
    assert.deepEqual(problems(() => resolveConfig(base({ method: 'client_assertion', clientAssertionFile: '/nonexistent/token' }))), ['routes[0].auth.clientAssertionFile: cannot read /nonexistent/token (ENOENT)']);
    assert.deepEqual(problems(() => resolveConfig(base({ clientSecret: 's', clientAssertionFile: files.file('t', 'x') }))), ['routes[0].auth.clientAssertionFile: applies only with method: client_assertion']);
  });

  test('assertionAudience applies to private_key_jwt only, and issuer needs auth.issuer', () => {
    assert.deepEqual(problems(() => resolveConfig(base({ clientSecret: 's', assertionAudience: 'issuer' }))), ['routes[0].auth.assertionAudience: applies only with method: private_key_jwt']);
    assert.deepEqual(problems(() => resolveConfig(base({ method: 'private_key_jwt', privateKeyFile: files.file('k', 'x'), assertionAudience: 'issuer' })))[0], "routes[0].auth.assertionAudience: issuer needs auth.issuer, the identity provider's issuer (e.g. https://example.auth0.com/); with tokenUrl set too, the issuer is only the audience");
  });
});
