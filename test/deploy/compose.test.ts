// docker-compose.yml and its Megaport staging override, parsed as YAML and checked against the
// config loader, the demo servers and the Dockerfile. (image-build.test.ts runs the same services in the real image.)

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/index.js';
import { composeInterpolate, environmentOf, isObject, list, obj, read, readYaml, root, str, type Yaml } from './files.js';

const compose = readYaml('docker-compose.yml');
const services = obj(compose, 'services');
const service = (name: string): Yaml => obj(services, name);
const sidecar = service('bearer-sidecar');
const sidecarEnv = environmentOf(sidecar);
const config = loadConfig(undefined, sidecarEnv);
const override = readYaml('config/compose.megaport-staging.yaml');

/** The port a `fetch('http://127.0.0.1:PORT/...')` healthcheck asks, and the whole test. */
function healthcheck(s: Yaml): { command: string[]; url: URL } {
  const command = list(s, 'healthcheck', 'test').map(String);
  assert.equal(command[0], 'CMD', 'exec form (no CMD-SHELL): the image has no curl');
  assert.equal(command[1], 'node');
  assert.equal(command[2], '-e');
  const url = /fetch\('([^']+)'/.exec(command[3] ?? '')?.[1];
  assert.ok(url, 'the healthcheck fetches a URL');
  assert.doesNotMatch(command.join(' '), /curl|wget/);
  return { command: command.slice(1), url: new URL(url) };
}

test('compose: the demo stack, the sidecar built from the Dockerfile and an app, on one image', () => {
  const always = Object.entries(services).filter(([, s]) => isObject(s) && s.profiles === undefined).map(([name]) => name);
  assert.deepEqual(always.sort(), ['app', 'bearer-sidecar', 'echo-upstream', 'token-server']);
  assert.equal(str(sidecar, 'build', 'context'), '.');
  assert.equal(str(sidecar, 'build', 'target'), 'runtime');
  assert.match(read('Dockerfile'), /^FROM \S+ AS runtime$/m, 'the build target exists');
  const image = str(sidecar, 'image');
  for (const name of ['token-server', 'echo-upstream', 'app']) {
    assert.equal(str(service(name), 'image'), image, `${name} runs the image the sidecar service builds`);
    assert.equal(str(service(name), 'pull_policy'), 'never', `${name}: never pulled (it is built locally)`);
    assert.equal(service(name).build, undefined);
  }
  for (const [name, script] of [['token-server', 'dist/demo/token-server.js'], ['echo-upstream', 'dist/demo/echo-upstream.js']] as const) {
    assert.deepEqual(list(service(name), 'entrypoint'), ['node', script]);
    assert.ok(existsSync(join(root, script)), `${script} is built (and the image ships dist/)`);
  }
});

test('compose: the sidecar is configured by environment variables alone and reaches the demo servers', () => {
  const tokenServer = environmentOf(service('token-server'));
  const echo = environmentOf(service('echo-upstream'));
  assert.equal(config.routes.length, 1);
  const route = config.routes[0];
  assert.ok(route);
  assert.ok(route.auth.tokenUrl, 'a token URL, not an issuer');
  const tokenUrl = new URL(route.auth.tokenUrl);
  assert.equal(tokenUrl.hostname, 'token-server', 'the token endpoint by its service name');
  assert.equal(tokenUrl.port, tokenServer.PORT);
  assert.equal(tokenUrl.pathname, '/oauth2/token', 'the demo token server path');
  assert.equal(new URL(route.upstreamOrigin).hostname, 'echo-upstream');
  assert.equal(new URL(route.upstreamOrigin).port, echo.PORT);
  assert.equal(route.auth.clientId?.read(), tokenServer.DEMO_CLIENT_ID);
  assert.equal(route.auth.clientSecret?.read(), tokenServer.DEMO_CLIENT_SECRET);
  assert.equal(echo.DEMO_SIGNING_KEY, tokenServer.DEMO_SIGNING_KEY, 'the upstream accepts the token server\'s tokens');
  assert.equal(tokenServer.HOST, '0.0.0.0', 'token-server listens on the compose network');
  assert.equal(echo.HOST, '0.0.0.0', 'echo-upstream listens on the compose network');
});

test('compose: the sidecar listens on 0.0.0.0 inside the network only; nothing is published on the host', () => {
  assert.equal(config.listen.host, '0.0.0.0');
  assert.equal(config.admin.host, '127.0.0.1', 'the admin listener only serves the in-container healthcheck');
  for (const [name, s] of Object.entries(services)) {
    assert.ok(isObject(s));
    assert.equal(s.ports, undefined, `${name} publishes no port`);
    assert.equal(s.network_mode, undefined, `${name} stays on the compose network`);
  }
  assert.deepEqual(list(sidecar, 'expose').map(String), [String(config.listen.port)]);
  const app = environmentOf(service('app'));
  assert.equal(app.API_BASE_URL, `http://bearer-sidecar:${config.listen.port}`, 'the app reaches the API as http://bearer-sidecar:8080');
  assert.equal(config.listen.port, 8080);
});

test('compose: on the shared network, callers must send the shared-secret header, and the app does', () => {
  const header = config.inbound.sharedSecretHeader;
  assert.equal(header?.name, 'x-sidecar-key');
  const app = environmentOf(service('app'));
  assert.equal(app.SIDECAR_KEY, sidecarEnv.BEARER_SIDECAR_SHARED_SECRET, 'the app sends the key the sidecar expects');
  assert.match(JSON.stringify(list(service('app'), 'entrypoint')), /'x-sidecar-key': process\.env\.SIDECAR_KEY/);
});

test('compose: every server has a Node healthcheck on its own port; start order by service_healthy', () => {
  const sidecarCheck = healthcheck(sidecar);
  assert.equal(Number(sidecarCheck.url.port), config.admin.port, 'the sidecar healthcheck asks the admin port');
  assert.equal(sidecarCheck.url.pathname, '/readyz', 'healthy once a token is held');
  for (const name of ['token-server', 'echo-upstream']) {
    const { url } = healthcheck(service(name));
    assert.equal(url.hostname, '127.0.0.1');
    assert.equal(url.port, environmentOf(service(name)).PORT, `${name}: the healthcheck asks its PORT`);
  }
  const dependsOn = (s: Yaml) => Object.fromEntries(Object.entries(obj(s, 'depends_on')).map(([k, v]) => [k, obj(v).condition]));
  assert.deepEqual(dependsOn(sidecar), { 'token-server': 'service_healthy', 'echo-upstream': 'service_healthy' });
  assert.deepEqual(dependsOn(service('app')), { 'bearer-sidecar': 'service_healthy' });
});

test('compose: hardened containers, and a stop grace period longer than the drain timeout', () => {
  for (const [name, s] of Object.entries(services)) {
    assert.ok(isObject(s));
    assert.equal(s.read_only, true, `${name}: read-only root filesystem`);
    assert.deepEqual(s.cap_drop, ['ALL'], `${name}: no capabilities`);
    assert.deepEqual(s.security_opt, ['no-new-privileges:true'], `${name}: no privilege escalation`);
    assert.equal(s.privileged, undefined);
    if (name === 'token-cache') assert.match(String(s.user), /^[1-9]\d*:[1-9]\d*$/, `${name}: a non-root user`);
    else assert.equal(s.user, undefined, `${name}: runs as the image's non-root user`);
  }
  const grace = /^(\d+)s$/.exec(str(sidecar, 'stop_grace_period'));
  assert.ok(grace);
  assert.ok(Number(grace[1]) * 1000 > config.drainTimeoutMs, 'docker waits longer than the sidecar drains');
});

test('compose: the Megaport staging override takes its credentials from .env and uses the preset', () => {
  const envExample = Object.fromEntries(
    read('.env.example')
      .split('\n')
      .filter((line) => /^\w+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
  const overrideEnv = environmentOf(obj(override, 'services', 'bearer-sidecar'));
  // Compose merges environment maps key by key; the override's values are interpolated from .env.
  const merged = { ...sidecarEnv, ...Object.fromEntries(Object.entries(overrideEnv).map(([k, v]) => [k, composeInterpolate(v, envExample)])) };
  assert.throws(() => composeInterpolate(overrideEnv.BEARER_SIDECAR_CLIENT_ID ?? '', {}), /MEGAPORT_STAGING_CLIENT_ID/, 'a missing .env is named');
  const staging = loadConfig(undefined, merged);
  const route = staging.routes[0];
  assert.ok(route);
  assert.equal(route.auth.preset, 'megaport-staging');
  assert.equal(route.auth.tokenUrl, 'https://auth-m2m-staging.megaport.com/oauth2/token');
  assert.equal(route.upstreamOrigin, 'https://api-staging.megaport.com');
  assert.equal(route.auth.clientId?.read(), envExample.MEGAPORT_STAGING_CLIENT_ID);
  assert.equal(route.auth.clientSecret?.read(), envExample.MEGAPORT_STAGING_CLIENT_SECRET);
  assert.equal(staging.listen.host, '0.0.0.0');
  assert.deepEqual(Object.keys(obj(override, 'services')).sort(), ['app', 'bearer-sidecar'], 'the override only adjusts existing services');
  // The override is named in docker-compose.yml's header, the way users find it.
  assert.match(read('docker-compose.yml'), /-f docker-compose\.yml -f config\/compose\.megaport-staging\.yaml/);
  assert.match(read('.gitignore'), /^\.env$/m, '.env is ignored by git');
});

test('compose: the shared-cache profile runs replicas sharing a password-protected Valkey, with the encryption key from a secret', () => {
  const cache = service('token-cache');
  const replica = service('bearer-sidecar-replica');
  assert.deepEqual(list(cache, 'profiles'), ['shared-cache']);
  assert.deepEqual(list(replica, 'profiles'), ['shared-cache']);
  assert.ok(Number(obj(replica, 'deploy').replicas) > 1);
  const password = composeInterpolate(environmentOf(cache).TOKEN_CACHE_PASSWORD ?? '', {});
  assert.match(JSON.stringify(list(cache, 'command')), /--requirepass \\"\$\$TOKEN_CACHE_PASSWORD\\"/);
  const secret = str(compose, 'secrets', 'token-cache-key', 'file');
  const env = Object.fromEntries(Object.entries(environmentOf(replica)).map(([k, v]) => [k, composeInterpolate(v, {})]));
  const keyFile = env.BEARER_SIDECAR_TOKEN_CACHE_KEY_FILE ?? '';
  assert.equal(keyFile, '/run/secrets/token-cache-key');
  assert.deepEqual(list(replica, 'secrets'), ['token-cache-key']);
  const cached = loadConfig(undefined, { ...env, BEARER_SIDECAR_TOKEN_CACHE_KEY_FILE: join(root, secret) });
  assert.ok(cached.tokenCache);
  const url = new URL(cached.tokenCache.url.read());
  assert.equal(url.hostname, 'token-cache');
  assert.equal(decodeURIComponent(url.password), password);
  assert.deepEqual({ ...cached.routes[0], tokenCache: true }, { ...config.routes[0], tokenCache: true }, 'the same route as the bearer-sidecar service');
  const dependsOn = Object.fromEntries(Object.entries(obj(replica, 'depends_on')).map(([k, v]) => [k, obj(v).condition]));
  assert.deepEqual(dependsOn, { 'token-server': 'service_healthy', 'echo-upstream': 'service_healthy', 'token-cache': 'service_healthy' });
});
