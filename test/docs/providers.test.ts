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
const expected: Record<string, { docs: string; certificate?: boolean; check(auth: AuthConfig): void }> = {
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
  auth0: {
    docs: 'https://auth0.com/',
    check(auth) {
      assert.match(auth.issuer ?? '', /^https:\/\/[^/]+\/$/, 'the trailing slash');
      assert.ok(auth.audience, 'the API identifier as audience');
    },
  },
};

describe('docs/providers.md', () => {
  test('holds exactly these recipes', () => {
    assert.deepEqual([...recipes.keys()], Object.keys(expected));
  });

  for (const [name, { docs, certificate, check }] of Object.entries(expected)) {
    test(`${name}: loads, uses discovery, says what the provider requires, and cites the provider's documentation`, { skip: certificate && opensslMissing }, () => {
      const yaml = recipes.get(name);
      assert.ok(yaml, `a recipe "${name}"`);
      const config = resolveConfig(parseYaml(yaml), { env });
      const auth = config.routes[0]?.auth as AuthConfig;
      assert.equal(auth.tokenUrl, undefined, 'the token endpoint is discovered');
      assert.ok(auth.methodSet, 'the method the provider uses by default is named');
      check(auth);
      const section = page.slice(page.indexOf(`<!-- recipe: ${name} -->`)).split(/\n## /)[0] as string;
      assert.ok(section.includes(`](${docs}`), `the ${name} recipe links ${docs}`);
    });
  }
});
