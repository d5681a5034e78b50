import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import type { AuthConfig } from '../../src/config/types.js';
import { startTokenServer, type TokenServer } from '../../src/demo/token-server.js';
import { TokenError } from '../../src/token/errors.js';
import { exchangeClientCredentials, parseRetryAfter } from '../../src/token/exchange.js';
import { issue, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';

function auth(tokenUrl: string, extra: Record<string, unknown> = {}): AuthConfig {
  const config = resolveConfig({ routes: [{ name: 'r', upstream: 'http://127.0.0.1:1', auth: { tokenUrl, clientId: 'id', clientSecret: 'secret', ...extra } }] });
  return (config.routes[0] as { auth: AuthConfig }).auth;
}

async function rejection(promise: Promise<unknown>): Promise<TokenError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof TokenError, `expected TokenError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the exchange to fail');
}

describe('against endpoints that behave as the source documents describe', () => {
  let megaport: TokenServer;
  let cyxtera: TokenServer;
  // RFC 6749 §2.3.1: a secret with ':' and '%' must survive Basic encoding.
  const awkwardSecret = 'p@ss:wo%rd +/=&';
  before(async () => {
    megaport = await startTokenServer({ clients: [{ id: 'mp-key:1', secret: awkwardSecret }], signingKey: 'k', expiresInSeconds: 86_400, methods: ['client_secret_basic'] });
    cyxtera = await startTokenServer({ clients: [{ id: 'KEYID', secret: 'SHAREDSECRET' }], signingKey: 'k', expiresInSeconds: 3600, scope: 'https://api.cyxtera.com/accounts', methods: ['client_secret_post'], path: '/connect/token' });
  });
  after(async () => {
    await megaport.close();
    await cyxtera.close();
  });

  test('Megaport: HTTP Basic with form-urlencoded id and secret, grant_type in the form, 24 h lifetime', async () => {
    const token = await exchangeClientCredentials(auth(megaport.url, { preset: 'megaport', clientId: 'mp-key:1', clientSecret: awkwardSecret }));
    assert.equal(token.lifetimeSeconds, 86_400);
    assert.equal(token.lifetimeFrom, 'expires_in');
    assert.match(token.accessToken, /^ey/);
    const request = megaport.requests.at(-1);
    assert.equal(request?.method, 'client_secret_basic');
    assert.equal(request?.clientId, 'mp-key:1');
    assert.deepEqual(request?.form, { grant_type: 'client_credentials' });
  });

  test('Cyxtera: client_id and client_secret in the form, 1 h lifetime and scope', async () => {
    const token = await exchangeClientCredentials(auth(cyxtera.url, { preset: 'cyxtera', clientId: 'KEYID', clientSecret: 'SHAREDSECRET' }));
    assert.equal(token.lifetimeSeconds, 3600);
    assert.equal(token.scope, 'https://api.cyxtera.com/accounts');
    const request = cyxtera.requests.at(-1);
    assert.equal(request?.method, 'client_secret_post');
    assert.deepEqual(request?.form, { grant_type: 'client_credentials', client_id: 'KEYID' });
  });

  test('a wrong secret is invalid_client: not retryable, with an actionable message and no secret', async () => {
    const err = await rejection(exchangeClientCredentials(auth(megaport.url, { method: 'client_secret_basic', clientId: 'mp-key:1', clientSecret: 'wrong-secret' })));
    assert.equal(err.code, 'BSC_TOKEN_REJECTED');
    assert.equal(err.retryable, false);
    assert.equal(err.status, 401);
    assert.match(err.message, /invalid_client.*check the client id and secret/);
    assert.doesNotMatch(err.message, /wrong-secret/);
  });
});

describe('response checks and error classes', () => {
  let server: ScriptedTokenServer;
  before(async () => {
    server = await startScriptedTokenServer();
  });
  after(() => server.close());

  test('scope, audience and extra parameters are sent as form fields', async () => {
    server.script = () => ({ status: 200, body: issue(600) });
    await exchangeClientCredentials(auth(server.url, { method: 'client_secret_post', scope: 'read write', audience: 'https://api', extraParams: { resource: 'urn:r' } }));
    assert.deepEqual(server.requests.at(-1)?.form, { grant_type: 'client_credentials', scope: 'read write', audience: 'https://api', resource: 'urn:r', client_id: 'id', client_secret: 'secret' });
  });

  test('no expires_in: the JWT exp claim gives the lifetime', async () => {
    server.script = () => ({ status: 200, body: issue(undefined) });
    const token = await exchangeClientCredentials(auth(server.url));
    assert.equal(token.lifetimeFrom, 'jwt');
    assert.ok(Math.abs(token.lifetimeSeconds - 3600) < 5, String(token.lifetimeSeconds));
  });

  test('no expires_in and not a JWT: the configured default', async () => {
    server.script = () => ({ status: 200, body: { access_token: 'opaque-token', token_type: 'bearer' } });
    const token = await exchangeClientCredentials(auth(server.url, { defaultExpiresInSeconds: 1234 }));
    assert.deepEqual([token.lifetimeFrom, token.lifetimeSeconds], ['default', 1234]);
  });

  test('expires_in as a numeric string is accepted; a huge one is capped', async () => {
    server.script = () => ({ status: 200, body: { access_token: 't', expires_in: '900' } });
    assert.equal((await exchangeClientCredentials(auth(server.url))).lifetimeSeconds, 900);
    server.script = () => ({ status: 200, body: { access_token: 't', expires_in: 10 ** 9 } });
    assert.equal((await exchangeClientCredentials(auth(server.url))).lifetimeSeconds, 86_400);
  });

  const malformed: [string, unknown, RegExp][] = [
    ['empty 200', '', /body is empty/],
    ['not JSON', '<html>oops</html>', /not JSON/],
    ['truncated JSON', '{"access_token": "abc', /not JSON/],
    ['JSON array', '[]', /not a JSON object/],
    ['no access_token', { token_type: 'Bearer', expires_in: 3600 }, /access_token is missing/],
    ['empty access_token', { access_token: '', expires_in: 3600 }, /access_token is missing/],
    ['zero expires_in', { access_token: 'x', expires_in: 0 }, /expires_in is 0/],
    ['negative expires_in', { access_token: 'x', expires_in: -5 }, /expires_in is -5/],
    ['access_token with a newline (header injection)', { access_token: 'a\r\nX-Evil: 1', expires_in: 60 }, /not allowed in a header/],
  ];
  for (const [name, body, expected] of malformed) {
    test(`malformed 200 (${name}) is a retryable failure with a clear message`, async () => {
      server.script = () => ({ status: 200, body });
      const err = await rejection(exchangeClientCredentials(auth(server.url)));
      assert.equal(err.code, 'BSC_TOKEN_MALFORMED');
      assert.equal(err.retryable, true);
      assert.match(err.message, expected);
    });
  }

  test('a token type other than Bearer is refused for good', async () => {
    server.script = () => ({ status: 200, body: { access_token: 'x', token_type: 'mac', expires_in: 60 } });
    const err = await rejection(exchangeClientCredentials(auth(server.url)));
    assert.equal(err.retryable, false);
  });

  for (const status of [500, 502, 503, 408]) {
    test(`${status} is retryable`, async () => {
      server.script = () => ({ status, body: 'upstream trouble' });
      const err = await rejection(exchangeClientCredentials(auth(server.url)));
      assert.deepEqual([err.code, err.retryable, err.status], ['BSC_TOKEN_HTTP_ERROR', true, status]);
    });
  }

  test('429 is retryable and carries Retry-After', async () => {
    server.script = () => ({ status: 429, body: { error: 'slow_down' }, headers: { 'retry-after': '7' } });
    const err = await rejection(exchangeClientCredentials(auth(server.url)));
    assert.deepEqual([err.retryable, err.retryAfterMs], [true, 7000]);
  });

  for (const error of ['invalid_client', 'invalid_grant', 'unauthorized_client']) {
    test(`400 ${error} fails fast`, async () => {
      // An endpoint that echoes the secret back in its description must not get it into our message.
      server.script = () => ({ status: 400, body: { error, error_description: 'bad secret S3cr3t-XYZ-42' } });
      const err = await rejection(exchangeClientCredentials(auth(server.url, { clientSecret: 'S3cr3t-XYZ-42' })));
      assert.deepEqual([err.code, err.retryable], ['BSC_TOKEN_REJECTED', false]);
      assert.match(err.message, new RegExp(error));
      assert.match(err.message, /retrying cannot change this answer/);
      assert.doesNotMatch(err.message, /S3cr3t-XYZ-42/);
      assert.match(err.message, /bad secret \[redacted\]/);
    });
  }

  test('a 404 (wrong token URL) fails fast', async () => {
    server.script = () => ({ status: 404, body: 'not found' });
    assert.equal((await rejection(exchangeClientCredentials(auth(server.url)))).retryable, false);
  });

  test('a slow endpoint times out (retryable)', async () => {
    server.script = () => 'hang';
    const started = Date.now();
    const err = await rejection(exchangeClientCredentials(auth(server.url, { timeoutMs: 200 })));
    assert.deepEqual([err.code, err.retryable], ['BSC_TOKEN_TIMEOUT', true]);
    assert.ok(Date.now() - started < 2000);
  });

  test('a connection reset is a retryable network error', async () => {
    server.script = () => 'reset';
    const err = await rejection(exchangeClientCredentials(auth(server.url)));
    assert.deepEqual([err.code, err.retryable], ['BSC_TOKEN_NETWORK', true]);
  });

  test('nothing listening is a retryable network error', async () => {
    const err = await rejection(exchangeClientCredentials(auth('http://127.0.0.1:1/token')));
    assert.deepEqual([err.code, err.retryable], ['BSC_TOKEN_NETWORK', true]);
    assert.match(err.message, /ECONNREFUSED/);
  });
});

test('Retry-After as seconds or an HTTP date', () => {
  const now = Date.UTC(2026, 0, 1);
  assert.equal(parseRetryAfter('120', now), 120_000);
  assert.equal(parseRetryAfter(new Date(now + 30_000).toUTCString(), now), 30_000);
  assert.equal(parseRetryAfter('soon', now), undefined);
  assert.equal(parseRetryAfter(undefined, now), undefined);
});
