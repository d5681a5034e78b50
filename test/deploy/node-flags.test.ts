// The node flags and environment the sidecar runs with (issue 14): the first line of src/cli.ts
// (`#!/usr/bin/env -S NAME=VALUE node --flag...`) is their single source. Every other way the
// deployment starts the CLI either runs the bin (so that line applies) or carries the same ones,
// and each flag is one this Node accepts on its command line. (global-install.test.ts checks a
// running installed bin's command line and environment.)

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { execForm, finalStage, last, parseDockerfile, read, shebang } from './files.js';

const source = read('src/cli.ts');
const { env, args: flags } = shebang(source);

test('shebang() reads the forms a bin can take', () => {
  assert.deepEqual(shebang('#!/usr/bin/env node\n'), { env: {}, args: [] });
  assert.deepEqual(shebang('#!/usr/bin/env -S node --a=1 --b\n'), { env: {}, args: ['--a=1', '--b'] });
  assert.deepEqual(shebang('#!/usr/bin/env -S A_=1 B=x=y node --a=1\n'), { env: { A_: '1', B: 'x=y' }, args: ['--a=1'] });
  assert.deepEqual(shebang('#!/usr/bin/env -Snode --a=1\n'), { env: {}, args: ['--a=1'] });
  assert.deepEqual(shebang('#!/usr/local/bin/node --a=1\n'), { env: {}, args: ['--a=1'] });
  assert.deepEqual(shebang('// no shebang\n'), { env: {}, args: [] });
});

test("src/cli.ts's first line runs node through `/usr/bin/env -S` with the sidecar's flags; the built bin has the same line", () => {
  const first = source.split('\n', 1)[0] as string;
  assert.match(first, /^#!\/usr\/bin\/env -S( [A-Z_]+=\S+)* node( --[a-z0-9-]+(=\S+)?)+$/, 'coreutils env -S (the image has it), variables, then node and -- flags only');
  assert.ok(flags.includes('--max-semi-space-size=4'), 'the young generation bounded (issue 14)');
  assert.deepEqual(env, { MALLOC_MMAP_THRESHOLD_: '32768' }, "socket read buffers outside malloc's arenas (issue 14)");
  // dist/cli.js is tsc's output of src/cli.ts (npm run build, which the test run does first).
  assert.equal(read('dist/cli.js').split('\n', 1)[0], first);
});

test("every flag of the shebang is accepted by this Node on its command line, and takes effect", () => {
  const result = spawnSync(process.execPath, [...flags, '-e', 'process.stdout.write(JSON.stringify(process.execArgv))'], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stderr, '', 'no warning about a flag');
  assert.deepEqual((JSON.parse(result.stdout) as string[]).slice(0, flags.length), flags);
  // The young generation's limit: new space's size while objects survive scavenges, the case where
  // V8 grows it (to 2 × 16 MB on Node 20, 2 × 64 MB on Node 24 without the flag); 2 × 4 MB with it.
  const script = `const v8 = require('v8'); let kept = []; let max = 0;
    for (let i = 0; i < 3e6; i++) {
      kept.push({ i }); if (kept.length > 300000) kept = [];
      if (i % 1000 === 0) max = Math.max(max, v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size);
    }
    process.stdout.write(String(max));`;
  const run = (args: string[]) => {
    const r = spawnSync(process.execPath, [...args, '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return Number(r.stdout) / 1048576;
  };
  const bounded = run(flags);
  assert.ok(bounded <= 8, `new space ${bounded} MB with the flags: at most 2 × 4 MB`);
  const unbounded = run([]);
  assert.ok(unbounded > 8, `new space ${unbounded} MB without them: the check can tell`);
});

test("the Dockerfile's ENTRYPOINT carries the shebang's flags (node stays PID 1), its ENV the shebang's variables", () => {
  const runtime = finalStage(parseDockerfile(read('Dockerfile')));
  const entrypoint = execForm(last(runtime, 'ENTRYPOINT')?.args ?? '');
  assert.deepEqual(entrypoint, ['node', ...flags, 'dist/cli.js']);
  const envs = runtime.instructions.filter((i) => i.keyword === 'ENV').map((i) => i.args);
  for (const [name, value] of Object.entries(env)) assert.ok(envs.includes(`${name}=${value}`), `ENV ${name}=${value} in the runtime stage`);
});

test("npm start carries the shebang's variables and flags", () => {
  const { scripts } = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  assert.equal(scripts.start, [...Object.entries(env).map(([k, v]) => `${k}=${v}`), 'node', ...flags, 'dist/cli.js'].join(' '));
});

test('the systemd unit runs the installed bin, so its first line applies', () => {
  const execStart = /^ExecStart=(\S+)/m.exec(read('deploy/systemd/bearer-sidecar.service'))?.[1];
  assert.equal(execStart, '/usr/local/bin/bearer-sidecar', 'the bin npm install -g links, not `node dist/cli.js` without the flags');
});
