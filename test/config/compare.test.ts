// Comparing configs for a reload: deep equality that sees through SecretSource (its value is
// private) and stays generic over fields added later, and the config hash, which names a config
// without revealing a secret in it.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { changedFields, configHash, sameValue } from '../../src/config/compare.js';
import { resolveConfig } from '../../src/config/load.js';
import { SecretSource } from '../../src/config/secret.js';
import { tempFiles } from '../helpers/config.js';

const base = (auth: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) =>
  resolveConfig({ routes: [{ name: 'api', upstream: 'https://api.example.test/v2', auth: { tokenUrl: 'https://idp.example.test/token', clientId: 'id', clientSecret: 'inline-secret-1', ...auth }, ...extra }] });

describe('sameValue', () => {
  test('secrets compare by source: the same file, or the same inline value', () => {
    assert.ok(sameValue(SecretSource.inline('a'), SecretSource.inline('a')));
    assert.ok(!sameValue(SecretSource.inline('a'), SecretSource.inline('b')), 'a changed inline secret is a change');
    assert.ok(sameValue(SecretSource.fromFile('/s/x'), SecretSource.fromFile('/s/x')));
    assert.ok(!sameValue(SecretSource.fromFile('/s/x'), SecretSource.fromFile('/s/y')));
    assert.ok(!sameValue(SecretSource.fromFile('/s/x'), SecretSource.inline('/s/x')));
    assert.ok(!sameValue(SecretSource.inline('a'), { file: undefined }));
  });

  test('resolved configs: equal when loaded twice; an inline secret, a scope or a nested field makes them differ', () => {
    assert.ok(sameValue(base(), base()));
    assert.ok(!sameValue(base(), base({ clientSecret: 'inline-secret-2' })));
    assert.ok(!sameValue(base().routes[0]?.auth, base({ scope: 'read' }).routes[0]?.auth));
    assert.ok(!sameValue(base(), base({ retry: { retries: 3 } })));
    assert.ok(sameValue(base().routes[0]?.auth, base({}, { upstream: 'https://other.example.test' }).routes[0]?.auth), 'auth alone is compared');
  });

  test('generic over fields it does not know: objects of any shape, arrays, URLs, Buffers', () => {
    assert.ok(sameValue({ a: [1, { b: 'x' }], c: undefined }, { a: [1, { b: 'x' }], c: undefined }));
    assert.ok(!sameValue({ a: 1 }, { a: 1, privateKeyFile: '/k' }), 'a field added on one side');
    assert.ok(!sameValue({ a: undefined }, { b: undefined }));
    assert.ok(!sameValue([1, 2], [2, 1]));
    assert.ok(!sameValue([1], { 0: 1, length: 1 }));
    assert.ok(sameValue(new URL('http://proxy.test:3128'), new URL('http://proxy.test:3128')));
    assert.ok(!sameValue(new URL('http://proxy.test:3128'), new URL('http://proxy.test:3129')));
    assert.ok(sameValue(Buffer.from('pem'), Buffer.from('pem')));
    assert.ok(!sameValue(Buffer.from('pem'), Buffer.from('PEM')));
    assert.ok(!sameValue(null, {}));
    assert.ok(sameValue(Number.NaN, Number.NaN));
  });

  test('changedFields names the top-level fields that differ', () => {
    const a = base().routes[0]!;
    const b = base({ scope: 'x' }, { upstream: 'https://other.example.test/v2', maxBodyBytes: 10 }).routes[0]!;
    assert.deepEqual(changedFields(a, b).sort(), ['auth', 'maxBodyBytes', 'upstreamOrigin']);
  });
});

describe('configHash', () => {
  test('12 hex digits, the same for the same config, another for another upstream', () => {
    assert.match(configHash(base()), /^[0-9a-f]{12}$/);
    assert.equal(configHash(base()), configHash(base()));
    assert.notEqual(configHash(base()), configHash(base({}, { upstream: 'https://other.example.test' })));
  });

  test('secrets count by their source, never their value: the value cannot be guessed from the hash', () => {
    assert.equal(configHash(base()), configHash(base({ clientSecret: 'inline-secret-2' })), 'an inline value is not hashed');
    const files = tempFiles('bsc-hash-');
    const one = files.file('one', 'secret-one');
    const two = files.file('two', 'secret-one');
    const fromOne = base({ clientSecret: undefined, clientSecretFile: one });
    assert.notEqual(configHash(fromOne), configHash(base({ clientSecret: undefined, clientSecretFile: two })), 'another file is another config');
    files.file('one', 'secret-rotated');
    assert.equal(configHash(fromOne), configHash(base({ clientSecret: undefined, clientSecretFile: one })), "the file's content is not hashed");
  });

  test('no inline secret of any kind is hashed: client id, the shared-secret value, an outbound proxy password', () => {
    const config = (id: string, shared: string, password: string) =>
      resolveConfig({
        listen: { sharedSecretHeader: { name: 'x-sidecar-key', value: shared } },
        outboundProxy: { url: `http://user:${password}@proxy.example.test:3128` },
        routes: [{ name: 'api', upstream: 'https://api.example.test', auth: { tokenUrl: 'https://idp.example.test/token', clientId: id, clientSecret: 'inline-secret-1' } }],
      });
    const hash = configHash(config('id-1', 'shared-value-000001', 'pw1'));
    assert.equal(configHash(config('id-2', 'shared-value-000001', 'pw1')), hash, 'clientId');
    assert.equal(configHash(config('id-1', 'shared-value-000002', 'pw1')), hash, 'sharedSecretHeader.value');
    assert.equal(configHash(config('id-1', 'shared-value-000001', 'pw2')), hash, 'the proxy password');
    assert.ok(!sameValue(config('id-1', 'shared-value-000001', 'pw1'), config('id-1', 'shared-value-000001', 'pw2')), 'a changed proxy password is still a change');
  });
});
