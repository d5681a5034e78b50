// Helpers of the benchmark (scripts/bench/util.mjs). The benchmark starts the sidecar the way the
// shipped bin starts it: `node dist/cli.js`, the program applying its runtime settings itself, a
// profile picked by BEARER_SIDECAR_TUNING (tuningProfiles enumerates them); an older build (an A/B
// baseline) with the node flags its first line carried then (shebangNodeArgs, checked here on the
// forms such a line took). It measures and ends whole process trees (a sidecar's primary and
// workers, nginx's master and workers): checked here on a real parent with a child.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

type Desc = { pid: number; start: string };
const util = (await import(new URL('../../scripts/bench/util.mjs', import.meta.url).href)) as {
  shebangNodeArgs: (text: string) => string[];
  shebangCommand: (text: string) => { env: Record<string, string>; args: string[] };
  childrenOf: (pid: number) => number[];
  treeOf: (pid: number) => number[];
  descendantsOf: (pid: number) => Desc[];
  killLeftovers: (list: Desc[]) => number;
  startTime: (pid: number) => string | undefined;
  procStatus: (pid: number) => { rssKb: number; hwmKb: number };
  treeRssKb: (pid: number) => number;
  binCommand: (node: string, cli: string, args?: string[], options?: { tuning?: string }) => [string, string[], Record<string, string>];
  tuningProfiles: (dir: string) => Promise<{ variable: string; names: string[]; tuning: (name: string) => { environment: Record<string, string> } } | undefined>;
};
const { shebangNodeArgs, shebangCommand } = util;

test('an older build: env -S variables before node are the environment its bin ran with, not flags (the bench passes them on)', () => {
  assert.deepEqual(shebangCommand('#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=32768 A=b=c node --max-semi-space-size=4\n'), { env: { MALLOC_MMAP_THRESHOLD_: '32768', A: 'b=c' }, args: ['--max-semi-space-size=4'] });
  assert.deepEqual(shebangNodeArgs('#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=32768 node --x'), ['--x']);
  assert.deepEqual(shebangCommand('#!/usr/bin/env node'), { env: {}, args: [] });
});

test('a plain #!/usr/bin/env node gives no flags', () => {
  assert.deepEqual(shebangNodeArgs('#!/usr/bin/env node\n// The executable\n'), []);
  assert.deepEqual(shebangNodeArgs('#!/usr/bin/env node'), []);
});

test('env -S splits the rest of the line: every word after node is a flag, in order', () => {
  assert.deepEqual(shebangNodeArgs('#!/usr/bin/env -S node --a=1 --b\nimport x from "y";\n'), ['--a=1', '--b']);
  assert.deepEqual(shebangNodeArgs('#!/usr/bin/env -S node --max-semi-space-size=2  --max-old-space-size=96\n'), ['--max-semi-space-size=2', '--max-old-space-size=96']);
  assert.deepEqual(shebangNodeArgs('#!/usr/bin/env -Snode --b'), ['--b']);
});

test('an interpreter path given directly keeps its argument', () => {
  assert.deepEqual(shebangNodeArgs('#!/usr/local/bin/node --a=1\n'), ['--a=1']);
});

test('no shebang, or one that is not node, gives no flags', () => {
  assert.deepEqual(shebangNodeArgs('// no shebang\n#!/usr/bin/env -S node --a\n'), []);
  assert.deepEqual(shebangNodeArgs('#!/bin/sh -e\n'), []);
  assert.deepEqual(shebangNodeArgs(''), []);
});

test("this build's bin has no flags on its first line; the bench enumerates the profiles of the build and starts each with BEARER_SIDECAR_TUNING", async () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const cli = join(root, 'dist', 'cli.js');
  assert.deepEqual(shebangNodeArgs(readFileSync(cli, 'utf8')), []);
  const profiles = await util.tuningProfiles(root);
  assert.ok(profiles);
  assert.equal(profiles.variable, 'BEARER_SIDECAR_TUNING');
  assert.deepEqual(profiles.names, ['default', 'lean', 'none']);
  assert.deepEqual(profiles.tuning('lean').environment, { MALLOC_MMAP_THRESHOLD_: '32768' });
  assert.deepEqual(util.binCommand('/x/node', cli, ['--config', 'c.yaml'], { tuning: 'none' }), ['/x/node', [cli, '--config', 'c.yaml'], { BEARER_SIDECAR_TUNING: 'none' }]);
  assert.equal(await util.tuningProfiles('/nonexistent'), undefined, 'a build before them');
});

const until = async (what: string, ok: () => boolean) => {
  for (let i = 0; i < 500; i++) {
    if (ok()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
};

test('a process tree is read from /proc, summed, and its leftovers ended by pid and start time', { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
  // A parent that starts one child and then idles: the shape of a primary with a worker.
  const parentCode = `require('node:child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }); setInterval(() => {}, 1000);`;
  const parent = spawn(process.execPath, ['-e', parentCode], { stdio: 'ignore' });
  let leftovers: Desc[] = [];
  t.after(() => {
    parent.kill('SIGKILL');
    util.killLeftovers(leftovers);
  });
  const pid = parent.pid!;
  await until('the child', () => util.childrenOf(pid).length === 1);
  const [child] = util.childrenOf(pid);
  assert.ok(child !== undefined);
  assert.deepEqual(util.treeOf(pid), [pid, child]);
  leftovers = util.descendantsOf(pid);
  assert.deepEqual(leftovers.map((d) => d.pid), [child]);
  assert.equal(leftovers[0]?.start, util.startTime(child));
  const parentRss = util.procStatus(pid).rssKb;
  assert.ok(parentRss > 1000, `parent RSS ${parentRss} kB`);
  assert.ok(util.treeRssKb(pid) > parentRss, 'the tree sum includes the child');

  // The parent dies without ending its child: the child is left running, orphaned.
  const exited = new Promise((r) => parent.once('exit', r));
  parent.kill('SIGKILL');
  await exited;
  assert.ok(util.startTime(child) !== undefined, 'the child outlives its parent');
  assert.ok(Number.isNaN(util.procStatus(pid).rssKb), 'a process that is gone reads NaN');
  // A different start time names another process that reused the pid: it is left alone.
  assert.equal(util.killLeftovers([{ pid: child, start: '1' }]), 0);
  assert.ok(util.startTime(child) !== undefined);
  assert.equal(util.killLeftovers(leftovers), 1);
  await until('the child to end', () => util.startTime(child) === undefined || /^Z/.test(readFileSync(`/proc/${child}/stat`, 'utf8').split(') ')[1] ?? ''));
});
