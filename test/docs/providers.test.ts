// docs/providers.md: every recipe (a YAML block marked <!-- recipe: NAME -->) is a config the sidecar
// loads once its variables are set, and says what its provider requires: the issuer's form, the
// scope or audience, and a link to the provider's own documentation.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { resolveConfig } from '../../src/config/load.js';
import type { AuthConfig } from '../../src/config/types.js';
import { makeSigningKey, opensslMissing, selfSignedCertificate } from '../helpers/certs.js';

const page = readFileSync(new URL('../../docs/providers.md', import.meta.url), 'utf8');
const recipes = new Map([...page.matchAll(/<!-- recipe: ([\w-]+) -->\n```yaml\n([\s\S]*?)```/g)].map((m) => [m[1] as string, m[2] as string]));

const secretFile = join(mkdtempSync(join(tmpdir(), 'bsc-providers-')), 'secret');
writeFileSync(secretFile, 'example-secret\n');
// An RSA key and its certificate (made with openssl), for the recipes that authenticate with a key.
const key = makeSigningKey('rsa').pem.pkcs8;
const keyFile = join(secretFile, '..', 'key.pem');
const certificateFile = join(secretFile, '..', 'cert.pem');
writeFileSync(keyFile, key);
if (!opensslMissing) writeFileSync(certificateFile, selfSignedCertificate(key));
/** Any ${VAR} a recipe reads gets a plausible value; *_FILE variables point at a readable file: a key, a certificate or a secret. */
const env = new Proxy({} as NodeJS.ProcessEnv, {
  get: (_target, name) => {
    // Not a recipe's ${VAR}: OpenTelemetry's own variables, read whatever the file (config/tracing.ts), stay unset.
    if (typeof name !== 'string' || name.startsWith('OTEL_')) return undefined;
    if (name === 'AZURE_AUTHORITY_HOST') return undefined; // the preset's default, the public cloud
    if (name.endsWith('_KEY_FILE')) return keyFile;
    if (name.endsWith('_CERT_FILE') || name.endsWith('_CERTIFICATE_FILE')) return certificateFile;
    if (name.endsWith('_FILE')) return secretFile;
    if (name.endsWith('_DOMAIN') || name.endsWith('_HOST')) return 'idp.example.com';
    if (name.endsWith('_REALM')) return 'production';
    return '00000000-0000-4000-8000-000000000000';
  },
});

/** What each recipe must say, from the provider's documentation, and where that documentation lives. */
const entra = (auth: AuthConfig) => {
  assert.match(auth.issuer ?? '', /^https:\/\/login\.microsoftonline\.com\/[0-9a-f-]{36}\/v2\.0$/);
  assert.match(auth.scope ?? '', /^api:\/\/.+\/\.default$/);
};
const okta = (auth: AuthConfig) => {
  assert.match(auth.issuer ?? '', /^https:\/\/[^/]+\/oauth2\/default$/);
  assert.ok(auth.scope, 'a custom scope');
};
const keycloak = (auth: AuthConfig) => assert.match(auth.issuer ?? '', /^https:\/\/[^/]+\/realms\/[^/]+$/);
const jwtType = 'urn:ietf:params:oauth:token-type:jwt';
const accessTokenType = 'urn:ietf:params:oauth:token-type:access_token';
/** `discovery: false`: the recipe names its token endpoint (a preset's, or a service without discovery). */
const expected: Record<string, { docs: string; certificate?: boolean; discovery?: false; check(auth: AuthConfig): void }> = {
  entra: { docs: 'https://learn.microsoft.com/', check: entra },
  'entra-certificate': {
    docs: 'https://learn.microsoft.com/',
    certificate: true,
    check(auth) {
      entra(auth);
      // Entra ID finds the key by the certificate's thumbprint (x5t#S256) and asks for PS256.
      assert.deepEqual([auth.method, auth.privateKey?.file, auth.certificate?.file, auth.signingAlgorithm], ['private_key_jwt', keyFile, certificateFile, 'PS256']);
    },
  },
  'entra-workload-identity': {
    docs: 'https://learn.microsoft.com/',
    discovery: false,
    check(auth) {
      // From the webhook's variables alone, plus the scope.
      assert.match(auth.tokenUrl ?? '', /^https:\/\/login\.microsoftonline\.com\/[0-9a-f-]{36}\/oauth2\/v2\.0\/token$/);
      assert.deepEqual([auth.method, auth.clientAssertion?.file, auth.clientSecret, auth.privateKey], ['client_assertion', secretFile, undefined, undefined]);
      assert.match(auth.scope ?? '', /\/\.default$/);
    },
  },
  okta: { docs: 'https://developer.okta.com/', check: okta },
  'okta-private-key': {
    docs: 'https://developer.okta.com/',
    check(auth) {
      okta(auth);
      assert.deepEqual([auth.method, auth.privateKey?.file], ['private_key_jwt', keyFile]);
      assert.ok(auth.keyId, 'the kid Okta picks the key by');
    },
  },
  keycloak: { docs: 'https://www.keycloak.org/', check: keycloak },
  'keycloak-signed-jwt': {
    docs: 'https://www.keycloak.org/',
    check(auth) {
      keycloak(auth);
      assert.deepEqual([auth.method, auth.privateKey?.file], ['private_key_jwt', keyFile]);
    },
  },
  'keycloak-x509': {
    docs: 'https://www.keycloak.org/',
    certificate: true,
    check(auth) {
      keycloak(auth);
      assert.equal(auth.method, 'tls_client_auth');
      assert.deepEqual([auth.tls.clientCertificate?.cert.file, auth.tls.clientCertificate?.key.file], [certificateFile, keyFile]);
    },
  },
  'keycloak-kubernetes': {
    docs: 'https://www.keycloak.org/',
    check(auth) {
      keycloak(auth);
      assert.deepEqual([auth.method, auth.clientAssertion?.file, auth.clientSecret], ['client_assertion', secretFile, undefined]);
    },
  },
  'keycloak-token-exchange': {
    docs: 'https://www.keycloak.org/',
    check(auth) {
      keycloak(auth);
      assert.equal(auth.grantType, 'token_exchange');
      assert.deepEqual([auth.tokenExchange?.subjectToken.file, auth.tokenExchange?.subjectTokenType, auth.tokenExchange?.requestedTokenType], [secretFile, jwtType, accessTokenType]);
      assert.ok(auth.audience, 'the client the token is for');
    },
  },
  auth0: {
    docs: 'https://auth0.com/',
    check: auth0,
  },
  'auth0-private-key': {
    docs: 'https://auth0.com/',
    check(auth) {
      auth0(auth);
      assert.deepEqual([auth.method, auth.privateKey?.file, auth.assertionAudience, auth.assertionIssuer], ['private_key_jwt', keyFile, 'issuer', auth.issuer]);
    },
  },
  'google-sts': {
    docs: 'https://cloud.google.com/',
    discovery: false,
    check(auth) {
      assert.equal(auth.tokenUrl, 'https://sts.googleapis.com/v1/token');
      assert.deepEqual([auth.grantType, auth.method, auth.clientId], ['token_exchange', 'none', undefined]);
      assert.deepEqual([auth.tokenExchange?.subjectTokenType, auth.tokenExchange?.requestedTokenType], [jwtType, accessTokenType]);
      assert.match(auth.audience ?? '', /^\/\/iam\.googleapis\.com\/projects\/[^/]+\/locations\/global\/workloadIdentityPools\/[^/]+\/providers\/[^/]+$/);
      assert.equal(auth.scope, 'https://www.googleapis.com/auth/cloud-platform');
    },
  },
};

function auth0(auth: AuthConfig): void {
  assert.match(auth.issuer ?? '', /^https:\/\/[^/]+\/$/, 'the trailing slash');
  assert.ok(auth.audience, 'the API identifier as audience');
}

describe('docs/providers.md', () => {
  test('holds exactly these recipes', () => {
    assert.deepEqual([...recipes.keys()], Object.keys(expected));
  });

  for (const [name, { docs, certificate, discovery, check }] of Object.entries(expected)) {
    test(`${name}: loads, ${discovery === false ? 'names its token endpoint' : 'uses discovery'}, says what the provider requires, and cites the provider's documentation`, { skip: certificate && opensslMissing }, () => {
      const yaml = recipes.get(name);
      assert.ok(yaml, `a recipe "${name}"`);
      const config = resolveConfig(parseYaml(yaml), { env });
      const auth = config.routes[0]?.auth as AuthConfig;
      if (discovery !== false) assert.equal(auth.tokenUrl, undefined, 'the token endpoint is discovered');
      assert.ok(auth.methodSet, 'the method the provider uses by default is named');
      check(auth);
      const section = page.slice(page.indexOf(`<!-- recipe: ${name} -->`)).split(/\n## /)[0] as string;
      assert.ok(section.includes(`](${docs}`), `the ${name} recipe links ${docs}`);
    });
  }
});
