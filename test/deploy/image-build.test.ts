// The image, really built (issue 21 §3): ../shared/tools/image builds the unchanged Dockerfile with
// podman (a stand-in of the official node base made from Debian trixie, the exact Node release from
// the npm registry) and runs commands inside the image's filesystem as its user, with its
// environment and working directory, on the host's network. Inside it: the demo round trip (the
// compose file's token endpoint, echo upstream and sidecar, the sidecar by its ENTRYPOINT + CMD),
// the HEALTHCHECK of the image's config and the compose healthchecks, `--version`, `check --config`,
// idle RSS, the runtime settings of the ENTRYPOINT process (read from /proc), SIGTERM; and that the
// user is numeric and not root, npm is gone, and the code is not writable by that user.
//
// Built once per tree (image-tool.ts: a tag keyed by the build context's content, a lock):
// scripts/run-tests.mjs builds it before the first runtime's tests, the second runtime reuses it.
//
// Needs root, podman, buildah, debootstrap (`.ci/run` installs them). In CI (CI=true) anything
// missing is a failure; elsewhere the test says by name what it skips.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { environmentOf, execForm, finalStage, freePort, last, list, obj, parseDockerfile, read, readYaml, type Yaml } from './files.js';
import { isTuningName, tuning, tuningVariable } from '../../src/runtime/settings.js';
import { ensureImage, imageTool, missingForImage } from './image-tool.js';

const tool = imageTool;
const packageJson = JSON.parse(read('package.json')) as { version: string; dependencies: Record<string, string> };
const services = obj(readYaml('docker-compose.yml'), 'services');
const service = (name: string): Yaml => obj(services, name);

interface Result {
  readonly code: number | string;
  readonly stdout: string;
  readonly stderr: string;
}
interface Proc {
  readonly child: ChildProcess;
  output(): string;
  readonly exited: Promise<number | string>;
}

const children: ChildProcess[] = [];
function spawnProc(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Proc & { stdout(): string; stderr(): string } {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { child, exited, output: () => stdout + stderr, stdout: () => stdout, stderr: () => stderr };
}

/** Runs a command to its end, SIGKILL after timeoutMs. */
async function runToEnd(command: string, args: readonly string[], timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<Result> {
  const proc = spawnProc(command, args, env);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  const code = await proc.exited;
  clearTimeout(timer);
  return { code, stdout: proc.stdout(), stderr: proc.stderr() };
}

const runArgs = (tag: string, env: Record<string, string>, argv: readonly string[]) => ['run', tag, ...Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]), ...(argv.length ? ['--', ...argv] : [])];
/** `image run TAG --env ... -- ARGV` (no ARGV: the image's ENTRYPOINT + CMD), to its end. */
const inImage = (tag: string, argv: readonly string[], env: Record<string, string> = {}, timeoutMs = 30_000) => runToEnd(tool, runArgs(tag, env, argv), timeoutMs);
/** The same, left running. */
const startInImage = (tag: string, argv: readonly string[], env: Record<string, string> = {}) => spawnProc(tool, runArgs(tag, env, argv));

async function until(what: string, check: () => boolean | Promise<boolean>, proc?: Proc, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (proc && proc.child.exitCode !== null) assert.fail(`process exited (${proc.child.exitCode}) before ${what}:\n${proc.output()}`);
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}${proc ? `; output:\n${proc.output()}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A compose healthcheck (["CMD", ...]) with its port moved to where this test runs the server. */
function composeCheck(name: string, fromPort: string, toPort: number): string[] {
  const [kind, ...command] = list(service(name), 'healthcheck', 'test').map(String);
  assert.equal(kind, 'CMD');
  const moved = command.map((arg) => arg.replaceAll(`:${fromPort}/`, `:${toPort}/`));
  assert.notDeepEqual(moved, command, `${name}: the healthcheck names port ${fromPort}`);
  return moved;
}

/** /proc/PID/{cmdline,environ} as lists (NUL-separated). */
const procList = (pid: number, file: 'cmdline' | 'environ') => readFileSync(`/proc/${pid}/${file}`, 'utf8').split('\0').filter(Boolean);
const rssMiB = (pid: number) => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;

interface ImageConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  Healthcheck?: { Test?: string[] };
}

const why = missingForImage();
if (why && process.env.CI === 'true') {
  test('image (real build): CI must build and run the image', () => assert.fail(`the real image build cannot run here: ${why}; .ci/run installs podman, buildah and debootstrap`));
} else if (why) {
  test(`image (real build): skipped, ${why}`, { skip: `image (real build): ${why}` }, () => {});
} else {
  let tag: string;
  let config: ImageConfig;
  let sidecar: Proc;
  let readyAt: number;
  let containerEnv: Record<string, string>;
  let proxyPort: number;
  let adminPort: number;

  before(
    async () => {
      const build = await ensureImage();
      assert.equal(build.code, 0, `image build failed:\n${build.output.slice(-6000)}`);
      tag = build.tag;
      if (build.built) process.stdout.write(`# image-build.test: built ${tag} in ${Math.round(build.seconds)} s\n`);
      // The image's config, and its HEALTHCHECK (podman shows it beside the config, not in it).
      const inspect = await runToEnd('podman', ['image', 'inspect', tag], 30_000);
      assert.equal(inspect.code, 0, inspect.stderr);
      const [image] = JSON.parse(inspect.stdout) as { Config: ImageConfig; Healthcheck?: ImageConfig['Healthcheck'] }[];
      config = { ...image?.Config, Healthcheck: image?.Config.Healthcheck ?? image?.Healthcheck };

      // The demo stack of docker-compose.yml on free loopback ports (host network): the token
      // endpoint and the echo upstream by the compose entrypoints, each healthy by its compose check.
      const servers: Record<string, { port: number; composePort: string }> = {};
      for (const name of ['token-server', 'echo-upstream']) {
        const env = environmentOf(service(name));
        const port = await freePort();
        servers[name] = { port, composePort: env.PORT ?? '' };
        const proc = startInImage(tag, list(service(name), 'entrypoint').map(String), { ...env, HOST: '127.0.0.1', PORT: String(port) });
        // Up once it answers (each `image run` costs a second or more: poll from here, then run its compose healthcheck once).
        await until(`${name} answering`, async () => (await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined)) !== undefined, proc);
        const check = await inImage(tag, composeCheck(name, env.PORT ?? '', port));
        assert.equal(check.code, 0, `${name}: its compose healthcheck fails: ${check.stdout}${check.stderr}`);
      }
      // The sidecar: the image's own ENTRYPOINT + CMD, the compose service's environment with the
      // service names and ports moved to where the servers run.
      proxyPort = await freePort();
      adminPort = await freePort();
      const moved = Object.fromEntries(
        Object.entries(environmentOf(service('bearer-sidecar'))).map(([k, v]) => [
          k,
          Object.entries(servers).reduce((value, [name, s]) => value.replaceAll(`//${name}:${s.composePort}`, `//127.0.0.1:${s.port}`), v),
        ]),
      );
      containerEnv = { ...moved, BEARER_SIDECAR_HOST: '127.0.0.1', BEARER_SIDECAR_PORT: String(proxyPort), BEARER_SIDECAR_ADMIN_PORT: String(adminPort) };
      sidecar = startInImage(tag, [], containerEnv);
      await until('/readyz 200', async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`).catch(() => undefined))?.status === 200, sidecar);
      readyAt = Date.now();
    },
    { timeout: 20 * 60_000 }, // the first build of a machine: debootstrap, Node from the registry, npm ci, on a loaded machine
  );

  after(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  test('image (real build): the config runs a numeric non-root user, the ENTRYPOINT and CMD of the Dockerfile, and keeps the HEALTHCHECK', () => {
    const runtime = finalStage(parseDockerfile(read('Dockerfile')));
    const user = /^(\d+)(?::(\d+))?$/.exec(config.User ?? '');
    assert.ok(user, `User "${config.User}" is numeric (Kubernetes runAsNonRoot can verify it)`);
    assert.notEqual(Number(user[1]), 0);
    assert.deepEqual(config.Entrypoint, execForm(last(runtime, 'ENTRYPOINT')?.args ?? ''));
    assert.deepEqual(config.Cmd, execForm(last(runtime, 'CMD')?.args ?? ''));
    assert.equal(config.WorkingDir, '/app');
    assert.equal(config.Healthcheck?.Test?.[0], 'CMD', JSON.stringify(config.Healthcheck));
  });

  test('image (real build): inside, the user is not root, npm is gone, and nothing under /app is writable by that user', async () => {
    // One run, three answers: the user id; any package manager left; what under /app the user
    // could write. The image's filesystem is mounted read-only here, so a write would fail
    // whatever the permissions: the files' owners and modes are what keeps a container's process
    // from its code (a symbolic link's own mode means nothing; its owner is checked).
    const script = [
      'echo "uid=$(id -u)"',
      'for t in npm npx corepack yarn; do command -v $t | sed "s/^/manager=/"; done',
      'ls -d /usr/local/lib/node_modules 2>/dev/null | sed "s/^/manager=/"',
      'find /app "(" ! -user 0 -o ! -type l -perm /022 ")" -print | sed "s/^/writable=/"',
    ].join('; ');
    const r = await inImage(tag, ['sh', '-c', script]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.deepEqual(lines.filter((l) => l.startsWith('uid=')), [`uid=${config.User?.split(':')[0]}`]);
    assert.deepEqual(lines.filter((l) => l.startsWith('manager=')), [], 'no package manager left in the image');
    assert.deepEqual(lines.filter((l) => l.startsWith('writable=')).slice(0, 20), [], 'owned by the user or writable by group/others');
  });

  test('image (real build): production dependencies only, each of them loads, and the licences ship', async () => {
    const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages).filter(([path, entry]) => entry.dev && path.startsWith('node_modules/')).map(([path]) => path);
    assert.ok(devOnly.includes('node_modules/typescript'));
    const names = Object.keys(packageJson.dependencies);
    const script = `const fs = require('node:fs');
      const shipped = ${JSON.stringify(devOnly)}.filter((p) => fs.existsSync(p));
      if (shipped.length) { console.log('dev-only:', shipped.join(' ')); process.exit(1); }
      for (const f of ['LICENSE', 'THIRD_PARTY_LICENSES', 'package.json', 'dist/cli.js']) if (!fs.existsSync(f)) { console.log('missing', f); process.exit(1); }
      if (fs.existsSync('src')) { console.log('src/ shipped'); process.exit(1); }
      Promise.all(${JSON.stringify(names)}.map((n) => import(n))).then(() => console.log('ok'), (e) => { console.log(e.message); process.exit(1); });`;
    const r = await inImage(tag, ['node', '-e', script]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  test('image (real build): `--version` and `check --config FILE` after the image name', async () => {
    const entrypoint = config.Entrypoint ?? [];
    const version = await inImage(tag, [...entrypoint, '--version']);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout.trim(), packageJson.version);
    // A config file (written to the container's /tmp: the tool passes arguments one a line, so YAML's flow style).
    const yaml = `{ routes: [{ name: demo, upstream: "${containerEnv.BEARER_SIDECAR_UPSTREAM}", auth: { tokenUrl: "${containerEnv.BEARER_SIDECAR_TOKEN_URL}", clientId: "\${DEMO_ID}", clientSecretFile: /tmp/secret } }] }`;
    const write = 'printf "%s\\n" "$1" > /tmp/sidecar.yaml && printf "%s\\n" "$2" > /tmp/secret && shift 2 && exec "$@"';
    const check = await inImage(tag, ['sh', '-c', write, 'sh', yaml, containerEnv.BEARER_SIDECAR_CLIENT_SECRET ?? '', ...entrypoint, 'check', '--config', '/tmp/sidecar.yaml'], { DEMO_ID: containerEnv.BEARER_SIDECAR_CLIENT_ID ?? '' });
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /^ok\s+demo:/m);
  });

  test('image (real build): the demo round trip: a request through the sidecar reaches the echo upstream with a bearer token from the token endpoint', async () => {
    const key = environmentOf(service('app')).SIDECAR_KEY ?? '';
    const refused = await fetch(`http://127.0.0.1:${proxyPort}/hello/world`);
    assert.equal(refused.status, 403, 'without X-Sidecar-Key the sidecar refuses');
    const response = await fetch(`http://127.0.0.1:${proxyPort}/hello/world?x=1`, { headers: { authorization: 'Bearer caller-token-is-replaced', 'x-sidecar-key': key } });
    const body = (await response.json()) as { path: string; query: string; tokenSubject: string; headers: Record<string, string> };
    assert.equal(response.status, 200, JSON.stringify(body));
    assert.equal(body.headers['x-sidecar-key'], undefined, 'the shared secret is stripped before forwarding');
    assert.equal(body.path, '/hello/world');
    assert.equal(body.query, '?x=1');
    assert.match(body.headers.authorization ?? '', /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/, 'a JWT from the demo token endpoint');
    assert.equal(body.tokenSubject, containerEnv.BEARER_SIDECAR_CLIENT_ID);
    // And `npm run demo`'s script, in the image: the library entry points (dist/*.js beside the bundle) resolve there too.
    const demo = await inImage(tag, ['node', 'dist/demo/run.js', '--once'], { BEARER_SIDECAR_PORT: String(await freePort()), BEARER_SIDECAR_ADMIN_PORT: String(await freePort()) });
    assert.equal(demo.code, 0, demo.stdout + demo.stderr);
    assert.match(demo.stdout, /through the sidecar: .* -> 200/);
    assert.match(demo.stdout, /authorization: Bearer ey/);
  });

  test('image (real build): the HEALTHCHECK of the image and the compose healthcheck pass against the running sidecar', async () => {
    const [kind, ...command] = config.Healthcheck?.Test ?? [];
    assert.equal(kind, 'CMD');
    // As Docker judges them: unhealthy only after `retries` failures in a row (the image's 3; each
    // check gives its node 2.5 s, which a heavily loaded machine can take just to start it).
    const healthy = async (argv: readonly string[], retries: number): Promise<Result> => {
      let last = await inImage(tag, argv, containerEnv);
      for (let i = 1; i < retries && last.code !== 0; i++) last = await inImage(tag, argv, containerEnv);
      return last;
    };
    const health = await healthy(command, 3);
    assert.equal(health.code, 0, `the image HEALTHCHECK (/livez): ${health.stdout}${health.stderr}`);
    const composeAdmin = environmentOf(service('bearer-sidecar')).BEARER_SIDECAR_ADMIN_PORT ?? '9901';
    const compose = await healthy(composeCheck('bearer-sidecar', composeAdmin, adminPort), 3);
    assert.equal(compose.code, 0, 'the compose healthcheck (/readyz)');
  });

  test('image (real build): the ENTRYPOINT process is node itself, with the runtime settings; its idle RSS', async (t) => {
    const pid = sidecar.child.pid as number;
    // `image run` execs down to the command (no shell stays in between), as Docker's exec form does.
    assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '', /(^|\/)node$/);
    const cmdline = procList(pid, 'cmdline');
    const environ = procList(pid, 'environ');
    // The profile the image runs (BEARER_SIDECAR_TUNING from its config, else default): the
    // program applies it itself, re-executing with the node flags and malloc variables it lacks,
    // so the process that started as the ENTRYPOINT (the same PID) now has them.
    const profile = (config.Env ?? []).find((e) => e.startsWith(`${tuningVariable}=`))?.split('=')[1] ?? 'default';
    assert.ok(isTuningName(profile), profile);
    const settings = tuning(profile);
    for (const flag of settings.nodeFlags) assert.ok(cmdline.includes(flag), `${flag} (tuning ${profile}) in ${cmdline.join(' ')}`);
    for (const [name, value] of Object.entries(settings.environment)) assert.ok(environ.includes(`${name}=${value}`), `${name}=${value} (tuning ${profile}) in its environment`);
    // Nothing set beside the program's own settings: what the image's config gives node is what the profile says.
    const given = [...(config.Entrypoint ?? []).filter((a) => a.startsWith('--')), ...(config.Env ?? []).filter((e) => /^(MALLOC_|GLIBC_TUNABLES=|NODE_OPTIONS=)/.test(e))];
    assert.deepEqual(given, [], 'the image sets no node flag or malloc variable of its own (runtime/settings.ts is the one definition)');
    // Idle: 6 s after ready, as the benchmark reads it (one token held, no traffic since the requests above).
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, readyAt + 6000 - Date.now())));
    const idle = rssMiB(pid);
    t.diagnostic(`idle RSS of the image's sidecar: ${idle.toFixed(1)} MiB (${cmdline.join(' ')})`);
    process.stdout.write(`# image-build.test: idle RSS of the image's sidecar ${idle.toFixed(1)} MiB\n`);
    assert.ok(idle < 100, `idle RSS ${idle.toFixed(1)} MiB (target < 70 on an unloaded machine; BENCHMARKS.md)`);
  });

  test('image (real build): SIGTERM reaches node and it exits 0; the HEALTHCHECK then fails', async () => {
    assert.ok(sidecar.child.kill('SIGTERM'));
    const timer = setTimeout(() => sidecar.child.kill('SIGKILL'), 20_000);
    const code = await sidecar.exited;
    clearTimeout(timer);
    assert.equal(code, 0, sidecar.output());
    const [, ...command] = config.Healthcheck?.Test ?? [];
    assert.notEqual((await inImage(tag, command, containerEnv)).code, 0, 'unhealthy once the process is gone');
  });
}
