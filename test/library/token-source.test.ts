// createTokenSource (the main entry's token source for any Node program), against src/: the
// sidecar's semantics through the public face (one grant for concurrent callers, invalid_client
// failing fast, a rotated secret file picked up at once, discovery from auth.issuer, invalidate), `auth` validated with the
// config file's messages, and close().

import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { jwtVerify } from 'jose';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { ConfigError, createTokenSource, TokenError } from '../../src/index.js';
import { createLogger } from '../../src/logger.js';
import { audit } from '../helpers/audit.js';
import { makeSigningKey } from '../helpers/certs.js';
import { tempFiles } from '../helpers/config.js';
import { document, issue, serveIssuer, startScriptedTokenServer } from '../helpers/servers.js';
import { eventually } from '../helpers/sidecar.js';

const retry = { retries: 2, minDelayMs: 10, maxDelayMs: 50, maxTimeMs: 2000 };

// Every source logs at trace into `logs`, with the errors and states the tests see: none may hold a secret, key, assertion or token.
const logs: string[] = [];
audit.addOutput(logs);
const logger = createLogger({ level: 'trace', destination: new Writable({ write: (chunk: Buffer, _e, done) => (logs.push(chunk.toString()), done()) }) });
const tokenSource = (auth: Parameters<typeof createTokenSource>[0], options: Parameters<typeof createTokenSource>[1] = {}) => {
  const source = createTokenSource(auth, { logger, ...options });
  const status = source.status.bind(source);
  const recorded = () => {
    const now = status();
    logs.push(JSON.stringify(now));
    return now;
  };
  return Object.assign(source, { status: recorded });
};
for (const secret of ['lib-pw-one', 'lib-pw-two', 'lib-pw-three', 'lib-pw-four']) audit.addSecret(secret);
after(() => audit.assertNothingLeaked());

describe('createTokenSource', () => {
  test('50 concurrent getToken() calls at a cold start: one grant, the same token for all', async () => {
    const tokens = await startScriptedTokenServer(async () => {
      await new Promise((resolve) => setTimeout(resolve, 150));
      return { status: 200, body: issue(3600) };
    });
    const source = tokenSource({ tokenUrl: tokens.url, clientId: 'lib-client', clientSecret: 'lib-pw-one', retry });
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
    const source = tokenSource({ tokenUrl: tokens.url, clientId: 'lib-client', clientSecret: 'lib-pw-two', retry: { ...retry, retries: 5 } });
    try {
      await assert.rejects(source.getToken(), (err: unknown) => err instanceof TokenError && (logs.push(err.message), true) && /invalid_client.*check the client id and secret/.test(err.message));
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
    const source = tokenSource({ tokenUrl: tokens.url, method: 'client_secret_post', clientId: 'lib-client', clientSecretFile: secretFile, retry: { retries: 0, minDelayMs: 60_000, maxDelayMs: 60_000, maxTimeMs: 2000 } });
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
    const source = tokenSource({ issuer: `${origin}/realms/x`, clientId: 'lib-client', clientSecret: 'lib-issuer-secret', retry });
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

  test('method: private_key_jwt: the grant carries a client assertion signed with privateKeyFile, no secret', async () => {
    const key = makeSigningKey('P-256');
    audit.addPrivateKey(key.pem.pkcs8);
    const keyFile = tempFiles('bsc-lib-key-').file('client.key', key.pem.pkcs8);
    const tokens = await startScriptedTokenServer();
    const source = tokenSource({ tokenUrl: tokens.url, method: 'private_key_jwt', clientId: 'lib-jwt-client', privateKeyFile: keyFile, retry });
    try {
      assert.equal(await source.getToken(), tokens.issued[0]);
      const form = tokens.requests[0]?.form ?? {};
      assert.equal(form.client_assertion_type, 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
      assert.equal(form.client_secret, undefined);
      audit.addSecret(form.client_assertion as string);
      const { payload } = await jwtVerify(form.client_assertion as string, createPublicKey(key.privateKey), { audience: tokens.url });
      assert.equal(payload.iss, 'lib-jwt-client');
      assert.equal(payload.sub, 'lib-jwt-client');
    } finally {
      await source.close();
      await tokens.close();
    }
  });

  test('invalidate(token): the rejected token is dropped and one new one fetched', async () => {
    const tokens = await startScriptedTokenServer(() => ({ status: 200, body: issue(3600, { jti: Math.random().toString(36).slice(2) }) }));
    const source = tokenSource({ tokenUrl: tokens.url, clientId: 'lib-client', clientSecret: 'lib-pw-three', retry }, { name: 'billing' });
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
    const source = tokenSource({ tokenUrl: tokens.url, clientId: 'lib-client', clientSecret: 'lib-pw-four', retry });
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
      () => tokenSource({ preset: 'nope', clientSecret: '', refreshAheadRatio: 2, extra: 1 } as never),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.code, 'BSC_CONFIG_INVALID');
        assert.deepEqual([...err.problems].sort(), [
          'auth.clientSecret: must not be empty',
          'auth.extra: unknown field',
          'auth.preset: Invalid option: expected one of "megaport"|"megaport-staging"|"cyxtera"|"entra-workload-identity"',
          'auth.refreshAheadRatio: Too big: expected number to be <1',
        ]);
        return true;
      },
    );
    assert.throws(() => tokenSource(undefined as never), /auth: is required/);
    assert.throws(() => tokenSource({ preset: 'megaport' }), (err: unknown) => err instanceof ConfigError && err.problems.join('|') === 'auth.clientId: is required (or clientIdFile)|auth.clientSecret: is required (or clientSecretFile)');
    assert.throws(() => tokenSource({ tokenUrl: 'http://auth.example.com/token', clientId: 'a', clientSecret: 'b' }), /auth.tokenUrl: http:\/\/ would send the client secret in clear text/);
    assert.throws(() => tokenSource({ tokenUrl: 'https://auth.example.com/token', clientId: 'a', clientSecretFile: '/nonexistent/secret' }), /auth.clientSecretFile: cannot read \/nonexistent\/secret \(ENOENT\)/);
  });
});
