import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { describe, test } from 'node:test';
import { configFromEnv } from '../../src/config/env.js';
import { loadConfig } from '../../src/config/index.js';
import { loadConfigFile, resolveConfig } from '../../src/config/load.js';
import { problems, tempFiles } from '../helpers/config.js';

const { dir, file } = tempFiles('bsc-config-');

const minimal = (auth: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  routes: [{ name: 'r', auth: { clientId: 'id', clientSecret: 'a-very-secret-value', ...auth }, ...extra }],
});

describe('presets', () => {
  test('megaport: Basic auth, production token endpoint and API, defaults for listen/admin', () => {
    const config = resolveConfig(minimal({ preset: 'megaport' }));
    const [route] = config.routes;
    assert.ok(route);
    assert.equal(route.auth.tokenUrl, 'https://auth-m2m.megaport.com/oauth2/token');
    assert.equal(route.auth.method, 'client_secret_basic');
    assert.equal(route.upstreamOrigin, 'https://api.megaport.com');
    assert.equal(route.upstreamBasePath, '');
    assert.equal(route.prefix, '/');
    assert.deepEqual(config.listen, { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(config.admin, { host: '127.0.0.1', port: 9901 });
    assert.equal(config.logLevel, 'info');
    assert.equal(route.auth.safetyMarginSeconds, 30);
    assert.equal(route.auth.refreshAheadRatio, 0.8);
    assert.equal(route.auth.refreshAheadMinSeconds, 60);
  });

  test('megaport-staging has its own token endpoint and API', () => {
    const [route] = resolveConfig(minimal({ preset: 'megaport-staging' })).routes;
    assert.equal(route?.auth.tokenUrl, 'https://auth-m2m-staging.megaport.com/oauth2/token');
    assert.equal(route?.upstreamOrigin, 'https://api-staging.megaport.com');
  });

  test('cyxtera: client_secret_post to accounts.cyxtera.com, one-hour default lifetime', () => {
    const [route] = resolveConfig(minimal({ preset: 'cyxtera' })).routes;
    assert.equal(route?.auth.tokenUrl, 'https://accounts.cyxtera.com/connect/token');
    assert.equal(route?.auth.method, 'client_secret_post');
    assert.equal(route?.auth.defaultExpiresInSeconds, 3600);
  });

  test('every preset value can be overridden', () => {
    const [route] = resolveConfig(
      minimal({ preset: 'megaport', tokenUrl: 'https://auth.example.com/token', method: 'client_secret_post' }, { upstream: 'https://api.example.com/v3/' }),
    ).routes;
    assert.equal(route?.auth.tokenUrl, 'https://auth.example.com/token');
    assert.equal(route?.auth.method, 'client_secret_post');
    assert.equal(route?.upstreamOrigin, 'https://api.example.com');
    assert.equal(route?.upstreamBasePath, '/v3');
  });
});

describe('config file', () => {
  test('YAML with ${VAR} and ${VAR:-default}, generic settings', () => {
    const path = file(
      'ok.yaml',
      `listen: { port: 18080 }
routes:
  - name: generic
    prefix: /api/
    upstream: https://api.example.com/base
    auth:
      tokenUrl: \${TOKEN_URL:-https://auth.example.com/oauth/token}
      method: client_secret_post
      clientId: \${CLIENT_ID}
      clientSecret: \${CLIENT_SECRET}
      scope: read write
      audience: https://api.example.com
      extraParams: { resource: x, literal: "$\${NOT_A_VAR}" }
`,
    );
    const config = loadConfigFile(path, { env: { CLIENT_ID: 'abc', CLIENT_SECRET: 's3cr3t' } });
    const [route] = config.routes;
    assert.equal(config.listen.port, 18080);
    assert.equal(route?.prefix, '/api');
    assert.equal(route?.auth.tokenUrl, 'https://auth.example.com/oauth/token');
    assert.equal(route?.auth.clientId?.read(), 'abc');
    assert.equal(route?.auth.clientSecret?.read(), 's3cr3t');
    assert.equal(route?.auth.scope, 'read write');
    assert.equal(route?.auth.audience, 'https://api.example.com');
    assert.deepEqual(route?.auth.extraParams, { resource: 'x', literal: '${NOT_A_VAR}' });
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.routes) && Object.isFrozen(route));
  });

  test('JSON is valid YAML', () => {
    const path = file('ok.json', JSON.stringify(minimal({ preset: 'cyxtera' })));
    assert.equal(loadConfigFile(path).routes[0]?.auth.method, 'client_secret_post');
  });

  test('secrets from files are trimmed, re-read on every use, and never serialised', () => {
    const secretFile = file('secret', 'first-secret\n');
    const [route] = resolveConfig(minimal({ preset: 'megaport', clientSecret: undefined, clientSecretFile: secretFile })).routes;
    assert.equal(route?.auth.clientSecret?.read(), 'first-secret');
    writeFileSync(secretFile, 'rotated-secret');
    assert.equal(route?.auth.clientSecret?.read(), 'rotated-secret');
    const config = resolveConfig(minimal({ preset: 'megaport' }));
    assert.doesNotMatch(JSON.stringify(config), /a-very-secret-value/);
    assert.doesNotMatch(inspect(config, { depth: 10 }), /a-very-secret-value/);
  });

  test('unreadable file and bad YAML are reported', () => {
    assert.match(problems(() => loadConfigFile(join(dir, 'missing.yaml')))[0] ?? '', /missing\.yaml: cannot read \(ENOENT\)/);
    assert.match(problems(() => loadConfigFile(file('bad.yaml', 'routes: [')))[0] ?? '', /bad\.yaml: not valid YAML/);
  });
});

describe('bad config: one line per problem, led by the field path, never a secret', () => {
  const cases: [string, unknown, RegExp][] = [
    ['missing routes', {}, /^routes: is required$/],
    ['empty routes', { routes: [] }, /^routes: at least one route is required$/],
    ['missing token URL', minimal({}, { upstream: 'https://x.example.com' }), /^routes\[0\]\.auth\.tokenUrl: is required \(or set issuer, or a preset\)$/],
    ['missing upstream', minimal({ tokenUrl: 'https://a.example.com/t' }), /^routes\[0\]\.upstream: is required/],
    ['wrong type', minimal({ preset: 'megaport', timeoutMs: 'soon' }), /^routes\[0\]\.auth\.timeoutMs: .*expected number/],
    ['bad URL', minimal({ tokenUrl: 'not a url' }, { upstream: 'https://x.example.com' }), /^routes\[0\]\.auth\.tokenUrl: must be an absolute http:\/\/ or https:\/\/ URL$/],
    ['ftp URL', minimal({ preset: 'megaport' }, { upstream: 'ftp://x.example.com' }), /^routes\[0\]\.upstream: must be an absolute http/],
    ['unknown preset', minimal({ preset: 'megapork' }), /^routes\[0\]\.auth\.preset: .*"megaport"/],
    ['unknown field', minimal({ preset: 'megaport', clientSecert: 'x' }), /^routes\[0\]\.auth\.clientSecert: unknown field$/],
    ['bad method', minimal({ preset: 'megaport', method: 'basic' }), /^routes\[0\]\.auth\.method: /],
    ['unreadable secret file', minimal({ preset: 'megaport', clientSecret: undefined, clientSecretFile: '/nonexistent/secret' }), /^routes\[0\]\.auth\.clientSecretFile: cannot read \/nonexistent\/secret \(ENOENT\)$/],
    ['secret and secret file', minimal({ preset: 'megaport', clientSecretFile: '/x' }), /^routes\[0\]\.auth\.clientSecretFile: set clientSecret or clientSecretFile, not both$/],
    ['missing client id', { routes: [{ name: 'r', auth: { preset: 'megaport', clientSecret: 'x' } }] }, /^routes\[0\]\.auth\.clientId: is required/],
    ['http token URL off loopback', minimal({ tokenUrl: 'http://auth.example.com/token' }, { upstream: 'https://x.example.com' }), /^routes\[0\]\.auth\.tokenUrl: http:\/\/ would send the client secret in clear text/],
    ['bad port', { listen: { port: 70000 }, ...minimal({ preset: 'megaport' }) }, /^listen\.port: /],
    ['bad prefix', minimal({ preset: 'megaport' }, { prefix: 'api' }), /^routes\[0\]\.prefix: must be a path/],
    ['token URL with credentials', minimal({ tokenUrl: 'https://user:a-very-secret-value@auth.example.com/token' }, { upstream: 'https://x.example.com' }), /^routes\[0\]\.auth\.tokenUrl: must not carry credentials/],
    ['upstream with query', minimal({ preset: 'megaport' }, { upstream: 'https://x.example.com/?a=1' }), /^routes\[0\]\.upstream: must not carry a query string/],
  ];
  for (const [name, input, expected] of cases) {
    test(name, () => {
      const lines = problems(() => resolveConfig(input, { env: {} }));
      assert.ok(lines.some((line) => expected.test(line)), `no line matches ${expected}:\n${lines.join('\n')}`);
      assert.ok(lines.every((line) => !line.includes('a-very-secret-value')), 'a problem line shows the secret');
    });
  }

  test('a long invalid prefix is refused at once (no catastrophic backtracking)', () => {
    const started = Date.now();
    const lines = problems(() => resolveConfig(minimal({ preset: 'megaport' }, { prefix: `/${'a'.repeat(5000)}!` })));
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
    assert.ok(lines.some((line) => line.startsWith('routes[0].prefix: must be a path')));
    for (const ok of ['/', '/api', '/api/', '/a/b', '/a.b~c-d_e/']) resolveConfig(minimal({ preset: 'megaport' }, { prefix: ok }));
    for (const bad of ['', '//', '/a//b', 'api', '/a b']) assert.ok(problems(() => resolveConfig(minimal({ preset: 'megaport' }, { prefix: bad }))).length > 0, bad);
  });

  test('two routes with one prefix, and duplicate names, are both reported', () => {
    const route = (name: string, prefix: string) => ({ name, prefix, auth: { preset: 'megaport', clientId: 'a', clientSecret: 'b' } });
    const lines = problems(() => resolveConfig({ routes: [route('a', '/x'), route('a', '/x/')] }));
    assert.ok(lines.includes('routes[1].name: "a" is already the name of routes[0]'), lines.join('\n'));
    assert.ok(lines.includes('routes[1].prefix: "/x/" is already the prefix of routes[0]'), lines.join('\n'));
  });

  test('an unset ${VAR} names the field and the variable', () => {
    const lines = problems(() => resolveConfig(minimal({ preset: 'megaport', clientSecret: '${MEGAPORT_CLIENT_SECRET}' }), { env: {} }));
    assert.deepEqual(lines, ['routes[0].auth.clientSecret: environment variable MEGAPORT_CLIENT_SECRET is not set']);
  });

  test('several problems are all reported at once', () => {
    const lines = problems(() => resolveConfig({ logLevel: 'loud', listen: { port: -1 }, routes: [{ name: 'bad name!', auth: { timeoutMs: 0 } }] }));
    for (const field of ['logLevel', 'listen.port', 'routes[0].name', 'routes[0].auth.timeoutMs']) {
      assert.ok(lines.some((line) => line.startsWith(`${field}: `)), `${field} not reported:\n${lines.join('\n')}`);
    }
  });

  test('loopback http token URLs are allowed, and allowInsecureTokenUrl allows others', () => {
    for (const host of ['127.0.0.1:9000', 'localhost', '[::1]:9000']) {
      resolveConfig(minimal({ tokenUrl: `http://${host}/token` }, { upstream: 'http://127.0.0.1:1' }));
    }
    resolveConfig(minimal({ tokenUrl: 'http://token-server:9000/token', allowInsecureTokenUrl: true }, { upstream: 'http://echo:9100' }));
  });
});

describe('environment variables', () => {
  test('a single route from BEARER_SIDECAR_* variables', () => {
    const secretFile = file('env-secret', 'from-file\n');
    const config = loadConfig(undefined, {
      BEARER_SIDECAR_PRESET: 'megaport-staging',
      BEARER_SIDECAR_CLIENT_ID: 'id-1',
      BEARER_SIDECAR_CLIENT_SECRET_FILE: secretFile,
      BEARER_SIDECAR_PORT: '18081',
      BEARER_SIDECAR_HOST: '0.0.0.0',
      BEARER_SIDECAR_SCOPE: 'read',
      BEARER_SIDECAR_EXTRA_PARAMS: 'resource=urn:x&tenant=7',
    });
    const [route] = config.routes;
    assert.equal(route?.name, 'megaport-staging');
    assert.equal(route?.auth.tokenUrl, 'https://auth-m2m-staging.megaport.com/oauth2/token');
    assert.equal(route?.auth.clientSecret?.read(), 'from-file');
    assert.deepEqual(config.listen, { host: '0.0.0.0', port: 18081 });
    assert.equal(route?.auth.scope, 'read');
    assert.deepEqual(route?.auth.extraParams, { resource: 'urn:x', tenant: '7' });
  });

  test('problems name the variable; values are not interpolated', () => {
    const lines = problems(() => loadConfig(undefined, { BEARER_SIDECAR_TOKEN_URL: 'nope', BEARER_SIDECAR_UPSTREAM: 'https://x.example.com', BEARER_SIDECAR_CLIENT_ID: 'a', BEARER_SIDECAR_CLIENT_SECRET: '${X}', BEARER_SIDECAR_PORT: 'eighty' }));
    assert.ok(lines.some((l) => l.startsWith('BEARER_SIDECAR_TOKEN_URL (routes[0].auth.tokenUrl: ')), lines.join('\n'));
    assert.ok(lines.some((l) => l.startsWith('BEARER_SIDECAR_PORT (listen.port: ')), lines.join('\n'));
    const { raw } = configFromEnv({ BEARER_SIDECAR_CLIENT_SECRET: 'a${B}c' });
    const config = resolveConfig({ ...raw, routes: [{ ...(raw.routes as Record<string, unknown>[])[0], auth: { ...((raw.routes as { auth: Record<string, unknown> }[])[0]?.auth ?? {}), preset: 'megaport', clientId: 'x' } }] }, { env: {} });
    assert.equal(config.routes[0]?.auth.clientSecret?.read(), 'a${B}c');
  });

  test('no configuration at all is a clear error', () => {
    assert.match(problems(() => loadConfig(undefined, {}))[0] ?? '', /no configuration: pass --config FILE/);
  });
});
