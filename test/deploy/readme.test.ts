// docs/deployment.md (between <!-- deployment:start --> and <!-- deployment:end -->):
// its copy-paste blocks must match the files they use.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { envVariables } from '../../src/config/env.js';
import { loadConfig } from '../../src/config/index.js';
import { environmentOf, finalStage, last, list, obj, parseDockerfile, read, readYaml, root, str } from './files.js';

const readme = read('docs/deployment.md');
const start = readme.indexOf('<!-- deployment:start -->');
const end = readme.indexOf('<!-- deployment:end -->');
const section = readme.slice(start, end);
/** Shell lines of the section's code blocks, continuation lines joined, comments dropped. */
const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => (m[1] as string).replace(/\\\n\s*/g, ''));
const commands = blocks.flatMap((b) => b.split('\n')).map((line) => line.replace(/\s+#.*$/, '').trim()).filter((line) => line !== '' && !line.startsWith('#'));
const dockerRuns = commands.filter((c) => c.startsWith('docker run '));
const tag = str(obj(list(readYaml('deploy/kubernetes/base/kustomization.yaml'), 'images')[0]), 'newTag');

test('docs/deployment.md: a deployment section with Docker, docker-compose and Kubernetes, each with a copy-paste block', () => {
  assert.ok(start >= 0 && end > start, 'the deployment markers');
  for (const heading of ['### Docker', '### docker-compose', '### Kubernetes']) assert.ok(section.includes(`\n${heading}\n`), heading);
  assert.ok(blocks.length >= 4);
  const base = finalStage(parseDockerfile(read('Dockerfile'))).image;
  assert.ok(section.includes(`\`${base}\``), `names the runtime base the Dockerfile uses (${base})`);
});

test('docs/deployment.md: every file and directory the blocks name exists', () => {
  const paths = new Set<string>();
  for (const match of section.matchAll(/(?<![\w/.-])((?:config|deploy)\/[\w./-]+|\.env\.example|docker-compose\.yml|Dockerfile)/g)) paths.add((match[1] as string).replace(/[.:]$/, ''));
  assert.ok(paths.size >= 6);
  for (const path of paths) assert.ok(existsSync(join(root, path)), `${path} exists`);
});

test('docs/deployment.md: docker run blocks use the image tag, the exposed ports and the config mount the files define', () => {
  assert.ok(commands.some((c) => c === `docker build -t bearer-sidecar:${tag} .`), 'docker build with the tag the kustomization uses');
  const exposed = last(finalStage(parseDockerfile(read('Dockerfile'))), 'EXPOSE')?.args.split(/\s+/) ?? [];
  assert.equal(dockerRuns.length, 2);
  for (const run of dockerRuns) {
    assert.match(run, /-p 127\.0\.0\.1:\d+:\d+ /, 'published on the host loopback only');
    const container = /-p 127\.0\.0\.1:\d+:(\d+)/.exec(run)?.[1] ?? '';
    assert.ok(exposed.includes(container), `the published port ${container} is EXPOSEd`);
    assert.ok(run.includes(`bearer-sidecar:${tag}`));
    for (const name of run.matchAll(/-e (BEARER_SIDECAR_\w+)/g)) {
      assert.ok(envVariables.some((v) => v.name === name[1]), `${name[1]} is a known variable`);
    }
  }
  // The file variant: the mounted file is where --config reads it, and listens where -p points.
  const fileRun = dockerRuns.find((r) => r.includes('--config'));
  assert.ok(fileRun);
  const mount = /-v "\$PWD\/([^:]+):([^:]+):ro"/.exec(fileRun);
  assert.ok(mount, 'a read-only bind mount');
  assert.equal(/--config (\S+)/.exec(fileRun)?.[1], mount[2], '--config reads the mounted file');
  const envExample = Object.fromEntries(read('.env.example').split('\n').filter((l) => /^\w+=/.test(l)).map((l) => l.split('=', 2) as [string, string]));
  const config = loadConfig(join(root, mount[1] as string), envExample);
  assert.equal(config.listen.host, '0.0.0.0', 'reachable through -p');
  assert.equal(String(config.listen.port), /-p 127\.0\.0\.1:\d+:(\d+)/.exec(fileRun)?.[1]);
  assert.match(fileRun, /--env-file \.env/, 'the ${VAR}s come from .env');
  // The env-only variant loads with the values the block sets.
  const envRun = dockerRuns.find((r) => !r.includes('--config'));
  assert.ok(envRun);
  const exported = Object.fromEntries(
    commands
      .filter((c) => c.startsWith('export BEARER_SIDECAR_'))
      .flatMap((c) => c.slice('export '.length).split(/\s+/))
      .map((kv) => kv.split('=', 2) as [string, string]),
  );
  const env: Record<string, string> = {};
  for (const m of envRun.matchAll(/-e (BEARER_SIDECAR_\w+)(?:=(\S+))?/g)) env[m[1] as string] = m[2] ?? exported[m[1] as string] ?? '';
  const envConfig = loadConfig(undefined, env);
  assert.equal(envConfig.listen.host, '0.0.0.0');
  assert.equal(envConfig.routes[0]?.auth.preset, 'megaport-staging');
});

test('docs/deployment.md: compose blocks name the services, URL and override the files define', () => {
  const services = obj(readYaml('docker-compose.yml'), 'services');
  for (const c of commands.filter((x) => /^docker compose (exec|logs)/.test(x))) {
    const name = /^docker compose (?:exec|logs)(?: -f)? (\S+)/.exec(c)?.[1] ?? '';
    assert.ok(name in services, `service ${name}`);
  }
  const port = environmentOf(obj(services, 'bearer-sidecar')).BEARER_SIDECAR_PORT;
  assert.ok(section.includes(`http://bearer-sidecar:${port}`));
  const composeFile = commands.find((c) => c.startsWith('export COMPOSE_FILE='))?.split('=')[1];
  assert.equal(composeFile, 'docker-compose.yml:config/compose.megaport-staging.yaml');
  assert.ok(commands.includes('docker compose up --build --detach --wait'));
});

test('docs/deployment.md: kubectl blocks create the Secret the Deployment mounts and apply the kustomizations that exist', () => {
  const pod = obj(readYaml('deploy/kubernetes/base/deployment.yaml'), 'spec', 'template', 'spec');
  const secret = list(pod, 'volumes').map((v) => obj(v)).find((v) => v.secret !== undefined);
  assert.ok(secret);
  const create = commands.find((c) => c.startsWith('kubectl create secret generic'));
  assert.ok(create);
  assert.equal(/generic (\S+)/.exec(create)?.[1], str(secret, 'secret', 'secretName'));
  const keys = [...create.matchAll(/--from-literal=([\w-]+)=/g)].map((m) => m[1]);
  assert.deepEqual(keys.sort(), list(secret, 'secret', 'items').map((i) => str(i, 'key')).sort());
  const applied = [...section.matchAll(/kubectl apply -k ([^\s`]+)/g)].map((m) => m[1] as string);
  assert.deepEqual(applied, ['deploy/kubernetes', 'deploy/kubernetes/classic', 'deploy/kubernetes/monitoring']);
  for (const dir of applied) assert.ok(existsSync(join(root, dir, 'kustomization.yaml')));
  const name = str(readYaml('deploy/kubernetes/base/deployment.yaml'), 'metadata', 'name');
  assert.ok(commands.includes(`kubectl rollout status deployment/${name}`));
});
