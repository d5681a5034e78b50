// Runs every test/**/*.test.ts with Node's test runner (TypeScript through tsx), once on each
// runtime the tests prove: the Node that runs this script (the machine's) and Node 24, the exact
// release the image runs (Dockerfile ARG NODE_VERSION; scripts/node24 pins the same, and
// test/deploy/node-version.test.ts keeps the two in step). The Node 24 binary comes from the npm
// registry's node-<platform>-<arch> package, installed into scripts/node24/node_modules on first
// use (`npm ci --prefix scripts/node24`, from its own lockfile) rather than as a devDependency of
// the project (scripts/node24.mjs, shared with the benchmark).
//
//   npm test                                    all files, on both runtimes
//   npm test -- test/x/y.test.ts                these files, on both runtimes
//   npm test -- --test-name-pattern=refresh     other arguments go to the test runner
//   BEARER_SIDECAR_TEST_NODE=current|24|both    which runtimes (default both)
//
// Tests of what does not depend on the runtime (promtool, a real Prometheus: test/helpers/
// system-tools.ts) run on one runtime only: the last one, Node 24 when both run. Each run is told
// which in BEARER_SIDECAR_TEST_ONCE_ON (its version).
//
// Each run starts with a header naming its runtime; when both ran, the closing lines are the
// runner's summary (ℹ tests, ℹ pass, ℹ fail, ...) summed over the two, and the exit code is 0
// only if both passed. Node 20's runner takes no glob patterns, so the files are listed here.

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { node24 } from './node24.mjs';

function find(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return find(path);
    return entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

function fail(message) {
  process.stderr.write(`run-tests: ${message}\n`);
  process.exit(1);
}

function runtimes() {
  const choice = process.env.BEARER_SIDECAR_TEST_NODE ?? 'both';
  if (!['current', '24', 'both'].includes(choice)) fail(`BEARER_SIDECAR_TEST_NODE must be current, 24 or both, not "${choice}"`);
  const list = [];
  if (choice !== '24') list.push({ path: process.execPath, version: process.version });
  if (choice !== 'current') {
    let path;
    try {
      path = node24();
    } catch (error) {
      fail(`${error.message}${/no Node 24 package/.test(error.message) ? '; run BEARER_SIDECAR_TEST_NODE=current npm test' : ''}`);
    }
    const version = spawnSync(path, ['--version'], { encoding: 'utf8' }).stdout.trim();
    if (!list.some((r) => r.version === version)) list.push({ path, version });
  }
  return list;
}

const summaryKeys = ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo', 'duration_ms'];

/** Runs the test runner on one runtime, passing its output through; resolves with its exit code and summary. */
function runOn(runtime, files, options, onceOn) {
  process.stdout.write(`\n# ==== tests on Node ${runtime.version} (${runtime.path}): ${files.length} file(s) ====\n\n`);
  const child = spawn(
    runtime.path,
    ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=4', '--test-timeout=120000', ...options, ...files],
    { stdio: ['inherit', 'pipe', 'inherit'], env: { ...process.env, TMPDIR: testTemp, BEARER_SIDECAR_TEST_ONCE_ON: onceOn, NODE_NO_WARNINGS: '1', ...(process.stdout.isTTY ? { FORCE_COLOR: '1' } : {}) } },
  );
  const summary = {};
  let rest = '';
  child.stdout.on('data', (data) => {
    process.stdout.write(data);
    const lines = (rest + data.toString()).split('\n');
    rest = lines.pop();
    for (const line of lines) {
      // eslint-disable-next-line no-control-regex
      const match = /^ℹ (\w+) ([\d.]+)$/.exec(line.replace(/\x1b\[[\d;]*m/g, '').trimEnd());
      if (match && summaryKeys.includes(match[1])) summary[match[1]] = Number(match[2]);
    }
  });
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ runtime, code: code ?? (signal ? 1 : 0), summary })));
}

const args = process.argv.slice(2);
const explicit = args.filter((a) => a.endsWith('.test.ts'));
const files = explicit.length > 0 ? explicit : find('test').sort();
const options = args.filter((a) => !a.endsWith('.test.ts'));

// The real image (test/deploy/image-build.test.ts), built once for both runtimes and before any
// test runs: a first build takes minutes, more than the runner gives a file (image-tool.ts).
if (files.some((f) => f.replaceAll('\\', '/').endsWith('test/deploy/image-build.test.ts'))) {
  spawnSync(process.execPath, ['--import', 'tsx', join('test', 'deploy', 'image-tool.ts')], { stdio: 'inherit', env: { ...process.env, NODE_NO_WARNINGS: '1' } });
}

// The tests' temporary files (os.tmpdir() reads TMPDIR, in the tests and the processes they start)
// go in one directory, removed when the run ends: a run used to leave some 3,000 behind in /tmp.
// Mode 1777 as /tmp's: the unix-socket tests reach theirs as another user.
const testTemp = mkdtempSync(join(tmpdir(), 'bearer-sidecar-tests-'));
chmodSync(testTemp, 0o1777);
const removeTestTemp = () => rmSync(testTemp, { recursive: true, force: true, maxRetries: 3 });
process.on('SIGINT', () => {
  removeTestTemp();
  process.exit(130);
});

const results = [];
const list = runtimes();
const onceOn = list[list.length - 1].version;
for (const runtime of list) results.push(await runOn(runtime, files, options, onceOn));

if (results.length > 1) {
  process.stdout.write(`\n# ==== both runtimes ====\n`);
  process.stdout.write(`ℹ runtimes ${results.map((r) => `Node ${r.runtime.version} ${r.code === 0 ? 'passed' : 'FAILED'}`).join(', ')}\n`);
  // A runtime that failed without counting a failure (it crashed, or died before its summary)
  // counts as one, so that the summed `ℹ fail` is never 0 when the exit code is not.
  for (const r of results) if (r.code !== 0 && !r.summary.fail) r.summary.fail = 1;
  for (const key of summaryKeys) {
    const total = results.reduce((sum, r) => sum + (r.summary[key] ?? 0), 0);
    process.stdout.write(`ℹ ${key} ${key === 'duration_ms' ? total.toFixed(3) : total}\n`);
  }
}
removeTestTemp();
process.exit(results.every((r) => r.code === 0) ? 0 : 1);
