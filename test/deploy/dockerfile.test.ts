// The Dockerfile and .dockerignore, checked without a Docker engine: the rules of the deployment
// issue (pinned LTS base, multi-stage, non-root, exec-form entrypoint, Node healthcheck, ports)
// and, when the package is installed, the dockerfile-utils linter.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/index.js';
import { dockerignore, execForm, filesUnder, finalStage, flags, last, parseDockerfile, read, type Stage } from './files.js';

const text = read('Dockerfile');
const dockerfile = parseDockerfile(text);
const runtime = finalStage(dockerfile);
const build = dockerfile.stages.find((s) => s.name === 'build');

// The ports a minimal env-only config gets: the schema's defaults, which the image documents.
const defaults = loadConfig(undefined, {
  BEARER_SIDECAR_UPSTREAM: 'https://api.example.com',
  BEARER_SIDECAR_TOKEN_URL: 'https://auth.example.com/token',
  BEARER_SIDECAR_CLIENT_ID: 'id',
  BEARER_SIDECAR_CLIENT_SECRET: 'secret',
});

test('Dockerfile: multi-stage, both stages on an exact Node LTS release (22 or 24), the runtime slim', () => {
  assert.ok(build, 'a stage named "build"');
  assert.ok(dockerfile.stages.length >= 2, 'at least a build and a runtime stage');
  assert.notEqual(runtime, build, 'the last stage is not the build stage');
  for (const stage of dockerfile.stages) {
    assert.match(stage.image, /^node:(22|24)\.\d+\.\d+-(trixie|bookworm)(-slim)?$/, `FROM ${stage.image}: pin an exact 22.x.y or 24.x.y release`);
    assert.doesNotMatch(stage.image, /latest|lts|current/);
  }
  assert.match(runtime.image, /-slim$/, 'the runtime base is slim');
  const nodeVersion = (image: string) => /^node:([\d.]+)-/.exec(image)?.[1];
  assert.equal(nodeVersion(build.image), nodeVersion(runtime.image), 'build and run on the same Node version');
});

test('Dockerfile: the build stage installs from the lock file, compiles, and drops dev dependencies', () => {
  assert.ok(build);
  const runs = build.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
  const all = runs.join('\n');
  assert.match(all, /npm ci\b/, 'npm ci (lock file)');
  assert.match(all, /npm run build\b/);
  assert.match(all, /npm prune --omit=dev|npm ci [^\n]*--omit=dev/, 'production dependencies only');
  assert.ok(all.indexOf('npm run build') < all.search(/--omit=dev/), 'prune after the build');
  // What the build needs from the context (and .dockerignore must let through).
  const copied = build.instructions.filter((i) => i.keyword === 'COPY').flatMap((i) => copySources(i.args));
  for (const path of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src', 'LICENSE', 'THIRD_PARTY_LICENSES']) {
    assert.ok(copied.includes(path), `build stage copies ${path}`);
  }
});

test('Dockerfile: the runtime stage ships only package.json, dist/, production node_modules and the licences from the build stage', () => {
  const copies = runtime.instructions.filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD');
  assert.ok(copies.every((i) => i.keyword === 'COPY'), 'no ADD');
  const sources = copies.map((i) => {
    const { flags: f, rest } = flags(i.args);
    assert.equal(f.get('from'), 'build', `line ${i.line}: copies from the build stage, not the context`);
    return copySources(rest).join(' ');
  });
  assert.deepEqual(sources.sort(), ['/app/LICENSE /app/THIRD_PARTY_LICENSES', '/app/dist', '/app/node_modules', '/app/package.json']);
  assert.equal(last(runtime, 'WORKDIR')?.args, '/app', 'paths in ENTRYPOINT resolve from /app');
  assert.equal(last(build as Stage, 'WORKDIR')?.args, '/app');
  const env = runtime.instructions.filter((i) => i.keyword === 'ENV').map((i) => i.args).join(' ');
  assert.match(env, /NODE_ENV=production/);
});

test('Dockerfile: runs as a non-root numeric user', () => {
  const user = last(runtime, 'USER');
  assert.ok(user, 'USER in the runtime stage');
  const uid = /^(\d+)(?::(\d+))?$/.exec(user.args);
  assert.ok(uid, `USER ${user.args}: numeric, so that Kubernetes runAsNonRoot can verify it`);
  assert.notEqual(Number(uid[1]), 0, 'not root');
  if (uid[2] !== undefined) assert.notEqual(Number(uid[2]), 0, 'not the root group');
  const after = runtime.instructions.slice(runtime.instructions.indexOf(user));
  assert.ok(!after.some((i) => i.keyword === 'USER' && /^(0|root)\b/.test(i.args)), 'never switches back to root');
});

test('Dockerfile: exec-form ENTRYPOINT runs the CLI with node as PID 1; CMD is exec form too', () => {
  const entrypoint = execForm(last(runtime, 'ENTRYPOINT')?.args ?? '');
  // node and the CLI, nothing else: the CLI applies its runtime settings itself (runtime-settings.test.ts).
  assert.equal(entrypoint?.[0], 'node', 'exec form, no shell that would swallow SIGTERM');
  assert.deepEqual(entrypoint, ['node', 'dist/cli.js']);
  const cmd = last(runtime, 'CMD');
  if (cmd) {
    const args = execForm(cmd.args);
    assert.ok(args, 'CMD in exec form');
    assert.ok(args.every((a) => !/^(sh|bash|\/bin\/sh)$/.test(a)));
  }
  assert.ok(!runtime.instructions.some((i) => i.keyword === 'STOPSIGNAL' && !/SIGTERM/.test(i.args)), 'SIGTERM stops it');
});

test('Dockerfile: EXPOSEs the proxy and admin ports of the default config', () => {
  const exposed = runtime.instructions
    .filter((i) => i.keyword === 'EXPOSE')
    .flatMap((i) => i.args.split(/\s+/))
    .map((p) => Number(p.replace(/\/tcp$/, '')));
  assert.deepEqual(exposed.sort(), [defaults.listen.port, defaults.admin.port].sort());
  assert.deepEqual([defaults.listen.port, defaults.admin.port], [8080, 9901]);
});

test('Dockerfile: HEALTHCHECK calls /livez on the admin port with node, no curl or shell', () => {
  const healthcheck = last(runtime, 'HEALTHCHECK');
  assert.ok(healthcheck, 'HEALTHCHECK in the runtime stage');
  const { flags: f, rest } = flags(healthcheck.args);
  for (const option of ['interval', 'timeout', 'retries']) assert.ok(f.has(option), `--${option}`);
  assert.match(rest, /^CMD\s+\[/, 'exec form');
  const command = execForm(rest.replace(/^CMD\s+/, ''));
  assert.ok(command);
  assert.equal(command[0], 'node');
  assert.equal(command[1], '-e');
  const script = command[2] ?? '';
  assert.match(script, /\/livez/);
  assert.match(script, new RegExp(`BEARER_SIDECAR_ADMIN_PORT \\|\\| ${defaults.admin.port}\\b`));
  assert.match(script, /127\.0\.0\.1/);
  assert.doesNotMatch(healthcheck.args, /curl|wget|CMD-SHELL|\bsh\b/);
});

test('Dockerfile: general rules (no ADD of URLs, no latest tag, no secrets in ENV/ARG, no sudo)', () => {
  for (const i of dockerfile.instructions) {
    assert.ok(!(i.keyword === 'ADD' && /https?:\/\//.test(i.args)), `line ${i.line}: ADD of a URL`);
    assert.doesNotMatch(i.args, /:latest\b/, `line ${i.line}: latest tag`);
    assert.ok(!(['ENV', 'ARG'].includes(i.keyword) && /SECRET|PASSWORD|TOKEN/i.test(i.args)), `line ${i.line}: secret in ${i.keyword}`);
    assert.doesNotMatch(i.args, /\bsudo\b/);
    assert.notEqual(i.keyword, 'MAINTAINER');
  }
  const known = new Set(['FROM', 'RUN', 'CMD', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL']);
  for (const i of dockerfile.instructions) assert.ok(known.has(i.keyword), `line ${i.line}: unknown instruction ${i.keyword}`);
  assert.equal(dockerfile.instructions.filter((i) => i.keyword === 'ENTRYPOINT').length, 1);
  assert.match(text.split('\n')[0] ?? '', /^# syntax=docker\/dockerfile:1/, 'BuildKit syntax (RUN --mount=type=cache)');
});

test('Dockerfile: dockerfile-utils finds no problem (skipped when the linter is not installed)', async (t) => {
  const name = 'dockerfile-utils';
  let linter: { validate(content: string, settings?: object): { message: string; range: { start: { line: number } } }[] };
  try {
    linter = (await import(name)) as typeof linter;
  } catch {
    t.skip('dockerfile-utils is not installed (npm install --save-dev dockerfile-utils to enable)');
    return;
  }
  const problems = linter.validate(text, {}).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
  assert.deepEqual(problems, []);
});

test('.dockerignore keeps .git, tests, node_modules, dist and .env out, and lets the build inputs in', () => {
  const ignored = dockerignore(read('.dockerignore'));
  for (const path of ['.git/HEAD', 'node_modules/yaml/package.json', 'dist/cli.js', 'test/deploy/dockerfile.test.ts', '.env', 'coverage/x', 'README.md', 'docker-compose.yml']) {
    assert.ok(ignored(path), `${path} is kept out of the build context`);
  }
  for (const path of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'LICENSE', 'THIRD_PARTY_LICENSES', ...filesUnder('src')]) {
    assert.ok(!ignored(path), `${path} is in the build context`);
  }
});

/** The source paths of a COPY (all words but the last, flags removed; exec form allowed). */
function copySources(args: string): string[] {
  const rest = flags(args).rest;
  const words = execForm(rest) ?? rest.split(/\s+/);
  return words.slice(0, -1).map((w) => w.replace(/^\.\//, '').replace(/\/$/, ''));
}
