// Every launcher starts the sidecar with the same runtime settings (issue 21): the program applies
// them itself (src/runtime/settings.ts, launch.ts), so each test starts it one way and reads the
// settings from the running process: /proc/PID/cmdline (node flags) and /proc/PID/environ (malloc
// variables), with the PID the launcher started, which proves the re-execution kept it; then
// SIGTERM drains and exits 0. Where this Node has no process.execve (Node 20) the process runs
// without the node flags and says so in one line. The installed bin through npm install -g and the
// systemd unit's command line: global-install.test.ts; the image's ENTRYPOINT: image tests.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { launchPlan, reexecutedVariable } from '../../src/runtime/launch.js';
import { tuningVariable, type TuningName } from '../../src/runtime/settings.js';
import { tempFiles } from '../helpers/config.js';
import { cliPath } from '../helpers/process.js';
import { freePort, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';
import { execForm, finalStage, last, parseDockerfile, read, root } from './files.js';

/** This Node re-executes (process.execve, 22.15+); the processes below run on it. */
const canReexec = typeof (process as { execve?: unknown }).execve === 'function';
const notAppliedLine = /"msg":"running without the runtime settings/;
const files = tempFiles('bsc-runtime-settings-');
let tokens: ScriptedTokenServer;
/** PATH with this Node first, as a user's shell finds `node` for `#!/usr/bin/env node`. */
const path = `${dirname(process.execPath)}:${process.env.PATH ?? ''}`;

before(async () => {
  tokens = await startScriptedTokenServer();
});
/** Every launcher started, ended at the end whatever a failed test left running. */
const launchedAll: ChildProcess[] = [];
after(async () => {
  for (const child of launchedAll) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await tokens?.close();
});

async function config(workers = 1): Promise<string> {
  const [port, adminPort] = [await freePort(), await freePort()];
  return files.file(
    `sidecar-${port}.yaml`,
    `${workers > 1 ? `workers: ${workers}\n` : ''}listen: { host: 127.0.0.1, port: ${port} }\nadmin: { port: ${adminPort} }\nroutes:\n  - name: api\n    upstream: http://127.0.0.1:9\n    auth: { tokenUrl: ${tokens.url}, clientId: c, clientSecret: runtime-settings-secret }\n`,
  );
}

interface Launched {
  readonly child: ChildProcess;
  output(): string;
  readonly exited: Promise<number | string>;
}

/** Starts a launcher and waits until the sidecar listens (`until`). */
async function launch(command: string, args: string[], { env = {}, cwd = files.dir, until = /"msg":"listening"/ }: { env?: NodeJS.ProcessEnv; cwd?: string; until?: RegExp } = {}): Promise<Launched> {
  const child = spawn(command, args, { cwd, env: { PATH: path, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  launchedAll.push(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const deadline = Date.now() + 60_000;
  while (!until.test(output)) {
    if (child.exitCode !== null || child.signalCode !== null) assert.fail(`${command} exited before listening:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      assert.fail(`${command} did not listen within 60 s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return { child, output: () => output, exited };
}

/** A running process's command line and environment, as the kernel has them. */
function proc(pid: number): { cmdline: string[]; environ: string[] } {
  const list = (file: string) => readFileSync(`/proc/${pid}/${file}`, 'utf8').split('\0').filter(Boolean);
  return { cmdline: list('cmdline'), environ: list('environ') };
}

/** The direct children of a process. */
function children(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

/** The process under `pid` (itself included) whose command line runs dist/cli.js. */
function sidecarUnder(pid: number): number {
  const all = [pid];
  for (let i = 0; i < all.length; i++) all.push(...children(all[i] as number));
  const found = all.find((p) => proc(p).cmdline.some((word) => word.endsWith('dist/cli.js')));
  assert.ok(found, `no dist/cli.js process under ${pid}`);
  return found;
}

/**
 * The process `pid` runs with the profile's settings (on a Node that re-executes), else without
 * its node flags and with the one line that says so; `reexecuted`: it had to re-execute (it was
 * started without them).
 */
function assertSettings(pid: number, output: string, { tuning = 'default', reexecuted = true, execve = canReexec }: { tuning?: TuningName; reexecuted?: boolean; execve?: boolean } = {}): void {
  const { nodeFlags, environment } = launchPlan(tuning, [], {});
  const { cmdline, environ } = proc(pid);
  assert.match(cmdline[0] ?? '', /(^|\/)node$/, `node's own process: ${cmdline.join(' ')}`);
  if (execve) {
    for (const flag of nodeFlags) assert.ok(cmdline.includes(flag), `${flag} on the command line of pid ${pid}: ${cmdline.join(' ')}`);
    for (const [name, value] of Object.entries(environment)) assert.ok(environ.includes(`${name}=${value}`), `${name}=${value} in the environment of pid ${pid}`);
    assert.equal(environ.includes(`${reexecutedVariable}=1`), reexecuted, 're-executed in place: the same pid');
    assert.doesNotMatch(output, notAppliedLine);
  } else {
    for (const flag of nodeFlags) assert.ok(!cmdline.includes(flag), `ran without ${flag}`);
    const lines = output.split('\n').filter((line) => notAppliedLine.test(line));
    assert.equal(lines.length, 1, `one line says what it runs without:\n${output}`);
    for (const flag of nodeFlags) assert.ok(lines[0]?.includes(flag), `the line names ${flag}`);
    assert.match(lines[0] ?? '', /"level":"warn".*peak RSS ~206 MiB.*Fix: start it as `([A-Z_]+=\d+ )*node --max-semi-space-size=4 \S*dist\/cli\.js`, or use Node 22\.15 or later/);
  }
}

/** SIGTERM to the sidecar's pid: it drains and exits 0 (`exited`: the launcher's own exit). */
async function stops(pid: number, launched: Launched): Promise<void> {
  process.kill(pid, 'SIGTERM');
  assert.equal(await launched.exited, 0, launched.output());
  assert.match(launched.output(), /"msg":"stopped"/);
}

/** A system tool a test needs: skipped by name on a developer machine, a failure in CI. */
function needs(t: TestContext, what: string, available: boolean): boolean {
  if (available) return true;
  if (process.env.CI === 'true') assert.fail(`${what} is missing (CI installs it: .ci/run)`);
  t.skip(`skipped: needs ${what}`);
  return false;
}

test('the bin is a plain `#!/usr/bin/env node` (BusyBox and BSD env have no -S); dist/cli.js is built executable', () => {
  assert.equal(read('src/cli.ts').split('\n', 1)[0], '#!/usr/bin/env node');
  assert.equal(read('dist/cli.js').split('\n', 1)[0], '#!/usr/bin/env node');
  accessSync(cliPath, constants.X_OK);
});

test('the Dockerfile, npm start and the systemd unit carry no settings of their own: they run node dist/cli.js or the bin', () => {
  const runtime = finalStage(parseDockerfile(read('Dockerfile')));
  assert.deepEqual(execForm(last(runtime, 'ENTRYPOINT')?.args ?? ''), ['node', 'dist/cli.js']);
  const env = runtime.instructions.filter((i) => i.keyword === 'ENV').map((i) => i.args);
  assert.ok(!env.some((e) => /MALLOC_|GLIBC_TUNABLES|NODE_OPTIONS|BEARER_SIDECAR_TUNING/.test(e)), `ENV ${env.join(', ')}`);
  const { scripts } = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  assert.equal(scripts.start, 'node dist/cli.js');
  const unit = read('deploy/systemd/bearer-sidecar.service');
  assert.match(unit, /^ExecStart=\/usr\/local\/bin\/bearer-sidecar serve /m);
  assert.doesNotMatch(unit, /^Environment=.*(MALLOC_|GLIBC_TUNABLES|NODE_OPTIONS)/m);
});

test('node dist/cli.js: the settings, in the same pid; SIGTERM exits 0', async () => {
  const launched = await launch(process.execPath, [cliPath, '--config', await config()]);
  const pid = launched.child.pid as number;
  assertSettings(pid, launched.output());
  await stops(pid, launched);
});

test('the bin run as a command (its first line, GNU env): the settings, in the same pid', async (t) => {
  const gnu = spawnSync('/usr/bin/env', ['--version'], { encoding: 'utf8' }).stdout ?? '';
  if (!needs(t, 'GNU coreutils env at /usr/bin/env', /GNU coreutils/.test(gnu))) return;
  const launched = await launch(cliPath, ['--config', await config()]);
  const pid = launched.child.pid as number;
  assertSettings(pid, launched.output());
  await stops(pid, launched);
});

test("BusyBox env (Alpine's): the bin starts and gets the settings, in the same pid", async (t) => {
  const busybox = '/usr/bin/busybox';
  const root = process.getuid?.() === 0;
  const unshare = spawnSync('unshare', ['--version']).status === 0;
  if (!needs(t, 'root, unshare and busybox (a private mount namespace binds busybox over /usr/bin/env)', root && unshare && existsSync(busybox))) return;
  const withBusyBoxEnv = (args: string[]) => ['-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /usr/bin/env && exec "$@"', busybox, ...args];
  // The namespace really has BusyBox's env, which refuses the old first line's -S.
  const refused = spawnSync('unshare', withBusyBoxEnv(['/usr/bin/env', '-S', 'true']), { encoding: 'utf8' });
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /invalid option -- '?S'?|unrecognized option/);
  const launched = await launch('unshare', withBusyBoxEnv([cliPath, '--config', await config()]));
  const pid = launched.child.pid as number;
  assertSettings(pid, launched.output());
  await stops(pid, launched);
});

test('npm start: the settings; SIGTERM to the sidecar exits 0 through npm', async () => {
  const launched = await launch('npm', ['start', '--silent', '--', '--config', await config()], { cwd: root, env: { npm_config_update_notifier: 'false' } });
  const pid = sidecarUnder(launched.child.pid as number);
  assertSettings(pid, launched.output());
  await stops(pid, launched);
});

test('workers: 2 with BEARER_SIDECAR_TUNING=lean: the primary and each worker have the profile (workers from the same definition, even where the primary could not re-execute)', async () => {
  const launched = await launch(process.execPath, [cliPath, '--config', await config(2)], { env: { [tuningVariable]: 'lean' }, until: /"msg":"workers listening"/ });
  const primary = launched.child.pid as number;
  const workers = children(primary).filter((pid) => proc(pid).environ.includes('BSC_WORKER_SLOT=1') || proc(pid).environ.includes('BSC_WORKER_SLOT=2'));
  assert.equal(workers.length, 2, `two workers under ${primary}`);
  assertSettings(primary, launched.output(), { tuning: 'lean' });
  for (const worker of workers) {
    const { environ } = proc(worker);
    assertSettings(worker, '', { tuning: 'lean', reexecuted: false, execve: true });
    assert.ok(environ.includes(`${tuningVariable}=lean`), 'the worker knows the profile (its collections)');
  }
  await stops(primary, launched);
});

test('a setting the user gave wins: node --max-semi-space-size=16, MALLOC_MMAP_THRESHOLD_=65536; nothing to re-execute for, no warning', async () => {
  const launched = await launch(process.execPath, ['--max-semi-space-size=16', cliPath, '--config', await config(), '--tuning', 'lean'], { env: { MALLOC_MMAP_THRESHOLD_: '65536' } });
  const pid = launched.child.pid as number;
  const { cmdline, environ } = proc(pid);
  assert.ok(cmdline.includes('--max-semi-space-size=16') && !cmdline.includes('--max-semi-space-size=4'), cmdline.join(' '));
  assert.ok(environ.includes('MALLOC_MMAP_THRESHOLD_=65536') && !environ.includes('MALLOC_MMAP_THRESHOLD_=32768'));
  assert.ok(!environ.includes(`${reexecutedVariable}=1`), 'not re-executed');
  assert.doesNotMatch(launched.output(), notAppliedLine);
  await stops(pid, launched);
});

test('BEARER_SIDECAR_TUNING=none: V8 and glibc as they come, no re-execution', async () => {
  const launched = await launch(process.execPath, [cliPath, '--config', await config()], { env: { [tuningVariable]: 'none' } });
  const pid = launched.child.pid as number;
  const { cmdline, environ } = proc(pid);
  assert.deepEqual(cmdline.slice(1), [cliPath, '--config', cmdline.at(-1)]);
  assert.ok(!environ.includes(`${reexecutedVariable}=1`));
  assert.doesNotMatch(launched.output(), notAppliedLine);
  await stops(pid, launched);
});

test('a Node without process.execve (Node 20; here: removed by a preload) runs anyway and says once what it lacks, its cost and the fix', async () => {
  const preload = files.file('no-execve.cjs', 'process.execve = undefined;\n');
  const launched = await launch(process.execPath, ['--require', preload, cliPath, '--config', await config()]);
  const pid = launched.child.pid as number;
  assertSettings(pid, launched.output(), { execve: false });
  await stops(pid, launched);
});
