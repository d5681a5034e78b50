// Client authentication settings that cannot work are refused at start-up, each naming its field
// (auth.method, privateKeyFile, signingAlgorithm, tls.certFile/keyFile/keyPassphraseFile) and what
// is wrong, never a byte of a key; the CLI exits 2. Settings that can work resolve to what the
// token request and the TLS connections read.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { loadConfig } from '../../src/config/index.js';
import { resolveConfig } from '../../src/config/load.js';
import { makeSigningKey, makeTestPki, opensslMissing, selfSignedCertificate, type SigningKeyKind } from '../helpers/certs.js';
import { problems, tempFiles } from '../helpers/config.js';
import { runToEnd } from '../helpers/process.js';

const files = tempFiles('bsc-client-auth-config-');
const rsa = makeSigningKey('rsa');
const p256 = makeSigningKey('P-256');
const rsaFile = files.file('rsa.pem', rsa.pem.pkcs1 as string);
const p256File = files.file('p256.pem', p256.pem.sec1 as string);
const garbage = 'not-a-key-but-a-secret-looking-line-ABCDEF0123456789';
const garbageFile = files.file('garbage.pem', `-----BEGIN PRIVATE KEY-----\n${garbage}\n-----END PRIVATE KEY-----\n`);

const route = (auth: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  routes: [{ name: 'r', upstream: 'https://api.example.com', auth: { tokenUrl: 'https://idp.example.com/token', clientId: 'client-1', ...auth }, ...extra }],
});
const jwt = (auth: Record<string, unknown> = {}) => route({ method: 'private_key_jwt', privateKeyFile: rsaFile, ...auth });

/** The key's base64 lines appear in no problem. */
function assertNoKeyIn(lines: readonly string[], pems: readonly string[]): void {
  const text = lines.join('\n');
  for (const pem of pems) for (const line of pem.split('\n')) if (line.length >= 16 && !line.startsWith('-----')) assert.ok(!text.includes(line), 'a line of the key appears in a problem');
}

describe('private_key_jwt settings', () => {
  test('resolves: the key file read at every request, no secret, kid and algorithm as given; the key never serialises', () => {
    const [r] = resolveConfig(jwt({ keyId: 'k-2026', signingAlgorithm: 'PS384' })).routes;
    assert.equal(r?.auth.method, 'private_key_jwt');
    assert.equal(r?.auth.clientSecret, undefined);
    assert.equal(r?.auth.privateKey?.file, rsaFile);
    assert.equal(r?.auth.keyId, 'k-2026');
    assert.equal(r?.auth.signingAlgorithm, 'PS384');
    assertNoKeyIn([JSON.stringify(r)], [rsa.pem.pkcs1 as string]);
  });

  const refused: [string, Record<string, unknown>, RegExp][] = [
    ['no privateKeyFile', route({ method: 'private_key_jwt' }), /^routes\[0\]\.auth\.privateKeyFile: is required with method: private_key_jwt/],
    ['a client secret as well', jwt({ clientSecret: 's3cr3t-value' }), /^routes\[0\]\.auth\.clientSecret: is not used with method: private_key_jwt; remove it$/],
    ['a client secret file as well', jwt({ clientSecretFile: '/run/secret' }), /^routes\[0\]\.auth\.clientSecretFile: is not used with method: private_key_jwt; remove it$/],
    ['keyId with a secret method', route({ clientSecret: 's', keyId: 'k' }), /^routes\[0\]\.auth\.keyId: applies only with method: private_key_jwt$/],
    ['privateKeyFile with a secret method', route({ method: 'client_secret_post', clientSecret: 's', privateKeyFile: rsaFile }), /^routes\[0\]\.auth\.privateKeyFile: applies only with method: private_key_jwt$/],
    ['a missing key file', jwt({ privateKeyFile: '/nonexistent/key.pem' }), /^routes\[0\]\.auth\.privateKeyFile: cannot read \/nonexistent\/key\.pem \(ENOENT\)$/],
    ['a key file that is no key', jwt({ privateKeyFile: garbageFile }), /^routes\[0\]\.auth\.privateKeyFile: .*garbage\.pem is not a PEM private key \(expected PKCS#8, PKCS#1 RSA or SEC1 EC\)$/],
    ['a public key', jwt({ privateKeyFile: files.file('public.pem', generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string) }), /privateKeyFile: .*public\.pem is not a PEM private key/],
    ['an encrypted key', jwt({ privateKeyFile: files.file('encrypted.pem', rsa.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }) as string) }), /privateKeyFile: .*encrypted\.pem is encrypted \(passphrase-protected\); private_key_jwt takes an unencrypted key/],
    ['an algorithm of another family', jwt({ signingAlgorithm: 'ES256' }), /^routes\[0\]\.auth\.signingAlgorithm: ES256 does not fit the RSA key; use RS256, RS384, RS512, PS256, PS384 or PS512 \(or leave signingAlgorithm out\)$/],
    ['an algorithm of another curve', jwt({ privateKeyFile: p256File, signingAlgorithm: 'ES384' }), /^routes\[0\]\.auth\.signingAlgorithm: ES384 does not fit the P-256 EC key; use ES256/],
    ['EdDSA with an EC key', jwt({ privateKeyFile: p256File, signingAlgorithm: 'EdDSA' }), /signingAlgorithm: EdDSA does not fit the P-256 EC key; use ES256/],
    ['an algorithm no client assertion uses', jwt({ signingAlgorithm: 'HS256' }), /^routes\[0\]\.auth\.signingAlgorithm: /],
    ['certificateFile with a secret method', route({ clientSecret: 's', certificateFile: '/x.pem' }), /^routes\[0\]\.auth\.certificateFile: applies only with method: private_key_jwt$/],
    ['a certificateFile that is no certificate', jwt({ certificateFile: garbageFile }), /^routes\[0\]\.auth\.certificateFile: .*garbage\.pem is not a PEM certificate$/],
    ['an unknown method', route({ method: 'client_secret_jwt', clientSecret: 's' }), /^routes\[0\]\.auth\.method: /],
  ];
  for (const [name, config, expected] of refused) {
    test(`refused: ${name}`, () => {
      const lines = problems(() => resolveConfig(config));
      assert.ok(lines.some((line) => expected.test(line)), lines.join('\n'));
      assert.ok(!lines.join('\n').includes(garbage));
      assertNoKeyIn(lines, [rsa.pem.pkcs1 as string, p256.pem.sec1 as string]);
    });
  }

  test('refused: a certificateFile that is not the key\'s certificate', { skip: opensslMissing }, () => {
    const lines = problems(() => resolveConfig(jwt({ certificateFile: files.file('p256-cert.pem', selfSignedCertificate(p256.pem.pkcs8)) })));
    assert.deepEqual(lines.map((line) => line.replace(/\/\S+\//g, '')), ['routes[0].auth.certificateFile: p256-cert.pem is not the certificate of the key in privateKeyFile']);
  });

  test('resolves: a certificateFile that is the key\'s certificate', { skip: opensslMissing }, () => {
    const certificateFile = files.file('rsa-cert.pem', selfSignedCertificate(rsa.pem.pkcs8));
    assert.equal(resolveConfig(jwt({ certificateFile })).routes[0]?.auth.certificate?.file, certificateFile);
  });

  const unfit: [SigningKeyKind, RegExp][] = [
    ['rsa-1024', /holds an RSA key of 1024 bits; RSA signing keys must have at least 2048$/],
    ['secp256k1', /holds an EC key on curve secp256k1; use an RSA key/],
    ['ed448', /holds a key of type ed448; use an RSA key/],
  ];
  for (const [kind, expected] of unfit) {
    test(`refused: a ${kind} key, which no accepted algorithm signs with`, () => {
      const key = makeSigningKey(kind);
      const lines = problems(() => resolveConfig(jwt({ privateKeyFile: files.file(`${kind}.pem`, key.pem.pkcs8) })));
      assert.equal(lines.length, 1, lines.join('\n'));
      assert.match(lines[0] as string, /^routes\[0\]\.auth\.privateKeyFile: /);
      assert.match(lines[0] as string, expected);
      assertNoKeyIn(lines, [key.pem.pkcs8]);
    });
  }

  test('from the environment: BEARER_SIDECAR_PRIVATE_KEY_FILE, _KEY_ID, _SIGNING_ALGORITHM; problems name the variable', () => {
    const env = { BEARER_SIDECAR_UPSTREAM: 'https://api.example.com', BEARER_SIDECAR_TOKEN_URL: 'https://idp.example.com/token', BEARER_SIDECAR_CLIENT_ID: 'c', BEARER_SIDECAR_AUTH_METHOD: 'private_key_jwt' };
    const config = loadConfig(undefined, { ...env, BEARER_SIDECAR_PRIVATE_KEY_FILE: p256File, BEARER_SIDECAR_KEY_ID: 'k1', BEARER_SIDECAR_SIGNING_ALGORITHM: 'ES256' });
    assert.deepEqual([config.routes[0]?.auth.privateKey?.file, config.routes[0]?.auth.keyId, config.routes[0]?.auth.signingAlgorithm], [p256File, 'k1', 'ES256']);
    const lines = problems(() => loadConfig(undefined, { ...env, BEARER_SIDECAR_PRIVATE_KEY_FILE: garbageFile }));
    assert.match(lines[0] as string, /^BEARER_SIDECAR_PRIVATE_KEY_FILE \(routes\[0\]\.auth\.privateKeyFile: .* is not a PEM private key/);
  });
});

describe('client certificate settings (tls_client_auth, routes[].tls)', { skip: opensslMissing }, () => {
  const pki = opensslMissing ? undefined : makeTestPki();
  const client = pki?.client('reporting');
  const other = pki?.client('other');
  const locked = pki?.client('locked', { passphrase: 'pass phrase 123' });
  const mtls = (tls: Record<string, unknown>, auth: Record<string, unknown> = {}) => route({ method: 'tls_client_auth', tls, ...auth });
  const pair = () => ({ certFile: client?.certFile, keyFile: client?.keyFile });

  test('resolves: no secret; the files of auth.tls and routes[].tls, read again when they change', () => {
    const [r] = resolveConfig(route({ method: 'tls_client_auth', tls: pair() }, { tls: { certFile: locked?.certFile, keyFile: locked?.keyFile, keyPassphraseFile: locked?.passphraseFile } })).routes;
    assert.equal(r?.auth.method, 'tls_client_auth');
    assert.equal(r?.auth.clientSecret, undefined);
    assert.equal(r?.auth.tls.clientCertificate?.cert.file, client?.certFile);
    assert.equal(r?.auth.tls.clientCertificate?.keyPassphrase, undefined);
    assert.equal(r?.tls.clientCertificate?.keyPassphrase?.file, locked?.passphraseFile);
    assertNoKeyIn([JSON.stringify(r)], [client?.key.toString() as string, locked?.key.toString() as string]);
  });

  const refused: [string, () => Record<string, unknown>, RegExp][] = [
    ['tls_client_auth without a certificate', () => route({ method: 'tls_client_auth' }), /^routes\[0\]\.auth\.tls\.certFile: is required with method: tls_client_auth/],
    ['tls_client_auth with a secret', () => mtls(pair(), { clientSecret: 'abc' }), /^routes\[0\]\.auth\.clientSecret: is not used with method: tls_client_auth; remove it$/],
    ['tls_client_auth over http://', () => mtls(pair(), { tokenUrl: 'http://127.0.0.1:9/token' }), /^routes\[0\]\.auth\.tokenUrl: tls_client_auth needs https:\/\//],
    ['certFile without keyFile', () => route({ clientSecret: 's' }, { tls: { certFile: client?.certFile } }), /^routes\[0\]\.tls\.keyFile: is required with certFile/],
    ['keyFile without certFile', () => mtls({ keyFile: client?.keyFile }), /^routes\[0\]\.auth\.tls\.certFile: is required with keyFile/],
    ['keyPassphraseFile without keyFile', () => route({ clientSecret: 's' }, { tls: { keyPassphraseFile: '/x' } }), /^routes\[0\]\.tls\.keyPassphraseFile: applies only with keyFile$/],
    ['a certificate file that is no certificate', () => mtls({ certFile: garbageFile, keyFile: client?.keyFile }), /^routes\[0\]\.auth\.tls\.certFile: .*garbage\.pem is not a PEM certificate$/],
    ['a missing certificate file', () => mtls({ certFile: '/nonexistent/c.pem', keyFile: client?.keyFile }), /^routes\[0\]\.auth\.tls\.certFile: cannot read \/nonexistent\/c\.pem \(ENOENT\)$/],
    ['a key file that is no key', () => route({ clientSecret: 's' }, { tls: { certFile: client?.certFile, keyFile: garbageFile } }), /^routes\[0\]\.tls\.keyFile: .*garbage\.pem is not a PEM private key/],
    ['the key of another certificate', () => mtls({ certFile: client?.certFile, keyFile: other?.keyFile }), /^routes\[0\]\.auth\.tls\.keyFile: .*client-other\.key is not the key of the certificate in .*client-reporting\.pem$/],
    ['an encrypted key without its passphrase', () => mtls({ certFile: locked?.certFile, keyFile: locked?.keyFile }), /^routes\[0\]\.auth\.tls\.keyFile: .*client-locked\.key is encrypted \(passphrase-protected\); set keyPassphraseFile/],
    ['a wrong passphrase', () => mtls({ certFile: locked?.certFile, keyFile: locked?.keyFile, keyPassphraseFile: files.file('wrong.pass', 'not it\n') }), /^routes\[0\]\.auth\.tls\.keyPassphraseFile: the passphrase in .*wrong\.pass does not decrypt .*client-locked\.key$/],
  ];
  for (const [name, config, expected] of refused) {
    test(`refused: ${name}`, () => {
      const lines = problems(() => resolveConfig(config()));
      assert.ok(lines.some((line) => expected.test(line)), lines.join('\n'));
      assert.ok(!lines.join('\n').includes(garbage));
      assertNoKeyIn(lines, [client?.key.toString() as string, other?.key.toString() as string, locked?.key.toString() as string]);
    });
  }

  test('from the environment: the upstream\'s and the token endpoint\'s certificate files', () => {
    const config = loadConfig(undefined, {
      BEARER_SIDECAR_UPSTREAM: 'https://api.example.com',
      BEARER_SIDECAR_TOKEN_URL: 'https://idp.example.com/token',
      BEARER_SIDECAR_CLIENT_ID: 'c',
      BEARER_SIDECAR_AUTH_METHOD: 'tls_client_auth',
      BEARER_SIDECAR_TOKEN_CERT_FILE: client?.certFile,
      BEARER_SIDECAR_TOKEN_KEY_FILE: client?.keyFile,
      BEARER_SIDECAR_CERT_FILE: locked?.certFile,
      BEARER_SIDECAR_KEY_FILE: locked?.keyFile,
      BEARER_SIDECAR_KEY_PASSPHRASE_FILE: locked?.passphraseFile,
    });
    assert.equal(config.routes[0]?.auth.tls.clientCertificate?.key.file, client?.keyFile);
    assert.equal(config.routes[0]?.tls.clientCertificate?.keyPassphrase?.file, locked?.passphraseFile);
  });
});

test('the CLI refuses such a config with exit 2, naming the field and not the key', async () => {
  const config = files.file('sidecar.yaml', `routes:\n  - name: r\n    upstream: https://api.example.com\n    auth: { tokenUrl: https://idp.example.com/token, clientId: c, method: private_key_jwt, privateKeyFile: ${garbageFile} }\n`);
  const { code, output } = await runToEnd(['check', '--config', config]);
  assert.equal(code, 2, output);
  assert.match(output, /routes\[0\]\.auth\.privateKeyFile: .*garbage\.pem is not a PEM private key/);
  assert.ok(!output.includes(garbage));
});
