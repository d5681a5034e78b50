// docs/protocols.md's client authentication examples (blocks marked <!-- client-auth-example: NAME -->)
// load as they stand, with only their /run/secrets/... paths pointed at real files made here.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { resolveConfig } from '../../src/config/load.js';
import { makeSigningKey, makeTestPki, opensslMissing } from '../helpers/certs.js';
import { tempFiles } from '../helpers/config.js';

const doc = readFileSync(new URL('../../docs/protocols.md', import.meta.url), 'utf8');
const examples = new Map([...doc.matchAll(/<!-- client-auth-example: ([\w-]+) -->\n```yaml\n([\s\S]*?)```/g)].map((m) => [m[1] as string, m[2] as string]));
const env = { EXAMPLE_CLIENT_ID: 'client-1' };

test('the examples are there', () => {
  assert.deepEqual([...examples.keys()].sort(), ['private-key-jwt', 'tls-client-auth']);
});

test('private-key-jwt: loads with a real key file', () => {
  const key = tempFiles('bsc-doc-key-').file('client-key.pem', makeSigningKey('P-256').pem.sec1 as string);
  const block = parseYaml((examples.get('private-key-jwt') as string).replaceAll('/run/secrets/client-key.pem', key)) as { auth: Record<string, unknown> };
  const config = resolveConfig({ routes: [{ name: 'r', upstream: 'https://api.example.com', ...block }] }, { env });
  assert.equal(config.routes[0]?.auth.method, 'private_key_jwt');
  assert.equal(config.routes[0]?.auth.keyId, 'client-key-2026');
});

test('tls-client-auth: loads with a real certificate and key', { skip: opensslMissing }, () => {
  const client = makeTestPki().client('payments');
  const text = (examples.get('tls-client-auth') as string).replaceAll('/run/secrets/client/tls.crt', client.certFile).replaceAll('/run/secrets/client/tls.key', client.keyFile);
  const config = resolveConfig(parseYaml(text), { env });
  assert.equal(config.routes[0]?.auth.method, 'tls_client_auth');
  assert.equal(config.routes[0]?.tls.clientCertificate?.cert.file, client.certFile);
  assert.equal(config.routes[0]?.auth.tls.clientCertificate?.key.file, client.keyFile);
});
