import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { startTokenServer, type TokenServer } from '../../src/demo/token-server.js';
import { verifyJwt } from '../../src/demo/jwt-hs256.js';
import { closeServer } from '../../src/demo/token-server.js';
import { run, runToEnd } from '../helpers/process.js';
import { freePort, signingKey } from '../helpers/servers.js';

const secret = 'cli-test-secret-7c1d';
const dir = mkdtempSync(join(tmpdir(), 'bsc-cli-'));
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

describe('bearer-sidecar CLI', () => {
  let tokens: TokenServer;
  let upstream: EchoUpstream;
  before(async () => {
    tokens = await startTokenServer({ clients: [{ id: 'cli-client', secret }], signingKey, expiresInSeconds: 600 });
    upstream = await startEchoUpstream({ signingKey });
  });
  after(async () => {
    await Promise.all([tokens.close(), upstream.close()]);
  });

  function configFile(name: string, extra = '', routeUpstream = upstream.url, clientSecret = secret): string {
    const path = join(dir, name);
    writeFileSync(
      path,
      `listen: { port: 0 }
admin: { port: 0 }
${extra}
routes:
  - name: api
    upstream: ${routeUpstream}
    auth:
      tokenUrl: ${tokens.url}
      clientId: cli-client
      clientSecret: \${CLI_SECRET:-${clientSecret}}
      retry: { retries: 0 }
`,
    );
    return path;
  }

  test('--help documents the verbs, the options and every environment variable', async () => {
    const { code, output } = await runToEnd(['--help']);
    assert.equal(code, 0);
    for (const text of ['serve', 'check', 'token', '--config', '--route', 'BEARER_SIDECAR_CLIENT_SECRET_FILE', 'BEARER_SIDECAR_PRESET', 'megaport-staging']) {
      assert.ok(output.includes(text), `--help lacks ${text}`);
    }
  });

  test('--version prints the package version', async () => {
    const { code, output } = await runToEnd(['--version']);
    assert.deepEqual([code, output.trim()], [0, pkg.version]);
  });

  test('unknown flags and verbs exit 2 with a hint', async () => {
    assert.equal((await runToEnd(['--nope'])).code, 2);
    const { code, output } = await runToEnd(['frobnicate']);
    assert.equal(code, 2);
    assert.match(output, /unknown command "frobnicate"/);
  });

  test('a bad config exits 2 at start-up with one line per problem, and no secret', async () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, `routes:\n  - name: api\n    upstream: not-a-url\n    auth: { preset: nope, clientId: a, clientSecret: ${secret} }\n`);
    const { code, output } = await runToEnd(['--config', path]);
    assert.equal(code, 2);
    assert.match(output, /^ {2}routes\[0\]\.upstream: must be an absolute/m);
    assert.match(output, /^ {2}routes\[0\]\.auth\.preset: /m);
    assert.doesNotMatch(output, new RegExp(secret));
  });

  test('no configuration at all exits 2 and says how to give one', async () => {
    const { code, output } = await runToEnd([]);
    assert.equal(code, 2);
    assert.match(output, /no configuration/);
  });

  test('check: ok per route, exit 0; a wrong secret prints FAILED with the reason, exit 1', async () => {
    const good = await runToEnd(['check', '--config', configFile('check.yaml')]);
    assert.equal(good.code, 0, good.output);
    assert.match(good.output, /^ok +api: token valid for 600 s/m);
    const bad = await runToEnd(['check', '--config', configFile('check-bad.yaml', '', upstream.url, 'wrong-secret-99')]);
    assert.equal(bad.code, 1);
    assert.match(bad.output, /^FAILED +api: .*invalid_client/m);
    assert.doesNotMatch(bad.output, /wrong-secret-99/);
  });

  test('token prints one access token on stdout, for scripts', async () => {
    const { code, output } = await runToEnd(['token', '--config', configFile('token.yaml')]);
    assert.equal(code, 0);
    const token = output.trim();
    assert.ok(verifyJwt(token, signingKey), 'stdout is exactly a valid token');
    const missing = await runToEnd(['token', '--route', 'nope', '--config', configFile('token2.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.output, /no route named "nope" \(routes: api\)/);
  });

  test('environment variables alone configure a route', async () => {
    const { code, output } = await runToEnd(['check'], {
      BEARER_SIDECAR_TOKEN_URL: tokens.url,
      BEARER_SIDECAR_UPSTREAM: upstream.url,
      BEARER_SIDECAR_CLIENT_ID: 'cli-client',
      BEARER_SIDECAR_CLIENT_SECRET: secret,
    });
    assert.equal(code, 0, output);
    assert.match(output, /^ok +api:/m);
  });

  test('serve: SIGTERM lets the in-flight request finish, refuses new connections, exits 0; logs hold no secret or token', async () => {
    // An upstream that answers after 600 ms, to have a request in flight at SIGTERM.
    let sawRequest!: () => void;
    const requestSeen = new Promise<void>((resolve) => (sawRequest = resolve));
    const slow = createServer((req, res) => {
      sawRequest();
      setTimeout(() => res.end(JSON.stringify({ auth: req.headers.authorization?.slice(0, 7) })), 600);
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    const port = await freePort();
    const adminPort = await freePort();
    const path = join(dir, 'serve.yaml');
    writeFileSync(
      path,
      `listen: { port: ${port} }\nadmin: { port: ${adminPort} }\nlogLevel: debug\ndrainTimeoutMs: 5000\nroutes:\n  - name: api\n    upstream: http://127.0.0.1:${(slow.address() as AddressInfo).port}\n    auth: { tokenUrl: ${tokens.url}, clientId: cli-client, clientSecret: ${secret} }\n`,
    );
    const sidecar = run(['--config', path]);
    try {
      await sidecar.waitFor(/"msg":"token refreshed"/);
      const inFlight = fetch(`http://127.0.0.1:${port}/slow`, { headers: { authorization: 'Bearer caller-secret-token' } });
      await requestSeen;
      sidecar.child.kill('SIGTERM');
      await sidecar.waitFor(/shutting down/);
      await assert.rejects(fetch(`http://127.0.0.1:${port}/new`), 'a new connection after SIGTERM is refused');
      const response = await inFlight;
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { auth: 'Bearer ' });
      assert.equal(await sidecar.exited, 0);
      const output = sidecar.output();
      assert.match(output, /"msg":"stopped"/);
      assert.doesNotMatch(output, new RegExp(secret));
      assert.doesNotMatch(output, /caller-secret-token/);
      assert.doesNotMatch(output, /ey[A-Za-z0-9_-]{10,}\.ey/, 'a token appears in the output');
    } finally {
      sidecar.child.kill('SIGKILL');
      await closeServer(slow);
    }
  });

  test('serve: SIGINT (Ctrl-C) drains and exits 0 like SIGTERM', async () => {
    const path = join(dir, 'sigint.yaml');
    writeFileSync(path, readFileSync(configFile('sigint-base.yaml'), 'utf8'));
    const sidecar = run(['--config', path]);
    try {
      await sidecar.waitFor(/"msg":"token refreshed"/);
      sidecar.child.kill('SIGINT');
      assert.equal(await sidecar.exited, 0);
      assert.match(sidecar.output(), /"signal":"SIGINT","msg":"shutting down/);
      assert.match(sidecar.output(), /"msg":"stopped"/);
    } finally {
      sidecar.child.kill('SIGKILL');
    }
  });

  test('serve: a port in use fails at start-up with exit 1 and a clear line', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const path = configFile('busy.yaml').replace('busy.yaml', 'busy2.yaml');
    writeFileSync(path, readFileSync(configFile('busy.yaml'), 'utf8').replace('listen: { port: 0 }', `listen: { port: ${(busy.address() as AddressInfo).port} }`));
    try {
      const { code, output } = await runToEnd(['--config', path]);
      assert.equal(code, 1);
      assert.match(output, /EADDRINUSE/);
    } finally {
      await closeServer(busy);
    }
  });
});
