// RFC 8693 token exchange against a token-exchange endpoint that checks every field of the request
// (§2.1) as a security token service would, with client authentication and without it (method
// none, as Google's STS takes it), and the answers the sidecar must refuse (§2.2.1).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { resolveConfig } from '../../src/config/load.js';
import type { AuthConfig } from '../../src/config/types.js';
import { TokenError } from '../../src/token/errors.js';
import { exchangeClientCredentials } from '../../src/token/exchange.js';
import { audit, call } from '../helpers/audit.js';
import { problems, secretVolume, tempFiles } from '../helpers/config.js';
import { platformToken } from '../helpers/jwt-files.js';
import { issue, signingKey, startScriptedTokenServer, type Answer, type ScriptedRequest, type ScriptedTokenServer } from '../helpers/servers.js';
import { startSidecar } from '../helpers/sidecar.js';

const jwtType = 'urn:ietf:params:oauth:token-type:jwt';
const accessTokenType = 'urn:ietf:params:oauth:token-type:access_token';
const grantType = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** RFC 8693 §2.1's rules, each broken one an invalid_request as a real STS answers it; else what `answer` says. */
function securityTokenService(request: ScriptedRequest, answer: () => Answer): Answer {
  const form = request.form;
  const refuse = (why: string): Answer => ({ status: 400, body: { error: 'invalid_request', error_description: why } });
  if (request.headers['content-type'] !== 'application/x-www-form-urlencoded') return refuse('not a form');
  if (form.grant_type !== grantType) return refuse('grant_type');
  if (!form.subject_token || !form.subject_token_type) return refuse('subject_token and subject_token_type are required');
  if ((form.actor_token === undefined) !== (form.actor_token_type === undefined)) return refuse('actor_token_type goes with actor_token');
  return answer();
}

const exchanged = (extra: Record<string, unknown> = {}): Answer => ({ status: 200, body: { ...issue(600), issued_token_type: accessTokenType, ...extra } });

describe('token exchange (RFC 8693)', () => {
  let sts: ScriptedTokenServer;
  let next: () => Answer = () => exchanged();
  const files = tempFiles('bsc-token-exchange-');

  before(async () => {
    sts = await startScriptedTokenServer((request) => securityTokenService(request, next));
  });
  after(async () => {
    await sts.close();
    audit.assertNothingLeaked();
  });

  function auth(fields: Record<string, unknown>): AuthConfig {
    return (resolveConfig({ routes: [{ name: 'r', upstream: 'https://api.example', auth: { tokenUrl: sts.url, grantType: 'token_exchange', ...fields } }] }).routes[0] as { auth: AuthConfig }).auth;
  }
  const expectFailure = async (config: AuthConfig, code: string, message: RegExp) =>
    assert.rejects(exchangeClientCredentials(config), (err: unknown) => err instanceof TokenError && err.code === code && message.test(err.message) && !err.retryable);

  test('every field: subject and actor tokens from their files, their types, requested_token_type, audience, resource, scope; client_secret_basic', async () => {
    next = () => exchanged();
    const subject = platformToken(Date.now(), 600);
    const actor = platformToken(Date.now(), 600, { sub: 'actor' });
    const config = auth({
      clientId: 'gateway',
      clientSecret: 'gateway-secret',
      subjectTokenFile: files.file('subject', `${subject}\n`),
      actorTokenFile: files.file('actor', actor),
      requestedTokenType: accessTokenType,
      audience: 'orders-api',
      resource: 'https://orders.example/',
      scope: 'orders:read',
    });
    audit.addSecret('gateway-secret');
    const token = await exchangeClientCredentials(config);
    assert.equal(token.accessToken, sts.issued.at(-1));
    const request = sts.requests.at(-1) as ScriptedRequest;
    assert.deepEqual(request.form, {
      grant_type: grantType,
      subject_token: subject,
      subject_token_type: jwtType,
      actor_token: actor,
      actor_token_type: jwtType,
      requested_token_type: accessTokenType,
      resource: 'https://orders.example/',
      scope: 'orders:read',
      audience: 'orders-api',
    });
    assert.equal(request.headers.authorization, `Basic ${Buffer.from('gateway:gateway-secret').toString('base64')}`);
  });

  test('method none: no Authorization header, no secret, no client id; an opaque subject token of another type is sent as it is', async () => {
    next = () => exchanged({ token_type: 'bearer' }); // case-insensitive
    const config = auth({ method: 'none', subjectTokenFile: files.file('opaque', 'ya29.opaque-access-token'), subjectTokenType: accessTokenType });
    audit.addSecret('ya29.opaque-access-token');
    await exchangeClientCredentials(config);
    const request = sts.requests.at(-1) as ScriptedRequest;
    assert.equal(request.headers.authorization, undefined);
    assert.deepEqual(Object.keys(request.form).sort(), ['grant_type', 'subject_token', 'subject_token_type']);
    assert.equal(request.form.subject_token, 'ya29.opaque-access-token');
    assert.equal(request.form.subject_token_type, accessTokenType);
  });

  test('method none with a client id: client_id in the form only', async () => {
    next = () => exchanged();
    await exchangeClientCredentials(auth({ method: 'none', clientId: 'public-client', subjectTokenFile: files.file('s2', platformToken(Date.now(), 600)) }));
    const request = sts.requests.at(-1) as ScriptedRequest;
    assert.equal(request.form.client_id, 'public-client');
    assert.equal(request.form.client_secret, undefined);
    assert.equal(request.headers.authorization, undefined);
  });

  test('the subject token file is read at every request (a rotated projected token), and an expired one is never sent', async () => {
    next = () => exchanged();
    const volume = secretVolume({ token: platformToken(Date.now(), 600) });
    const config = auth({ method: 'none', subjectTokenFile: join(volume.dir, 'token') });
    for (let round = 0; round < 3; round++) {
      const subject = platformToken(Date.now(), 600);
      volume.rotate({ token: subject });
      await exchangeClientCredentials(config);
      assert.equal(sts.requests.at(-1)?.form.subject_token, subject);
    }
    volume.rotate({ token: platformToken(Date.now() - 3_600_000, 600) });
    const sent = sts.requests.length;
    await assert.rejects(exchangeClientCredentials(config), (err: unknown) => err instanceof TokenError && err.code === 'BSC_TOKEN_ASSERTION_EXPIRED' && err.message.includes(`subject token in ${join(volume.dir, 'token')} expired at`));
    assert.equal(sts.requests.length, sent);
  });

  test('answers the sidecar cannot use are clear errors: no issued_token_type, no token_type, token_type N_A, another token type', async () => {
    const config = auth({ method: 'none', subjectTokenFile: files.file('s3', platformToken(Date.now(), 600)) });
    next = () => ({ status: 200, body: { ...issue(600) } });
    await expectFailure(config, 'BSC_TOKEN_MALFORMED', /token exchange answered 200 but issued_token_type is missing \(RFC 8693 §2\.2\.1\)/);
    next = () => ({ status: 200, body: { ...issue(600), token_type: undefined, issued_token_type: accessTokenType } });
    await expectFailure(config, 'BSC_TOKEN_MALFORMED', /token_type is missing/);
    next = () => ({ status: 200, body: { ...issue(600), token_type: 'N_A', issued_token_type: 'urn:ietf:params:oauth:token-type:id_token' } });
    await expectFailure(config, 'BSC_TOKEN_MALFORMED', /is no access token \(token_type N_A, issued_token_type "urn:ietf:params:oauth:token-type:id_token"\): ask for an access token with requestedTokenType/);
    next = () => exchanged({ token_type: 'DPoP' });
    await expectFailure(config, 'BSC_TOKEN_MALFORMED', /of type "DPoP", not Bearer/);
  });

  test('a refusal of the exchange is not retried and does not echo the subject token', async () => {
    const subject = platformToken(Date.now(), 600);
    next = () => ({ status: 400, body: { error: 'invalid_grant', error_description: `subject token ${subject} is not trusted` } });
    await assert.rejects(exchangeClientCredentials(auth({ method: 'none', subjectTokenFile: files.file('s4', subject) })), (err: unknown) => {
      assert.ok(err instanceof TokenError);
      assert.equal(err.code, 'BSC_TOKEN_REJECTED');
      assert.ok(!err.message.includes(subject));
      assert.match(err.message, /\[redacted\]/);
      return true;
    });
  });

  test('through the proxy, with no client credentials at all: the exchanged token reaches the upstream', async () => {
    next = () => exchanged();
    const upstream: EchoUpstream = await startEchoUpstream({ signingKey });
    const volume = secretVolume({ token: platformToken(Date.now(), 3600) });
    const sidecar = await startSidecar({ routes: [{ name: 'gcp', upstream: upstream.url, auth: { tokenUrl: sts.url, grantType: 'token_exchange', method: 'none', subjectTokenFile: join(volume.dir, 'token'), audience: '//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k8s', scope: 'https://www.googleapis.com/auth/cloud-platform', requestedTokenType: accessTokenType } }] });
    try {
      const answer = await call(`${sidecar.proxyUrl}/v1/buckets`);
      assert.equal(answer.status, 200);
      assert.equal(upstream.received.at(-1)?.headers.authorization, `Bearer ${sts.issued.at(-1)}`);
    } finally {
      await sidecar.close();
      await upstream.close();
    }
    audit.assertNothingLeaked(sidecar.logs);
  });
});

describe('token exchange config', () => {
  const files = tempFiles('bsc-token-exchange-config-');
  const base = (auth: Record<string, unknown>) => ({ routes: [{ name: 'r', upstream: 'https://api.example', auth: { tokenUrl: 'https://sts.example/token', ...auth } }] });

  test('subjectTokenFile is required; the exchange fields apply only to it; method none only to it; a client id is optional with none', () => {
    assert.deepEqual(problems(() => resolveConfig(base({ grantType: 'token_exchange', method: 'none' }))), [
      'routes[0].auth.subjectTokenFile: is required with grantType: token_exchange (the file holding the token to exchange, e.g. a projected service-account token)',
    ]);
    assert.deepEqual(problems(() => resolveConfig(base({ clientId: 'c', clientSecret: 's', subjectTokenFile: '/t', resource: 'r', requestedTokenType: 'urn:x:y' }))), [
      'routes[0].auth.subjectTokenFile: applies only with grantType: token_exchange',
      'routes[0].auth.requestedTokenType: applies only with grantType: token_exchange',
      'routes[0].auth.resource: applies only with grantType: token_exchange',
    ]);
    assert.deepEqual(problems(() => resolveConfig(base({ method: 'none' }))), ['routes[0].auth.method: none applies only with grantType: token_exchange (a client credentials grant needs client authentication)']);
    assert.deepEqual(problems(() => resolveConfig(base({ grantType: 'token_exchange', method: 'none', subjectTokenFile: '/nonexistent/token' }))), ['routes[0].auth.subjectTokenFile: cannot read /nonexistent/token (ENOENT)']);
    assert.deepEqual(problems(() => resolveConfig(base({ grantType: 'token_exchange', method: 'none', subjectTokenFile: files.file('t', 'x'), subjectTokenType: 'jwt' }))), [
      'routes[0].auth.subjectTokenType: must be a token type URI such as urn:ietf:params:oauth:token-type:jwt',
    ]);
    const config = resolveConfig(base({ grantType: 'token_exchange', method: 'none', subjectTokenFile: files.file('t2', 'x') }));
    assert.equal(config.routes[0]?.auth.clientId, undefined);
    assert.equal(config.routes[0]?.auth.tokenExchange?.subjectTokenType, jwtType);
  });
});
