// docs/protocols.md's protocols section (between <!-- protocols:start --> and <!-- protocols:end -->):
// each block marked <!-- example: NAME --> is run as it stands against the demo stack (dist/demo/
// run.js), with only the demo's address swapped for this test's; its `→` lines say what it must
// print. Config blocks must load. A block renamed, added or removed fails here until this list
// follows.

import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { resolveConfig } from '../../src/config/load.js';
import { run, type Running } from '../helpers/process.js';
import { freePort } from '../helpers/servers.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const readme = readFileSync(join(root, 'docs/protocols.md'), 'utf8');
const section = readme.slice(readme.indexOf('<!-- protocols:start -->'), readme.indexOf('<!-- protocols:end -->'));
const examples = new Map([...section.matchAll(/<!-- example: ([\w-]+) -->\n```(\w+)\n([\s\S]*?)```/g)].map((m) => [m[1] as string, { lang: m[2] as string, code: m[3] as string }]));

/** The demo's addresses as the README writes them. */
const readmePort = '127.0.0.1:8080';
const readmeSocket = '/tmp/bearer-sidecar.sock';

const runners: Record<string, (code: string) => [string, string[]]> = {
  sh: (code) => ['bash', ['-euo', 'pipefail', '-c', code]],
  python: (code) => ['python3', ['-c', code]],
  // From the repository root, so `import WebSocket from 'ws'` resolves as in a project that installed it.
  js: (code) => [process.execPath, ['--input-type=module', '-e', code]],
};
const hasRequests = spawnSync('python3', ['-c', 'import requests']).status === 0;
const hasCurl = spawnSync('curl', ['--version']).status === 0;

function example(name: string): { lang: string; code: string } {
  const found = examples.get(name);
  assert.ok(found, `the README has an example "${name}"`);
  return found;
}

/** Lines `# → text` or `// → text`: what the block prints (a trailing … allows more). */
function expectations(code: string): string[] {
  return [...code.matchAll(/^(?:#|\/\/) → (.*)$/gm)].map((m) => (m[1] as string).replace(/…$/, ''));
}

async function startDemo(env: Record<string, string>): Promise<Running> {
  const demo = run([], { BEARER_SIDECAR_ADMIN_PORT: String(await freePort()), ...env }, join(root, 'dist/demo/run.js'));
  await demo.waitFor(/Press Ctrl-C to stop/, 20_000);
  return demo;
}

describe('README examples, run against the demo', () => {
  let tcp: Running;
  let unix: Running;
  let port: number;
  const socket = join(mkdtempSync(join(tmpdir(), 'bsc-readme-')), 'demo.sock');

  before(async () => {
    port = await freePort();
    [tcp, unix] = await Promise.all([startDemo({ BEARER_SIDECAR_PORT: String(port) }), startDemo({ BEARER_SIDECAR_SOCKET: socket })]);
  });
  after(async () => {
    for (const demo of [tcp, unix]) {
      if (!demo) continue;
      demo.child.kill('SIGTERM');
      await demo.exited;
    }
  });

  test('the section holds exactly these examples', () => {
    assert.deepEqual([...examples.keys()].sort(), ['config-socket', 'config-websocket', 'curl', 'curl-unix-socket', 'node-fetch', 'python-requests', 'websocket-ws']);
  });

  test('the start-the-demo lines use the variables the demo reads', () => {
    assert.match(section, /^npm run demo\b/m);
    assert.match(section, new RegExp(`^BEARER_SIDECAR_SOCKET=${readmeSocket} BEARER_SIDECAR_ADMIN_PORT=\\d+ npm run demo`, 'm'));
  });

  for (const name of ['config-websocket', 'config-socket']) {
    test(`${name}: the config block loads`, () => {
      const { lang, code } = example(name);
      assert.equal(lang, 'yaml');
      const block = parseYaml(code) as Record<string, unknown>;
      const config = resolveConfig({ routes: [{ name: 'r', upstream: 'https://api.example.com', auth: { tokenUrl: 'https://auth.example.com/token', clientId: 'i', clientSecret: 's' } }], ...block }, { env: { EXAMPLE_CLIENT_ID: 'id', EXAMPLE_CLIENT_SECRET: 'secret' } });
      if (name === 'config-websocket') assert.equal(config.routes[0]?.websocket, true);
      else assert.deepEqual([config.listen.socket, config.listen.mode], ['/run/bearer-sidecar/proxy.sock', 0o660]);
    });
  }

  for (const name of ['curl', 'curl-unix-socket', 'python-requests', 'node-fetch', 'websocket-ws']) {
    const skip =
      name === 'python-requests' && !hasRequests ? 'python3 with requests is not installed (apt-get install python3-requests)' : name.startsWith('curl') && !hasCurl ? 'curl is not installed' : false;
    test(`${name}: runs as written and prints what the README says`, { skip }, async () => {
      const { lang, code } = example(name);
      const runner = runners[lang];
      assert.ok(runner, `a runner for ${lang}`);
      assert.ok(code.includes(readmePort) || code.includes(readmeSocket), 'the block talks to the demo');
      const expected = expectations(code);
      assert.ok(expected.length > 0, 'the block says what it prints');
      const [command, args] = runner(code.replaceAll(readmePort, `127.0.0.1:${port}`).replaceAll(readmeSocket, socket));
      const { stdout } = await promisify(execFile)(command, args, { cwd: root, timeout: 30_000, env: { ...process.env, PYTHONUTF8: '1' } });
      for (const text of expected) assert.ok(stdout.includes(text), `${name} printed:\n${stdout}\nexpected it to contain:\n${text}`);
    });
  }
});
