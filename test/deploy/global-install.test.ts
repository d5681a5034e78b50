// The package as a user gets it: `npm pack`, then `npm install -g` of the tarball into a temporary
// prefix (dependencies from npm's cache where it has them), then the installed CLI run from
// another directory: --version, and `check` with the shipped config/systemd.yaml against a
// scripted token endpoint, its secret in a stand-in for systemd's credentials directory. The CLI
// runs on the Node under test (its `#!/usr/bin/env node` finds that one first on PATH), and a
// running `serve`, started as the systemd unit starts it, has the runtime settings
// (src/runtime/settings.ts; runtime-settings.test.ts has the other launchers). This is the
// installed command `npx bearer-sidecar` and a global install run alike.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { freePort, issue, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';
import { launchPlan } from '../../src/runtime/launch.js';
import { read, root } from './files.js';

const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const temp = mkdtempSync(join(tmpdir(), 'bsc-global-'));
const prefix = join(temp, 'prefix');
const installed = join(prefix, 'lib/node_modules/bearer-sidecar');
const bin = join(prefix, 'bin/bearer-sidecar');
const elsewhere = join(temp, 'elsewhere');
const secret = 'global-install-client-secret';
let tokens: ScriptedTokenServer;

/** npm's environment without the npm_* variables of an enclosing `npm test`. */
function npmEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name)));
}

function npm(args: string[], cwd: string): SpawnSyncReturns<string> {
  const result = spawnSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, env: npmEnv(), encoding: 'utf8', timeout: 150_000 });
  assert.equal(result.status, 0, `npm ${args.join(' ')} failed (${result.error?.message ?? result.signal ?? result.status}):\n${result.stdout}\n${result.stderr}`);
  return result;
}

interface Ran {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The installed CLI, from another directory, on the Node this test runs on. Asynchronous: the token endpoint runs in this process. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  const child = spawn(bin, args, { cwd: elsewhere, env: { PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

before(async () => {
  mkdirSync(elsewhere);
  tokens = await startScriptedTokenServer((request) => {
    const expected = `Basic ${Buffer.from(`my-client-id:${secret}`).toString('base64')}`;
    return request.headers.authorization === expected ? { status: 200, body: issue(3600) } : { status: 401, body: { error: 'invalid_client' } };
  });
  const packed = npm(['pack', '--json', '--pack-destination', temp], root);
  const tarball = join(temp, (JSON.parse(packed.stdout) as { filename: string }[])[0]?.filename ?? '');
  assert.ok(existsSync(tarball), `npm pack wrote ${tarball}`);
  npm(['install', '--global', '--prefix', prefix, '--prefer-offline', tarball], temp);
}, { timeout: 330_000 }); // pack and install: ~20 s here, 150 s at most each

after(async () => {
  await tokens?.close();
  rmSync(temp, { recursive: true, force: true });
});

test('npm install -g puts the CLI on the prefix\'s bin, with the licences, configs, unit, alerting rules, dashboard and docs beside it', () => {
  assert.ok(existsSync(bin), `${bin} exists`);
  for (const file of ['LICENSE', 'THIRD_PARTY_LICENSES', 'README.md', 'config/systemd.yaml', 'deploy/systemd/bearer-sidecar.service', 'deploy/prometheus/bearer-sidecar.rules.yaml', 'deploy/grafana/bearer-sidecar.json', 'docs/deployment.md', 'docs/observability.md', 'dist/cli.js', 'dist/main.js']) {
    assert.ok(existsSync(join(installed, file)), `the package ships ${file}`);
  }
  assert.ok(!existsSync(join(installed, 'dist/.compile-cache')), 'no compile cache of the machine that packed it');
  assert.ok(!existsSync(join(installed, 'src')) && !existsSync(join(installed, 'test')), 'no sources or tests');
});

test('the installed CLI prints its version from another directory', async () => {
  const result = await cli(['--version']);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout.trim(), version);
});

test('the installed CLI checks the shipped config/systemd.yaml against a token endpoint, the secret in $CREDENTIALS_DIRECTORY', async () => {
  const credentials = join(temp, 'credentials');
  mkdirSync(credentials, { mode: 0o700 });
  const config = join(temp, 'config.yaml');
  const shipped = readFileSync(join(installed, 'config/systemd.yaml'), 'utf8');
  assert.match(shipped, /tokenUrl: https:\/\/auth\.example\.com\/oauth2\/token/);
  writeFileSync(config, shipped.replace('https://auth.example.com/oauth2/token', tokens.url));

  writeFileSync(join(credentials, 'client-secret'), `${secret}\n`, { mode: 0o600 });
  const ok = await cli(['check', '--config', config], { CREDENTIALS_DIRECTORY: credentials });
  assert.equal(ok.status, 0, `${ok.stdout}${ok.stderr}`);
  assert.match(ok.stdout, /^ok +example: token valid for 3600 s/m);

  writeFileSync(join(credentials, 'client-secret'), 'a-wrong-secret\n', { mode: 0o600 });
  const wrong = await cli(['check', '--config', config], { CREDENTIALS_DIRECTORY: credentials });
  assert.equal(wrong.status, 1, `${wrong.stdout}${wrong.stderr}`);
  assert.match(wrong.stdout, /^FAILED +example: token endpoint answered 401: invalid_client/m);

  const unset = await cli(['check', '--config', config]);
  assert.equal(unset.status, 2, 'outside systemd the config names the missing variable');
  assert.match(unset.stderr, /CREDENTIALS_DIRECTORY is not set/);

  assert.equal(tokens.requests.length, 2);
  for (const output of [ok, wrong, unset].map((r) => r.stdout + r.stderr)) {
    assert.doesNotMatch(output, new RegExp(`${secret}|a-wrong-secret`));
    for (const token of tokens.issued) assert.ok(!output.includes(token), 'no token in the output');
  }
});

test("the systemd unit's ExecStart with the installed bin: the runtime settings in the same pid (/proc/<pid>/cmdline and environ), SIGTERM exits 0", async () => {
  const unit = read('deploy/systemd/bearer-sidecar.service');
  const words = (/^ExecStart=(.+)$/m.exec(unit)?.[1] ?? '').split(/\s+/);
  assert.equal(words[0], '/usr/local/bin/bearer-sidecar', 'the unit runs the bin npm install -g links');
  const [port, adminPort] = [await freePort(), await freePort()];
  const config = join(temp, 'unit.yaml');
  writeFileSync(config, `listen: { port: ${port} }\nadmin: { port: ${adminPort} }\nroutes:\n  - name: api\n    upstream: http://127.0.0.1:9\n    auth: { tokenUrl: ${tokens.url}, clientId: my-client-id, clientSecret: ${secret} }\n`);
  const args = words.slice(1).map((word) => (word === '/etc/bearer-sidecar/config.yaml' ? config : word));
  const unitEnv = Object.fromEntries([...unit.matchAll(/^Environment=(\w+)=(\S*)$/gm)].map((m) => [m[1], m[2]]));
  const child = spawn(bin, args, { cwd: elsewhere, env: { PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, ...unitEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    for (let i = 0; i < 3000 && !output.includes('"msg":"listening"'); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.match(output, /"msg":"listening"/, output);
    // env execs node in the same process, and the sidecar re-executes node in it: the bin's pid is node's.
    const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    assert.match(cmdline[0] ?? '', /(^|\/)node$/);
    const { nodeFlags } = launchPlan('default', [], {});
    if (typeof (process as { execve?: unknown }).execve === 'function') {
      for (const flag of nodeFlags) assert.ok(cmdline.includes(flag), `${flag} on node's command line: ${cmdline.join(' ')}`);
    } else {
      // Node 20: no re-execution; one line says so (runtime-settings.test.ts).
      assert.match(output, /"msg":"running without the runtime settings --max-semi-space-size=4 /);
    }
    assert.ok(cmdline.includes(bin) && cmdline.includes(config), `the bin and its arguments: ${cmdline.join(' ')}`);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, output);
});
