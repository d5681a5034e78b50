// The package as a user gets it: `npm pack`, installed into a temporary app with fastify,
// @fastify/http-proxy and undici (the versions this repository uses, from npm's cache), and used
// there by the scripts in packed-app/, each run by Node as a child process in that app:
// - proxy.mjs: 100 cold concurrent requests through bearer-sidecar/fastify cause one grant, every
//   one reaches the upstream with the token and none with the caller's Authorization; a revoked
//   token is replayed once with a new one; createTokenSource with 50 concurrent callers, one
//   grant; bearerInterceptor with undici's fetch and Node's; and the process exits by itself;
// - bad-input.mjs: an invalid `auth` refused at register and by createTokenSource, naming fields;
// - missing-peer.mjs: without @fastify/http-proxy, the error names the package to install;
// - types.ts: the types of both entries resolve through `exports` (tsc in the app).

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { closeServer } from '../../src/demo/token-server.js';
import { issue, startScriptedTokenServer, type ScriptedRequest, type ScriptedTokenServer } from '../helpers/servers.js';

const root = join(import.meta.dirname, '..', '..');
const fixtures = join(import.meta.dirname, 'packed-app');
const run = promisify(execFile);

function installedVersion(name: string): string {
  return (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

/** The client id a token request was made for (client_secret_basic). */
function clientOf(request: ScriptedRequest): string {
  const basic = (request.headers.authorization ?? '').replace(/^Basic /, '');
  return decodeURIComponent(Buffer.from(basic, 'base64').toString().split(':')[0] ?? '');
}

interface Child {
  readonly code: number | string;
  readonly stdout: string;
  readonly stderr: string;
  /** ms from the results line to the process's exit. */
  readonly exitAfterMs: number;
}

/** Runs a script of the app with Node; kills it (and fails) when it has not exited `timeoutMs` after starting. */
function runScript(app: string, script: string, env: Record<string, string>, timeoutMs = 90_000): Promise<Child> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], { cwd: app, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let printedAt = 0;
    child.stdout.on('data', (data: Buffer) => {
      stdout += data.toString();
      if (stdout.includes('\n') && !printedAt) printedAt = Date.now();
    });
    child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} did not exit within ${timeoutMs} ms (printed: ${printedAt ? 'yes' : 'no'}); stdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal ?? -1, stdout, stderr, exitAfterMs: printedAt ? Date.now() - printedAt : -1 });
    });
  });
}

function resultsOf(child: Child): Record<string, any> {
  assert.equal(child.code, 0, `exit code; stderr:\n${child.stderr}`);
  const line = child.stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line) as Record<string, any>;
}

describe('the packed package in an app of its own', { timeout: 600_000 }, () => {
  let app: string;
  let tokens: ScriptedTokenServer;
  let upstream: Server;
  let upstreamUrl: string;
  /** What reached the upstream: path and Authorization. */
  const seen: { path: string; authorization: string }[] = [];

  before(async () => {
    const work = mkdtempSync(join(tmpdir(), 'bsc-packed-'));
    app = join(work, 'app');
    const packed = join(work, 'pack');
    mkdirSync(packed, { recursive: true });
    await run('npm', ['pack', '--silent', '--pack-destination', packed], { cwd: root, timeout: 180_000 });
    const tarball = readdirSync(packed).find((name) => name.endsWith('.tgz'));
    assert.ok(tarball, 'npm pack made a tarball');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'packed-app', private: true, type: 'module' }));
    const peers = ['fastify', '@fastify/http-proxy', 'undici'].map((name) => `${name}@${installedVersion(name)}`);
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', join(packed, tarball), ...peers], { cwd: app, timeout: 240_000 });
    for (const script of readdirSync(fixtures)) copyFileSync(join(fixtures, script), join(app, script));

    // Every token is a new signed JWT; the first plugin grant takes a while, so the 100 requests arrive cold.
    let delayed = false;
    tokens = await startScriptedTokenServer(async () => {
      if (!delayed) {
        delayed = true;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      return { status: 200, body: issue(3600, { jti: Math.random().toString(36).slice(2) }) };
    });
    // Accepts the tokens the server issued; /revoke-me revokes the token it carries, once.
    const revoked = new Set<string>();
    let revokedOne = false;
    upstream = createServer((req, res) => {
      const authorization = req.headers.authorization ?? '';
      seen.push({ path: req.url ?? '', authorization });
      const token = authorization.slice('Bearer '.length);
      if (req.url === '/revoke-me' && !revokedOne) {
        revokedOne = true;
        revoked.add(token);
      }
      req.resume();
      const ok = tokens.issued.includes(token) && !revoked.has(token);
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' }).end(JSON.stringify(ok ? { path: req.url, authorization } : { error: 'invalid_token' }));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  });

  after(async () => {
    await Promise.all([tokens?.close(), upstream && closeServer(upstream)]);
    if (app) rmSync(join(app, '..'), { recursive: true, force: true });
  });

  test('plugin, token source and interceptor in the app: one grant each, the token on every request, a revoked token replayed, and the process exits by itself', async () => {
    const child = await runScript(app, 'proxy.mjs', { TOKEN_URL: tokens.url, UPSTREAM_URL: upstreamUrl });
    const results = resultsOf(child);
    assert.ok(child.exitAfterMs < 15_000, `exited ${child.exitAfterMs} ms after printing its results`);

    const pluginGrants = tokens.requests.filter((request) => clientOf(request) === 'packed-plugin');
    const pluginTokens = tokens.issued.filter((_, i) => clientOf(tokens.requests[i] as ScriptedRequest) === 'packed-plugin');
    assert.equal(pluginGrants.length, 2, 'one grant for the 100 cold requests, one after the revocation');
    const cold = results.cold as { status: number; body: { path: string; authorization: string } }[];
    assert.equal(cold.length, 100);
    assert.deepEqual(new Set(cold.map((answer) => answer.status)), new Set([200]));
    assert.deepEqual(new Set(cold.map((answer) => answer.body.authorization)), new Set([`Bearer ${pluginTokens[0]}`]), 'the first token on every request');
    assert.deepEqual(cold.map((answer) => answer.body.path).sort(), Array.from({ length: 100 }, (_, i) => `/items/${i}`).sort(), 'the prefix is stripped');
    assert.equal(seen.filter((request) => request.authorization.includes('caller-')).length, 0, 'no caller’s Authorization reached the upstream');

    assert.equal(results.revoked.status, 200);
    assert.equal(results.revoked.body.authorization, `Bearer ${pluginTokens[1]}`, 'replayed with the new token');
    assert.deepEqual(
      seen.filter((request) => request.path === '/revoke-me').map((request) => request.authorization),
      [`Bearer ${pluginTokens[0]}`, `Bearer ${pluginTokens[1]}`],
      'sent once with the revoked token, once more with the new one',
    );

    const libraryTokens = tokens.issued.filter((_, i) => clientOf(tokens.requests[i] as ScriptedRequest) === 'packed-library');
    assert.equal(libraryTokens.length, 1, 'one grant for 50 concurrent getToken() calls');
    assert.deepEqual(results.library, { callers: 50, distinct: 1 });
    for (const via of ['undici', 'global']) {
      assert.equal(results.interceptor[via].status, 200, via);
      assert.equal(results.interceptor[via].body.authorization, `Bearer ${libraryTokens[0]}`, `${via} fetch carries the token`);
    }
  });

  test('an invalid auth: refused at register and by createTokenSource, with the field paths', async () => {
    const results = resultsOf(await runScript(app, 'bad-input.mjs', {}));
    assert.equal(results.register.name, 'ConfigError');
    assert.equal(results.register.code, 'BSC_CONFIG_INVALID');
    assert.deepEqual(results.register.problems, ['auth.tokenUrl: must be an absolute http:// or https:// URL', 'auth.clientSecret: is required (or clientSecretFile)']);
    assert.equal(results.createTokenSource.code, 'BSC_CONFIG_INVALID');
    assert.deepEqual(results.createTokenSource.problems, ['auth.retry.retries: Invalid input: expected number, received string']);
  });

  test('types: both entries type-check in the app through package.json exports', async () => {
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: ['node'], typeRoots: [join(root, 'node_modules', '@types')] },
        files: ['types.ts'],
      }),
    );
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const checked = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app, timeout: 120_000 }).then(
      () => 'ok',
      (err: { stdout?: string }) => err.stdout ?? String(err),
    );
    assert.equal(checked, 'ok');
  });

  // Last: it takes @fastify/http-proxy away from the app.
  test('without @fastify/http-proxy installed, the plugin says which package to install', async () => {
    renameSync(join(app, 'node_modules', '@fastify', 'http-proxy'), join(app, 'node_modules', '@fastify', 'http-proxy-hidden'));
    const results = resultsOf(await runScript(app, 'missing-peer.mjs', {}));
    assert.equal(results.register.code, 'BSC_DEPENDENCY_MISSING');
    assert.match(results.register.message, /npm install @fastify\/http-proxy/);
  });
});
