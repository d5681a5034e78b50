// Does what the image does, without Docker. The build stage: its COPY sources from the build
// context (filtered by .dockerignore) and `npm run build` on them, then production dependencies
// only (`npm ci --omit=dev` against the lock file, as its prune leaves them). The runtime stage:
// its COPY --from=build layout in a temporary directory. Then the demo servers and the sidecar
// start with the exact ENTRYPOINT/CMD of the Dockerfile and docker-compose.yml and the compose
// file's environment, and a request goes through. This catches a missing build input, a missing
// runtime dependency or a wrong path before any user does.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative, sep } from 'node:path';
import { after, before, test } from 'node:test';
import { dockerignore, environmentOf, execForm, finalStage, flags, freePort, last, list, obj, parseDockerfile, read, readYaml, root, type Yaml } from './files.js';

const dockerfile = parseDockerfile(read('Dockerfile'));
const runtime = finalStage(dockerfile);
const buildStage = dockerfile.stages.find((s) => s.name === 'build');
const services = obj(readYaml('docker-compose.yml'), 'services');
const packageJson = JSON.parse(read('package.json')) as { version: string; dependencies: Record<string, string> };

const temp = mkdtempSync(join(tmpdir(), 'bearer-sidecar-image-'));
const workdir = join(temp, 'rootfs', last(runtime, 'WORKDIR')?.args ?? '/');
const children: ChildProcess[] = [];

interface Proc {
  readonly child: ChildProcess;
  output(): string;
  readonly exited: Promise<number | string>;
}

/** Starts an image command (ENTRYPOINT + CMD): "node" is this Node binary, cwd is the WORKDIR. */
function start(command: readonly string[], env: Record<string, string>): Proc {
  const [program, ...args] = command;
  assert.equal(program, 'node', `the command starts node: ${command.join(' ')}`);
  const child = spawn(process.execPath, args, { cwd: workdir, env: { PATH: process.env.PATH ?? '', HOME: temp, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { child, output: () => output, exited };
}

/** Runs a healthcheck command to completion, as Docker would, and returns its exit code. */
function runCheck(command: readonly string[], env: Record<string, string>): number {
  const [program, ...args] = command;
  assert.equal(program, 'node');
  const result = spawnSync(process.execPath, args, { cwd: workdir, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 10_000 });
  return result.status ?? -1;
}

async function until(what: string, check: () => boolean | Promise<boolean>, proc?: Proc, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (proc && proc.child.exitCode !== null) assert.fail(`process exited (${proc.child.exitCode}) before ${what}:\n${proc.output()}`);
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}${proc ? `; output:\n${proc.output()}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The Dockerfile's ENV of the runtime stage (KEY=value forms). */
function imageEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of runtime.instructions.filter((x) => x.keyword === 'ENV')) {
    for (const match of i.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[match[1] as string] = (match[2] as string).replace(/^"|"$/g, '');
  }
  return env;
}

function service(name: string): Yaml {
  return obj(services, name);
}

/** A compose healthcheck test (["CMD", ...]) with its port moved to where the test runs the server. */
function composeCheck(name: string, fromPort: string | number, toPort: number): string[] {
  const [kind, ...command] = list(service(name), 'healthcheck', 'test').map(String);
  assert.equal(kind, 'CMD');
  const moved = command.map((arg) => arg.replaceAll(`:${fromPort}/`, `:${toPort}/`));
  assert.notDeepEqual(moved, command, `${name}: the healthcheck names port ${fromPort}`);
  return moved;
}

let sidecar: Proc;
let containerEnv: Record<string, string>;
let proxyPort: number;
let adminPort: number;
let imageCommand: string[];

before(async () => {
  // 1. The build stage: its COPY sources from the build context (as .dockerignore filters it),
  //    the project's own dev dependencies (as after its `npm ci`), then `npm run build`. So dist/
  //    is compiled from exactly what the image build gets.
  assert.ok(buildStage, 'a build stage');
  const buildDir = join(temp, 'build');
  mkdirSync(buildDir);
  const ignored = dockerignore(read('.dockerignore'));
  for (const copy of buildStage.instructions.filter((i) => i.keyword === 'COPY')) {
    const { flags: f, rest } = flags(copy.args);
    assert.equal(f.get('from'), undefined, `line ${copy.line}: the build stage copies from the context`);
    const words = execForm(rest) ?? rest.split(/\s+/);
    const destination = join(buildDir, words.at(-1) as string);
    const sources = words.slice(0, -1);
    for (const source of sources) {
      const from = join(root, source);
      assert.ok(!ignored(source), `line ${copy.line}: ${source} is in the build context`);
      const isDir = statSync(from).isDirectory();
      const target = isDir || (!words.at(-1)?.endsWith('/') && sources.length === 1) ? destination : join(destination, basename(source));
      cpSync(from, target, { recursive: true, filter: (path) => !ignored(relative(root, path).split(sep).join('/')) });
    }
  }
  const runs = buildStage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
  assert.match(runs, /npm ci\b/);
  assert.match(runs, /npm run build\b/);
  symlinkSync(join(root, 'node_modules'), join(buildDir, 'node_modules'), 'dir');
  const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: buildDir, encoding: 'utf8', timeout: 120_000 });
  assert.equal(build.status, 0, `npm run build with only the build context failed:\n${build.stdout}\n${build.stderr}`);
  rmSync(join(buildDir, 'node_modules'));
  // ... and its prune to production dependencies: the same tree as `npm ci --omit=dev` on the lock file.
  const npm = spawnSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], {
    cwd: buildDir,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, NODE_ENV: 'production', npm_config_update_notifier: 'false' },
  });
  assert.equal(npm.status, 0, `npm ci --omit=dev failed:\n${npm.stdout}\n${npm.stderr}`);

  // 2. The runtime stage's file layout, from its COPY --from=build instructions.
  const buildWorkdir = last(buildStage, 'WORKDIR')?.args ?? '/';
  for (const copy of runtime.instructions.filter((i) => i.keyword === 'COPY')) {
    const { flags: f, rest } = flags(copy.args);
    assert.equal(f.get('from'), 'build', `line ${copy.line}: the test reproduces copies from the build stage only`);
    const words = execForm(rest) ?? rest.split(/\s+/);
    const destination = words.at(-1) as string;
    for (const source of words.slice(0, -1)) {
      assert.ok(source.startsWith(`${buildWorkdir}/`), `line ${copy.line}: ${source} is in the build WORKDIR`);
      const inBuild = join(buildDir, source.slice(buildWorkdir.length + 1));
      assert.ok(existsSync(inBuild), `line ${copy.line}: the build stage produced ${source}`);
      const target = destination.endsWith('/') || destination === '.' ? join(workdir, destination, basename(source)) : join(workdir, destination);
      mkdirSync(join(target, '..'), { recursive: true });
      cpSync(inBuild, target, { recursive: true, verbatimSymlinks: true });
    }
  }

  // 3. The demo servers, as docker-compose.yml runs them, on free loopback ports.
  const servers: Record<string, { port: number; composePort: string }> = {};
  for (const name of ['token-server', 'echo-upstream']) {
    const env = environmentOf(service(name));
    const port = await freePort();
    servers[name] = { port, composePort: env.PORT ?? '' };
    const proc = start(list(service(name), 'entrypoint').map(String), { ...imageEnv(), ...env, HOST: '127.0.0.1', PORT: String(port) });
    const check = composeCheck(name, env.PORT ?? '', port);
    await until(`${name} healthy`, () => runCheck(check, {}) === 0, proc);
  }

  // 4. The sidecar: ENTRYPOINT + CMD, with the image's ENV and the compose service's environment,
  //    its service names and ports moved to where this test runs them.
  proxyPort = await freePort();
  adminPort = await freePort();
  const composeEnv = environmentOf(service('bearer-sidecar'));
  const moved = Object.fromEntries(
    Object.entries(composeEnv).map(([k, v]) => [
      k,
      Object.entries(servers).reduce((value, [name, s]) => value.replaceAll(`//${name}:${s.composePort}`, `//127.0.0.1:${s.port}`), v),
    ]),
  );
  containerEnv = { ...imageEnv(), ...moved, BEARER_SIDECAR_HOST: '127.0.0.1', BEARER_SIDECAR_PORT: String(proxyPort), BEARER_SIDECAR_ADMIN_PORT: String(adminPort) };
  const entrypoint = execForm(last(runtime, 'ENTRYPOINT')?.args ?? '');
  const cmd = execForm(last(runtime, 'CMD')?.args ?? '[]');
  assert.ok(entrypoint && cmd, 'exec-form ENTRYPOINT and CMD');
  imageCommand = entrypoint;
  sidecar = start([...entrypoint, ...cmd], containerEnv);
  await until('/readyz 200', async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`).catch(() => undefined))?.status === 200, sidecar);
}, { timeout: 300_000 }); // a build and an npm ci: under a loaded machine (and beside global-install.test.ts's npm install) more than the runner's 120 s

after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(temp, { recursive: true, force: true });
});

test('image: the runtime layout has production dependencies only, and every one of them resolves', () => {
  assert.ok(existsSync(join(workdir, 'dist/cli.js')));
  assert.ok(existsSync(join(workdir, 'package.json')), 'package.json next to dist/ ("type": "module", --version)');
  assert.ok(!existsSync(join(workdir, 'src')), 'no sources');
  for (const file of ['LICENSE', 'THIRD_PARTY_LICENSES']) assert.ok(existsSync(join(workdir, file)), `${file} ships in the image`);
  const names = Object.keys(packageJson.dependencies);
  for (const name of names) assert.ok(existsSync(join(workdir, 'node_modules', name, 'package.json')), `dependency ${name} is installed`);
  // Each one loads from the WORKDIR, its own dependencies included.
  const script = `for (const name of ${JSON.stringify(names)}) await import(name);`;
  const load = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: workdir, env: { PATH: process.env.PATH ?? '' }, encoding: 'utf8', timeout: 20_000 });
  assert.equal(load.status, 0, load.stderr);
  // Nothing the lock file marks as dev-only (typescript, tsx, ...) is shipped.
  const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { dev?: boolean }> };
  const devOnly = Object.entries(lock.packages).filter(([path, entry]) => entry.dev && path.startsWith('node_modules/'));
  assert.ok(devOnly.some(([path]) => path === 'node_modules/typescript'));
  for (const [path] of devOnly) assert.ok(!existsSync(join(workdir, path)), `dev-only ${path} is not shipped`);
});

test('image: a request through the sidecar reaches the upstream with a bearer token from the token endpoint', async () => {
  // As the compose app does: the shared-secret header is required on the compose network.
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
  assert.equal(body.tokenSubject, environmentOf(service('bearer-sidecar')).BEARER_SIDECAR_CLIENT_ID);
});

test('image: the Dockerfile HEALTHCHECK and the compose healthcheck pass against the running sidecar', () => {
  const healthcheck = flags(last(runtime, 'HEALTHCHECK')?.args ?? '').rest.replace(/^CMD\s+/, '');
  const command = execForm(healthcheck);
  assert.ok(command, 'exec-form HEALTHCHECK');
  assert.equal(runCheck(command, containerEnv), 0, 'the image HEALTHCHECK (/livez)');
  const composeAdmin = environmentOf(service('bearer-sidecar')).BEARER_SIDECAR_ADMIN_PORT ?? '9901';
  assert.equal(runCheck(composeCheck('bearer-sidecar', composeAdmin, adminPort), containerEnv), 0, 'the compose healthcheck (/readyz)');
});

test('image: arguments after the image name replace CMD (`docker run IMAGE --version`, `check --config FILE`)', () => {
  const run = (args: string[], env: Record<string, string>) =>
    spawnSync(process.execPath, [...imageCommand.slice(1), ...args], { cwd: workdir, env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8', timeout: 20_000 });
  const version = run(['--version'], imageEnv());
  assert.equal(version.status, 0, version.stderr);
  assert.equal(version.stdout.trim(), packageJson.version);
  // A mounted config file instead of environment variables.
  const file = join(temp, 'config', 'sidecar.yaml');
  mkdirSync(join(temp, 'config'));
  writeFileSync(
    file,
    [
      'routes:',
      '  - name: demo',
      `    upstream: ${containerEnv.BEARER_SIDECAR_UPSTREAM}`,
      '    auth:',
      `      tokenUrl: ${containerEnv.BEARER_SIDECAR_TOKEN_URL}`,
      '      clientId: ${DEMO_ID}',
      '      clientSecretFile: ' + join(temp, 'config', 'secret'),
      '',
    ].join('\n'),
  );
  writeFileSync(join(temp, 'config', 'secret'), `${containerEnv.BEARER_SIDECAR_CLIENT_SECRET}\n`);
  const check = run(['check', '--config', file], { ...imageEnv(), DEMO_ID: containerEnv.BEARER_SIDECAR_CLIENT_ID ?? '' });
  assert.equal(check.status, 0, check.stdout + check.stderr);
  assert.match(check.stdout, /^ok\s+demo:/m);
});

test('image: SIGTERM reaches node (no shell in between) and it exits 0; the HEALTHCHECK then fails', async () => {
  assert.ok(sidecar.child.kill('SIGTERM'));
  const timer = setTimeout(() => sidecar.child.kill('SIGKILL'), 20_000);
  const code = await sidecar.exited;
  clearTimeout(timer);
  assert.equal(code, 0, sidecar.output());
  const healthcheck = execForm(flags(last(runtime, 'HEALTHCHECK')?.args ?? '').rest.replace(/^CMD\s+/, ''));
  assert.ok(healthcheck);
  assert.notEqual(runCheck(healthcheck, containerEnv), 0, 'unhealthy once the process is gone');
});
