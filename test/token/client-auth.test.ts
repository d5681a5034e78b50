// private_key_jwt and tls_client_auth against panva's oidc-provider, a certified OpenID provider,
// started here on 127.0.0.1 over HTTPS with a test CA. The provider verifies each client
// assertion's signature, claims and audience, and refuses a jti it has seen (replay detection):
// every accepted request proves a fresh jti. tls_client_auth runs over real mutual TLS.

import assert from 'node:assert/strict';
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { compactVerify, decodeJwt, decodeProtectedHeader } from 'jose';
import type { AuthConfig } from '../../src/config/types.js';
import { tokenDispatcher } from '../../src/outbound/dispatcher.js';
import { direct } from '../../src/config/outbound-proxy.js';
import { TokenError } from '../../src/token/errors.js';
import type { Token } from '../../src/token/exchange.js';
import { TokenFetcher } from '../../src/token/fetcher.js';
import Fastify from 'fastify';
import { bearerProxy } from '../../src/fastify/index.js';
import { createTokenSource } from '../../src/index.js';
import { closeServer } from '../../src/demo/token-server.js';
import { audit, call } from '../helpers/audit.js';
import { makeSigningKey, makeTestPki, opensslMissing, selfSignedCertificate, type SigningKey, type SigningKeyKind, type TestPki } from '../helpers/certs.js';
import { tempFiles } from '../helpers/config.js';
import { exchangeAsSidecar, idpAuth, startOidcProvider, type TestIdp } from '../helpers/oidc-provider.js';
import { runToEnd } from '../helpers/process.js';
import { eventually, startSidecar } from '../helpers/sidecar.js';
import type { TokenSource } from '../../src/token/token-source.js';

describe('client authentication against oidc-provider', { skip: opensslMissing }, () => {
  let pki: TestPki;
  let idp: TestIdp;
  const files = tempFiles('bsc-client-auth-');
  const keys = new Map<SigningKeyKind, SigningKey>();
  const kinds: SigningKeyKind[] = ['rsa', 'P-256', 'P-384', 'P-521', 'ed25519'];
  /** Registered at the provider, never configured in the sidecar. */
  let stranger: SigningKey;
  /** The API behind the sidecar: records the Authorization header of every request. */
  let upstream: Server;
  let upstreamUrl: string;
  const bearers: string[] = [];

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
    upstream = createServer((req, res) => {
      bearers.push(req.headers.authorization ?? '');
      req.resume();
      res.end('ok');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  });
  after(async () => {
    await Promise.all([idp.close(), closeServer(upstream)]);
    audit.assertNothingLeaked();
  });

  const auth = (fields: Record<string, unknown>): AuthConfig => idpAuth(idp, pki, fields);
  const exchange = exchangeAsSidecar;

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
    const refusals = idp.refusals.length;
    const started = Math.floor(Date.now() / 1000);
    await exchange(config);
    await exchange(config);
    const sent = idp.assertions.slice(before);
    assert.equal(sent.length, 2);
    // The provider's replay detection refuses a jti it has seen: both accepted means two fresh ones.
    assert.deepEqual(idp.refusals.slice(refusals), []);
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

  test('private_key_jwt: certificateFile puts the certificate\'s SHA-256 thumbprint in the header (x5t#S256), as Microsoft Entra ID wants', async () => {
    const key = keys.get('rsa') as SigningKey;
    const certificatePem = selfSignedCertificate(key.pem.pkcs8);
    const certificateFile = files.file('rsa-cert.pem', certificatePem);
    await exchange(auth({ method: 'private_key_jwt', clientId: 'jwt-rsa', privateKeyFile: files.file('rsa-x5t.pem', key.pem.pkcs8), certificateFile, signingAlgorithm: 'PS256' }));
    const thumbprint = createHash('sha256').update(new X509Certificate(certificatePem).raw).digest('base64url');
    assert.deepEqual(decodeProtectedHeader(idp.assertions.at(-1) as string), { alg: 'PS256', 'x5t#S256': thumbprint });
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

  test('private_key_jwt: a key file gone when a token is due: BSC_TOKEN_CREDENTIALS naming the file, retried (a Secret mid-swap); garbage in it: not retried', async () => {
    const privateKeyFile = files.file('vanishing.pem', keys.get('P-256')?.pem.pkcs8 as string);
    const config = auth({ method: 'private_key_jwt', clientId: 'jwt-P-256', privateKeyFile });
    unlinkSync(privateKeyFile);
    const gone = await exchange(config).then(() => assert.fail('expected a failure'), (e: unknown) => e as TokenError);
    assert.deepEqual([gone.code, gone.retryable], ['BSC_TOKEN_CREDENTIALS', true]);
    assert.match(gone.message, /^cannot read credentials: .*vanishing\.pem/);
    writeFileSync(privateKeyFile, 'not a key');
    const garbage = await exchange(config).then(() => assert.fail('expected a failure'), (e: unknown) => e as TokenError);
    assert.deepEqual([garbage.code, garbage.retryable], ['BSC_TOKEN_CREDENTIALS', false]);
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

  /** One token request with discovery, as the sidecar makes it: the route's TokenFetcher through its token dispatcher. */
  async function fetchDiscovered(config: AuthConfig): Promise<{ token: Token; endpoint: string | undefined }> {
    const dispatcher = tokenDispatcher(direct, config.tls, config.timeoutMs);
    try {
      const fetcher = new TokenFetcher(config, dispatcher ? { dispatcher } : {});
      const token = await fetcher.fetch();
      return { token, endpoint: fetcher.endpoint?.url };
    } finally {
      await dispatcher?.close();
    }
  }

  test('discovery with private_key_jwt: the method is kept (the document lists no secret method), and the assertion\'s aud is the discovered token endpoint', async () => {
    const config = auth({ tokenUrl: undefined, issuer: idp.issuer, method: 'private_key_jwt', clientId: 'jwt-P-256', privateKeyFile: files.file('discovered.pem', keys.get('P-256')?.pem.pkcs8 as string) });
    const before = idp.received.length;
    const { token, endpoint } = await fetchDiscovered(config);
    assert.ok(idp.issued.includes(token.accessToken));
    assert.equal(endpoint, idp.tokenUrl, 'the plain endpoint: the mTLS alias is for tls_client_auth');
    assert.deepEqual(idp.received.slice(before), ['GET /.well-known/openid-configuration', 'POST /token']);
    assert.equal(decodeJwt(idp.assertions.at(-1) as string).aud, idp.tokenUrl);
    assert.deepEqual(idp.requests.at(-1), { clientId: 'jwt-P-256', withSecret: false, certificateSubject: '' });
  });

  test('discovery with tls_client_auth: the document is read over mutual TLS, and the token request goes to mtls_endpoint_aliases.token_endpoint (RFC 8705 §5)', async () => {
    const reporting = pki.client('reporting');
    const config = auth({ tokenUrl: undefined, issuer: idp.issuer, method: 'tls_client_auth', clientId: 'mtls-reporting', tls: { certFile: reporting.certFile, keyFile: reporting.keyFile } });
    const before = idp.received.length;
    const { token, endpoint } = await fetchDiscovered(config);
    assert.ok(idp.issued.includes(token.accessToken));
    assert.equal(endpoint, idp.mtlsTokenUrl);
    assert.deepEqual(idp.received.slice(before), ['GET /.well-known/openid-configuration CN=reporting', 'POST /mtls/token CN=reporting']);
    assert.deepEqual(idp.requests.at(-1), { clientId: 'mtls-reporting', withSecret: false, certificateSubject: 'CN=reporting' });
  });

  test('library, createTokenSource: discovery and private_key_jwt as in the sidecar', async () => {
    const source = createTokenSource(
      { issuer: idp.issuer, method: 'private_key_jwt', clientId: 'jwt-P-384', privateKeyFile: files.file('library.pem', keys.get('P-384')?.pem.sec1 as string), scope: 'api', tls: { caFile: pki.caFile } },
      { name: 'library' },
    );
    try {
      const token = await source.getToken();
      assert.ok(idp.issued.includes(token));
      assert.equal(decodeJwt(idp.assertions.at(-1) as string).aud, idp.tokenUrl);
      assert.equal(decodeProtectedHeader(idp.assertions.at(-1) as string).alg, 'ES384');
    } finally {
      await source.close();
    }
  });

  test('library, the Fastify plugin: discovery and tls_client_auth over mutual TLS, the token on the forwarded request', async () => {
    const reporting = pki.client('reporting');
    const app = Fastify();
    await app.register(bearerProxy, {
      prefix: '/api',
      upstream: upstreamUrl,
      auth: { issuer: idp.issuer, method: 'tls_client_auth', clientId: 'mtls-reporting', scope: 'api', tls: { caFile: pki.caFile, certFile: reporting.certFile, keyFile: reporting.keyFile } },
    });
    try {
      const before = idp.received.length;
      const answer = await app.inject({ url: '/api/x' });
      assert.equal(answer.statusCode, 200, answer.body);
      assert.equal(bearers.at(-1), `Bearer ${idp.issued.at(-1)}`);
      assert.deepEqual(idp.received.slice(before), ['GET /.well-known/openid-configuration CN=reporting', 'POST /mtls/token CN=reporting']);
    } finally {
      await app.close();
    }
  });

  /** A sidecar with one route "idp" authenticating with `fields`; retries only when told (a changed file), so a test sees each attempt. */
  const sidecarWith = (fields: Record<string, unknown>) =>
    startSidecar({
      routes: [
        {
          name: 'idp',
          upstream: upstreamUrl,
          auth: { tokenUrl: idp.tokenUrl, scope: 'api', tls: { caFile: pki.caFile, ...(fields.tls as object) }, retry: { retries: 0, minDelayMs: 60_000, maxDelayMs: 60_000, maxTimeMs: 5000 }, ...fields },
        },
      ],
    });

  test('sidecar, tls_client_auth: requests carry the token the provider issued over mutual TLS', async () => {
    const reporting = pki.client('reporting');
    const sidecar = await sidecarWith({ method: 'tls_client_auth', clientId: 'mtls-reporting', tls: { caFile: pki.caFile, certFile: reporting.certFile, keyFile: reporting.keyFile } });
    try {
      assert.equal((await call(`${sidecar.proxyUrl}/x`)).status, 200);
      assert.equal(bearers.at(-1), `Bearer ${idp.issued.at(-1)}`);
    } finally {
      await sidecar.close();
    }
  });

  test('sidecar, private_key_jwt: a key file replaced by garbage while running: the current token keeps serving, the failure is logged with its reason, and the mended file is used at once', async () => {
    const key = keys.get('P-256') as SigningKey;
    const privateKeyFile = files.file('live.pem', key.pem.pkcs8);
    const sidecar = await sidecarWith({ method: 'private_key_jwt', clientId: 'jwt-P-256', privateKeyFile });
    const tokens = sidecar.sidecar.tokenSources.get('idp') as TokenSource | undefined;
    const lines = () => sidecar.logs.map((line) => JSON.parse(line) as Record<string, unknown>);
    try {
      assert.equal((await call(`${sidecar.proxyUrl}/x`)).status, 200);
      const first = bearers.at(-1);
      assert.equal(first, `Bearer ${idp.issued.at(-1)}`);

      writeFileSync(privateKeyFile, '-----BEGIN PRIVATE KEY-----\nTHIS-IS-NOT-A-KEY\n-----END PRIVATE KEY-----\n');
      await tokens?.refresh().catch(() => {});
      const failure = lines().find((line) => line.msg === 'could not get a token');
      assert.equal(failure?.code, 'BSC_TOKEN_CREDENTIALS');
      assert.equal(failure?.retryable, false, 'only a new file can help; the watcher notices one');
      assert.match(String(failure?.reason), /^cannot sign the client assertion: .*live\.pem is not a PEM private key/);
      assert.ok((failure?.keptTokenSeconds as number) > 0);
      const ready = (await call(`${sidecar.adminUrl}/readyz`)).json<{ routes: { state: string; lastError?: string }[] }>();
      assert.equal(ready.routes[0]?.state, 'ready');
      assert.match(String(ready.routes[0]?.lastError), /cannot sign the client assertion/);
      assert.equal((await call(`${sidecar.proxyUrl}/x`)).status, 200);
      assert.equal(bearers.at(-1), first, 'the current token keeps serving');

      // Mended (in another PEM format): the credential watcher retries at once, not after the 60 s backoff.
      const issued = idp.issued.length;
      writeFileSync(privateKeyFile, key.pem.sec1 as string);
      await eventually(() => idp.issued.length > issued, 10_000);
      assert.equal((await call(`${sidecar.proxyUrl}/x`)).status, 200);
      assert.equal(bearers.at(-1), `Bearer ${idp.issued.at(-1)}`);
      assert.notEqual(bearers.at(-1), first);
      assert.equal(tokens?.status().lastError, undefined);
    } finally {
      await sidecar.close();
    }
  });

  test('bearer-sidecar check (the bundled CLI) with private_key_jwt and with tls_client_auth, the latter also discovered', async () => {
    const reporting = pki.client('reporting');
    const yaml = files.file(
      'check.yaml',
      `routes:
  - name: jwt
    prefix: /jwt
    upstream: ${upstreamUrl}
    auth: { tokenUrl: ${idp.tokenUrl}, scope: api, method: private_key_jwt, clientId: jwt-ed25519, privateKeyFile: ${files.file('cli.pem', keys.get('ed25519')?.pem.pkcs8 as string)}, keyId: ed25519-1, tls: { caFile: ${pki.caFile} } }
  - name: mtls
    prefix: /mtls
    upstream: ${upstreamUrl}
    auth: { tokenUrl: ${idp.tokenUrl}, scope: api, method: tls_client_auth, clientId: mtls-reporting, tls: { caFile: ${pki.caFile}, certFile: ${reporting.certFile}, keyFile: ${reporting.keyFile} } }
  - name: discovered
    prefix: /discovered
    upstream: ${upstreamUrl}
    auth: { issuer: ${idp.issuer}, scope: api, method: tls_client_auth, clientId: mtls-reporting, tls: { caFile: ${pki.caFile}, certFile: ${reporting.certFile}, keyFile: ${reporting.keyFile} } }
`,
    );
    const issued = idp.issued.length;
    const { code, output } = await runToEnd(['check', '--config', yaml]);
    assert.equal(code, 0, output);
    assert.match(output, /^ok {6}jwt: token valid for \d+ s/m);
    assert.match(output, /^ok {6}mtls: token valid for \d+ s/m);
    assert.ok(output.includes(`from ${idp.mtlsTokenUrl} (discovered from issuer ${idp.issuer})`), output);
    assert.equal(idp.issued.length, issued + 3);
    audit.assertNothingLeaked([output]);
  });
});
