// private_key_jwt and tls_client_auth against panva's oidc-provider, a certified OpenID provider,
// started here on 127.0.0.1 over HTTPS with a test CA. The provider verifies each client
// assertion's signature, claims and audience, and refuses a jti it has seen (replay detection):
// every accepted request proves a fresh jti. tls_client_auth runs over real mutual TLS.

import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { compactVerify, decodeJwt, decodeProtectedHeader } from 'jose';
import { resolveConfig } from '../../src/config/load.js';
import type { AuthConfig } from '../../src/config/types.js';
import { tokenDispatcher } from '../../src/tls.js';
import { TokenError } from '../../src/token/errors.js';
import { exchangeClientCredentials, type Token } from '../../src/token/exchange.js';
import { audit } from '../helpers/audit.js';
import { makeSigningKey, makeTestPki, opensslMissing, type SigningKey, type SigningKeyKind, type TestPki } from '../helpers/certs.js';
import { tempFiles } from '../helpers/config.js';
import { startOidcProvider, type TestIdp } from '../helpers/oidc-provider.js';

describe('client authentication against oidc-provider', { skip: opensslMissing }, () => {
  let pki: TestPki;
  let idp: TestIdp;
  const files = tempFiles('bsc-client-auth-');
  const keys = new Map<SigningKeyKind, SigningKey>();
  const kinds: SigningKeyKind[] = ['rsa', 'P-256', 'P-384', 'P-521', 'ed25519'];
  /** Registered at the provider, never configured in the sidecar. */
  let stranger: SigningKey;

  before(async () => {
    pki = makeTestPki();
    for (const kind of kinds) {
      const key = makeSigningKey(kind);
      keys.set(kind, key);
      for (const pem of Object.values(key.pem)) audit.addPrivateKey(pem);
    }
    stranger = makeSigningKey('rsa');
    idp = await startOidcProvider(pki, [
      ...kinds.map((kind) => ({ client_id: `jwt-${kind}`, jwks: { keys: [{ ...keys.get(kind)?.publicJwk, kid: `${kind}-1` }] } })),
      { client_id: 'jwt-stranger', jwks: { keys: [stranger.publicJwk] } },
      { client_id: 'jwt-rotating', jwks: { keys: [keys.get('P-256')?.publicJwk, keys.get('P-384')?.publicJwk] as Record<string, unknown>[] } },
      { client_id: 'mtls-reporting', tls_client_auth_subject_dn: 'CN=reporting' },
    ]);
  });
  after(async () => {
    await idp.close();
    audit.assertNothingLeaked();
  });

  /** The resolved auth config of a route with these auth fields, trusting the test CA. */
  function auth(fields: Record<string, unknown>): AuthConfig {
    const config = resolveConfig({
      routes: [{ name: 'r', upstream: 'http://127.0.0.1:1', auth: { tokenUrl: idp.tokenUrl, scope: 'api', ...fields, tls: { caFile: pki.caFile, ...(fields.tls as object) } } }],
    });
    return (config.routes[0] as { auth: AuthConfig }).auth;
  }

  /** One token request as the sidecar makes it: through the route's token dispatcher. */
  async function exchange(config: AuthConfig): Promise<Token> {
    const dispatcher = tokenDispatcher(config.tls);
    try {
      return await exchangeClientCredentials(config, dispatcher ? { dispatcher } : {});
    } finally {
      await dispatcher?.close();
    }
  }

  const defaults: Record<string, string> = { rsa: 'RS256', 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512', ed25519: 'EdDSA' };

  for (const kind of kinds) {
    test(`private_key_jwt, ${kind} key: every PEM format it has is accepted, signed with ${defaults[kind]} by default`, async () => {
      const key = keys.get(kind) as SigningKey;
      for (const [format, pem] of Object.entries(key.pem)) {
        const privateKeyFile = files.file(`${kind}-${format}.pem`, pem);
        const token = await exchange(auth({ method: 'private_key_jwt', clientId: `jwt-${kind}`, privateKeyFile, keyId: `${kind}-1` }));
        assert.ok(idp.issued.includes(token.accessToken), `${format}: the provider issued the token`);
        const header = decodeProtectedHeader(idp.assertions.at(-1) as string);
        assert.deepEqual(header, { alg: defaults[kind], kid: `${kind}-1` }, format);
      }
    });
  }

  test('private_key_jwt claims: iss = sub = client id, aud = the token URL, fresh jti, short life; two requests in a row are both accepted', async () => {
    const config = auth({ method: 'private_key_jwt', clientId: 'jwt-P-256', privateKeyFile: files.file('claims.pem', keys.get('P-256')?.pem.pkcs8 as string) });
    const before = idp.assertions.length;
    const started = Math.floor(Date.now() / 1000);
    await exchange(config);
    await exchange(config);
    const sent = idp.assertions.slice(before);
    assert.equal(sent.length, 2);
    // The provider's replay detection refuses a jti it has seen: both accepted means two fresh ones.
    assert.deepEqual(idp.refusals, []);
    const [first, second] = sent.map((assertion) => decodeJwt(assertion));
    for (const claims of [first, second]) {
      assert.equal(claims?.iss, 'jwt-P-256');
      assert.equal(claims?.sub, 'jwt-P-256');
      assert.equal(claims?.aud, idp.tokenUrl);
      assert.match(String(claims?.jti), /^[0-9a-f-]{36}$/);
      const iat = claims?.iat as number;
      assert.ok(iat >= started - 1 && iat <= started + 60, `iat ${iat} is now`);
      assert.ok((claims?.exp as number) > iat && (claims?.exp as number) - iat <= 300, 'exp at most 5 minutes ahead');
    }
    assert.notEqual(first?.jti, second?.jti);
  });

  test('private_key_jwt: signingAlgorithm PS256 (and RS512) with an RSA key; client_id in the form, no secret', async () => {
    const privateKeyFile = files.file('ps.pem', keys.get('rsa')?.pem.pkcs1 as string);
    for (const signingAlgorithm of ['PS256', 'RS512']) {
      await exchange(auth({ method: 'private_key_jwt', clientId: 'jwt-rsa', privateKeyFile, signingAlgorithm }));
      assert.equal(decodeProtectedHeader(idp.assertions.at(-1) as string).alg, signingAlgorithm);
      assert.deepEqual(idp.requests.at(-1), { clientId: 'jwt-rsa', withSecret: false, certificateSubject: '' });
    }
  });

  test('private_key_jwt: a rotated key file is used by the next token request, without a restart', async () => {
    const [p256, p384] = [keys.get('P-256'), keys.get('P-384')] as SigningKey[];
    const privateKeyFile = files.file('rotating.pem', p256?.pem.sec1 as string);
    const config = auth({ method: 'private_key_jwt', clientId: 'jwt-rotating', privateKeyFile });
    const signedBy = async (key: SigningKey) => compactVerify(idp.assertions.at(-1) as string, createPublicKey(key.privateKey)).then(() => true, () => false);
    await exchange(config);
    assert.ok(await signedBy(p256 as SigningKey));
    writeFileSync(privateKeyFile, p384?.pem.pkcs8 as string);
    await exchange(config);
    assert.ok(await signedBy(p384 as SigningKey), 'the new key signed, with its own algorithm');
    assert.equal(decodeProtectedHeader(idp.assertions.at(-1) as string).alg, 'ES384');
  });

  test('private_key_jwt: a key the provider does not hold is invalid_client, not retried, with a hint about the key and no assertion in the message', async () => {
    const other = makeSigningKey('rsa');
    audit.addPrivateKey(other.pem.pkcs8);
    const err = await exchange(auth({ method: 'private_key_jwt', clientId: 'jwt-stranger', privateKeyFile: files.file('other.pem', other.pem.pkcs8) })).then(
      () => assert.fail('expected a refusal'),
      (e: unknown) => e as TokenError,
    );
    assert.ok(err instanceof TokenError);
    assert.deepEqual([err.code, err.retryable], ['BSC_TOKEN_REJECTED', false]);
    assert.match(err.message, /invalid_client.*public key of auth\.privateKeyFile/);
    assert.ok(!err.message.includes(idp.assertions.at(-1) as string));
  });

  test('tls_client_auth over mutual TLS: the certificate authenticates; client_id in the form, no secret', async () => {
    const reporting = pki.client('reporting');
    audit.addPrivateKey(reporting.key.toString());
    const before = idp.requests.length;
    const token = await exchange(auth({ method: 'tls_client_auth', clientId: 'mtls-reporting', tls: { certFile: reporting.certFile, keyFile: reporting.keyFile } }));
    assert.ok(idp.issued.includes(token.accessToken));
    assert.deepEqual(idp.requests.slice(before), [{ clientId: 'mtls-reporting', withSecret: false, certificateSubject: 'CN=reporting' }]);
  });

  test('tls_client_auth: an encrypted key opens with keyPassphraseFile', async () => {
    const reporting = pki.client('reporting', { passphrase: 'correct horse battery staple' });
    const token = await exchange(
      auth({ method: 'tls_client_auth', clientId: 'mtls-reporting', tls: { certFile: reporting.certFile, keyFile: reporting.keyFile, keyPassphraseFile: reporting.passphraseFile } }),
    );
    assert.ok(idp.issued.includes(token.accessToken));
  });

  test('tls_client_auth: a certificate with another subject is refused (invalid_client)', async () => {
    const billing = pki.client('billing');
    const err = await exchange(auth({ method: 'tls_client_auth', clientId: 'mtls-reporting', tls: { certFile: billing.certFile, keyFile: billing.keyFile } })).then(
      () => assert.fail('expected a refusal'),
      (e: unknown) => e as TokenError,
    );
    assert.equal(err.code, 'BSC_TOKEN_REJECTED');
    assert.match(err.message, /invalid_client.*auth\.tls\.certFile/);
  });
});
