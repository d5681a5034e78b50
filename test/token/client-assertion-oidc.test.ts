// client_assertion and private_key_jwt's assertionAudience against panva's oidc-provider, a
// certified OpenID provider, on 127.0.0.1. The "cluster" holds a key the provider knows as the
// client's: the test signs service-account-like tokens with it and puts them in a projected-volume
// layout, as the kubelet would; the sidecar presents the file's content as client_assertion and
// the provider checks its signature, audience, expiry and that its jti is used once.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeJwt, SignJWT } from 'jose';
import { resolveConfig } from '../../src/config/load.js';
import type { AuthConfig } from '../../src/config/types.js';
import { tokenDispatcher } from '../../src/outbound/dispatcher.js';
import { direct } from '../../src/config/outbound-proxy.js';
import { TokenError } from '../../src/token/errors.js';
import { audit } from '../helpers/audit.js';
import { makeSigningKey, makeTestPki, opensslMissing, type SigningKey, type TestPki } from '../helpers/certs.js';
import { secretVolume, tempFiles } from '../helpers/config.js';
import { exchangeAsSidecar, idpAuth, startOidcProvider, type TestIdp } from '../helpers/oidc-provider.js';

describe('client assertions from files, and the assertion audience, against oidc-provider', { skip: opensslMissing }, () => {
  let pki: TestPki;
  let idp: TestIdp;
  let cluster: SigningKey;
  const files = tempFiles('bsc-assertion-oidc-');

  before(async () => {
    pki = makeTestPki();
    cluster = makeSigningKey('P-256');
    audit.addPrivateKey(cluster.pem.pkcs8 as string);
    idp = await startOidcProvider(pki, [
      { client_id: 'workload', jwks: { keys: [{ ...cluster.publicJwk, kid: 'cluster-1' }] } },
      { client_id: 'auth0-style', jwks: { keys: [{ ...cluster.publicJwk, kid: 'cluster-1' }] } },
    ]);
  });
  after(async () => {
    await idp.close();
    audit.assertNothingLeaked();
  });

  /** A token as the cluster would issue it for this client, valid `seconds` from now. */
  async function serviceAccountToken(clientId: string, audience: string, seconds = 600): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const { createPrivateKey } = await import('node:crypto');
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'cluster-1' })
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(audience)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + seconds)
      .sign(createPrivateKey(cluster.pem.pkcs8 as string));
    audit.addSecret(token);
    return token;
  }

  const auth = (fields: Record<string, unknown>): AuthConfig => idpAuth(idp, pki, fields);
  const exchange = exchangeAsSidecar;

  test('client_assertion: each request presents the file as it is then; a rotated file is used at once, a file presented twice is refused (single-use jti)', async () => {
    const volume = secretVolume({ token: await serviceAccountToken('workload', idp.tokenUrl) });
    const config = auth({ method: 'client_assertion', clientId: 'workload', clientAssertionFile: join(volume.dir, 'token') });
    for (let round = 0; round < 3; round++) {
      const assertion = await serviceAccountToken('workload', idp.tokenUrl);
      volume.rotate({ token: assertion });
      const token = await exchange(config);
      assert.ok(idp.issued.includes(token.accessToken), `round ${round}: the provider issued the token`);
      assert.equal(idp.assertions.at(-1), assertion, `round ${round}: the file's content at that moment was sent`);
      assert.equal(idp.requests.at(-1)?.clientId, 'workload');
      assert.equal(idp.requests.at(-1)?.withSecret, false, 'no secret at all');
    }
    // Not rotated: the provider has seen this jti and refuses it, and the sidecar says what to check.
    const refusals = idp.refusals.length;
    await assert.rejects(exchange(config), (err: unknown) => err instanceof TokenError && err.code === 'BSC_TOKEN_REJECTED' && /invalid_client/.test(err.message) && err.message.includes(join(volume.dir, 'token')));
    assert.equal(idp.refusals.length, refusals + 1);
  });

  test('client_assertion: a token made for another audience is refused by the provider', async () => {
    const wrongAudience = files.file('aud.jwt', await serviceAccountToken('workload', 'https://elsewhere.example/token'));
    await assert.rejects(exchange(auth({ method: 'client_assertion', clientId: 'workload', clientAssertionFile: wrongAudience })), (err: unknown) => err instanceof TokenError && err.code === 'BSC_TOKEN_REJECTED');
  });

  test('client_assertion: an expired file never leaves the sidecar; the error names the file and when it expired', async () => {
    const expired = files.file('expired.jwt', await serviceAccountToken('workload', idp.tokenUrl, -120));
    const sent = idp.assertions.length;
    await assert.rejects(exchange(auth({ method: 'client_assertion', clientId: 'workload', clientAssertionFile: expired })), (err: unknown) => {
      assert.ok(err instanceof TokenError);
      assert.equal(err.code, 'BSC_TOKEN_ASSERTION_EXPIRED');
      assert.equal(err.retryable, true);
      assert.match(err.message, /expired at \d{4}-\d\d-\d\dT/);
      assert.ok(err.message.includes(expired));
      return true;
    });
    assert.equal(idp.assertions.length, sent, 'nothing was sent');
  });

  test('private_key_jwt with assertionAudience: issuer puts the issuer in aud (tokenUrl for the request), and the provider accepts it', async () => {
    const privateKeyFile = files.file('auth0.pem', cluster.pem.pkcs8 as string);
    const config = auth({ method: 'private_key_jwt', clientId: 'auth0-style', privateKeyFile, keyId: 'cluster-1', issuer: idp.issuer, assertionAudience: 'issuer' });
    assert.equal(config.tokenUrl, idp.tokenUrl);
    const token = await exchange(config);
    assert.ok(idp.issued.includes(token.accessToken));
    assert.equal(decodeJwt(idp.assertions.at(-1) as string).aud, idp.issuer);
    // The default stays the token endpoint.
    await exchange(auth({ method: 'private_key_jwt', clientId: 'auth0-style', privateKeyFile, keyId: 'cluster-1' }));
    assert.equal(decodeJwt(idp.assertions.at(-1) as string).aud, idp.tokenUrl);
  });

  test('private_key_jwt with assertionAudience: issuer and discovery (issuer only): aud is the issuer', async () => {
    const privateKeyFile = files.file('auth0-discovery.pem', cluster.pem.pkcs8 as string);
    const config = resolveConfig({ routes: [{ name: 'r', upstream: 'http://127.0.0.1:1', auth: { issuer: idp.issuer, method: 'private_key_jwt', clientId: 'auth0-style', privateKeyFile, keyId: 'cluster-1', assertionAudience: 'issuer', scope: 'api', tls: { caFile: pki.caFile } } }] }).routes[0]?.auth as AuthConfig;
    const { TokenFetcher } = await import('../../src/token/fetcher.js');
    const dispatcher = tokenDispatcher(direct, config.tls, config.timeoutMs);
    try {
      const token = await new TokenFetcher(config, { dispatcher }).fetch();
      assert.ok(idp.issued.includes(token.accessToken));
      assert.equal(decodeJwt(idp.assertions.at(-1) as string).aud, idp.issuer);
    } finally {
      await dispatcher?.close();
    }
  });
});
