// createTokenSource (the main entry's token source for any Node program), against src/: the
// sidecar's semantics through the public face (one grant for concurrent callers, invalid_client
// failing fast, a rotated secret file picked up at once, discovery from auth.issuer, invalidate), `auth` validated with the
// config file's messages, and close().

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { ConfigError, createTokenSource, TokenError } from '../../src/index.js';
import { audit } from '../helpers/audit.js';
import { tempFiles } from '../helpers/config.js';
import { document, issue, serveIssuer, startScriptedTokenServer } from '../helpers/servers.js';
import { eventually } from '../helpers/sidecar.js';

const retry = { retries: 2, minDelayMs: 10, maxDelayMs: 50, maxTimeMs: 2000 };

describe('createTokenSource', () => {
  test('50 concurrent getToken() calls at a cold start: one grant, the same token for all', async () => {
    const tokens = await startScriptedTokenServer(async () => {
      await new Promise((resolve) => setTimeout(resolve, 150));
      return { status: 200, body: issue(3600) };
    });
    const source = createTokenSource({ tokenUrl: tokens.url, clientId: 'lib-client', clientSecret: 'lib-secret-1', retry });
    try {
      assert.equal(source.status().state, 'starting');
      const got = await Promise.all(Array.from({ length: 50 }, () => source.getToken()));
      assert.equal(tokens.requests.length, 1);
      assert.ok(got.every((token) => token === tokens.issued[0]));
      const status = source.status();
      assert.equal(status.state, 'ready');
      assert.ok(!JSON.stringify(status).includes(got[0] as string), 'status() never shows the token');
    } finally {
      await source.close();
      await tokens.close();
    }
  });

  test('invalid_client fails fast: one request, no retries, a TokenError that says what to check', async () => {
    const tokens = await startScriptedTokenServer(() => ({ status: 401, body: { error: 'invalid_client' } }));
    const source = createTokenSource({ tokenUrl: tokens.url, clientId: 'lib-client', clientSecret: 'lib-secret-2', retry: { ...retry, retries: 5 } });
    try {
      await assert.rejects(source.getToken(), (err: unknown) => err instanceof TokenError && /invalid_client.*check the client id and secret/.test(err.message));
      assert.equal(tokens.requests.length, 1);
      assert.equal(source.status().state, 'unavailable');
    } finally {
      await source.close();
      await tokens.close();
    }
  });

  test('a rotated clientSecretFile is picked up at once after invalid_client, not after the backoff', async () => {
    const files = tempFiles('bsc-lib-secret-');
    const secretFile = files.file('client-secret', 'old-secret-value\n');
    audit.addSecret('old-secret-value');
    audit.addSecret('new-secret-value');
    const tokens = await startScriptedTokenServer((request) =>
      request.form.client_secret === 'new-secret-value' ? { status: 200, body: issue(3600) } : { status: 401, body: { error: 'invalid_client' } },
    );
    // A minute of backoff after the failure: only the file watch can make the next attempt come sooner.
    const source = createTokenSource({ tokenUrl: tokens.url, method: 'client_secret_post', clientId: 'lib-client', clientSecretFile: secretFile, retry: { retries: 0, minDelayMs: 60_000, maxDelayMs: 60_000, maxTimeMs: 2000 } });
    try {
      await assert.rejects(source.getToken(), TokenError);
      writeFileSync(secretFile, 'new-secret-value\n');
      await eventually(() => source.status().state === 'ready', 10_000);
      assert.equal(await source.getToken(), tokens.issued[0]);
    } finally {
      await source.close();
      await tokens.close();
    }
  });

  test('auth.issuer: the token endpoint and the method come from the discovery document, read once for concurrent callers', async () => {
    audit.addSecret('lib-issuer-secret');
    const idp = await startScriptedTokenServer();
    const origin = new URL(idp.url).origin;
    // Only client_secret_post offered: the source must choose it (the secret in the form, no Basic header).
    serveIssuer(idp, { '/realms/x/.well-known/openid-configuration': document(`${origin}/realms/x`, `${origin}/realms/x/token`, { token_endpoint_auth_methods_supported: ['client_secret_post'] }) });
    const source = createTokenSource({ issuer: `${origin}/realms/x`, clientId: 'lib-client', clientSecret: 'lib-issuer-secret', retry });
    try {
      const got = await Promise.all(Array.from({ length: 20 }, () => source.getToken()));
      assert.deepEqual(new Set(got), new Set([idp.issued[0]]));
      assert.deepEqual(
        idp.requests.map((request) => `${request.method} ${request.path}`),
        ['GET /realms/x/.well-known/openid-configuration', 'POST /realms/x/token'],
      );
      const grant = idp.requests[1];
      assert.equal(grant?.form.client_secret, 'lib-issuer-secret');
      assert.equal(grant?.headers.authorization, undefined);
    } finally {
      await source.close();
      await idp.close();
    }
  });

  test('invalidate(token): the rejected token is dropped and one new one fetched', async () => {
    const tokens = await startScriptedTokenServer(() => ({ status: 200, body: issue(3600, { jti: Math.random().toString(36).slice(2) }) }));
    const source = createTokenSource({ tokenUrl: tokens.url, clientId: 'lib-client', clientSecret: 'lib-secret-3', retry }, { name: 'billing' });
    try {
      const first = await source.getToken();
      await Promise.all([source.invalidate(first), source.invalidate(first)]);
      const second = await source.getToken();
      assert.notEqual(second, first);
      assert.equal(tokens.requests.length, 2);
      assert.equal(source.status().name, 'billing');
    } finally {
      await source.close();
      await tokens.close();
    }
  });

  test('close(): getToken() fails, the state says closed', async () => {
    const tokens = await startScriptedTokenServer();
    const source = createTokenSource({ tokenUrl: tokens.url, clientId: 'lib-client', clientSecret: 'lib-secret-4', retry });
    try {
      await source.getToken();
      await source.close();
      assert.equal(source.status().state, 'closed');
      await assert.rejects(source.getToken(), /the token source is closed/);
    } finally {
      await source.close();
      await tokens.close();
    }
  });

  // As in a config file, the cross-field checks (clientId or clientIdFile, ...) come once every field is valid.
  test('invalid auth: ConfigError with every problem led by its field path, as at start-up', () => {
    assert.throws(
      () => createTokenSource({ preset: 'nope', clientSecret: '', refreshAheadRatio: 2, extra: 1 } as never),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.code, 'BSC_CONFIG_INVALID');
        assert.deepEqual([...err.problems].sort(), [
          'auth.clientSecret: must not be empty',
          'auth.extra: unknown field',
          'auth.preset: Invalid option: expected one of "megaport"|"megaport-staging"|"cyxtera"',
          'auth.refreshAheadRatio: Too big: expected number to be <1',
        ]);
        return true;
      },
    );
    assert.throws(() => createTokenSource(undefined as never), /auth: is required/);
    assert.throws(() => createTokenSource({ preset: 'megaport' }), (err: unknown) => err instanceof ConfigError && err.problems.join('|') === 'auth.clientId: is required (or clientIdFile)|auth.clientSecret: is required (or clientSecretFile)');
    assert.throws(() => createTokenSource({ tokenUrl: 'http://auth.example.com/token', clientId: 'a', clientSecret: 'b' }), /auth.tokenUrl: http:\/\/ would send the client secret in clear text/);
    assert.throws(() => createTokenSource({ tokenUrl: 'https://auth.example.com/token', clientId: 'a', clientSecretFile: '/nonexistent/secret' }), /auth.clientSecretFile: cannot read \/nonexistent\/secret \(ENOENT\)/);
  });
});
