// `workers: auto`, the `workers` setting and the restart backoff: the CPUs this process may use from the cgroup quota
// (v2 cpu.max, v1 cfs files; rounded up, at least 1, never more than the scheduler allows), and
// the config's and BEARER_SIDECAR_WORKERS's values, bad ones named by their field or variable.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { describe, test } from 'node:test';
import { loadConfig } from '../../src/config/index.js';
import { resolveConfig } from '../../src/config/load.js';
import { cgroupCpuQuota, usableCpus, workerCount } from '../../src/runtime/cpus.js';
import { restartDelayMs } from '../../src/workers/primary.js';
import { problems, tempFiles } from '../helpers/config.js';

function cgroup(files: Record<string, string>): string {
  const { dir, file } = tempFiles('bsc-cgroup-');
  for (const [name, text] of Object.entries(files)) {
    if (name.includes('/')) mkdirSync(join(dir, name.split('/')[0] as string), { recursive: true });
    file(name, text);
  }
  return dir;
}

describe('usable CPUs (workers: auto)', () => {
  test('cgroup v2 "max 100000": no quota, the scheduler\'s CPUs', () => {
    const root = cgroup({ 'cpu.max': 'max 100000\n' });
    assert.equal(cgroupCpuQuota(root), undefined);
    assert.equal(usableCpus({ cgroupRoot: root, parallelism: 8 }), 8);
  });
  test('cgroup v2 "150000 100000": 1.5 CPUs, rounded up to 2', () => {
    const root = cgroup({ 'cpu.max': '150000 100000\n' });
    assert.equal(cgroupCpuQuota(root), 1.5);
    assert.equal(usableCpus({ cgroupRoot: root, parallelism: 8 }), 2);
  });
  test('a quota below one CPU gives 1; a quota above the CPUs there are gives the CPUs', () => {
    assert.equal(usableCpus({ cgroupRoot: cgroup({ 'cpu.max': '20000 100000' }), parallelism: 8 }), 1);
    assert.equal(usableCpus({ cgroupRoot: cgroup({ 'cpu.max': '1600000 100000' }), parallelism: 4 }), 4);
  });
  test('cgroup v1: cpu/cpu.cfs_quota_us over cpu.cfs_period_us; -1 is no quota', () => {
    assert.equal(usableCpus({ cgroupRoot: cgroup({ 'cpu/cpu.cfs_quota_us': '300000\n', 'cpu/cpu.cfs_period_us': '100000\n' }), parallelism: 16 }), 3);
    assert.equal(usableCpus({ cgroupRoot: cgroup({ 'cpu/cpu.cfs_quota_us': '-1\n', 'cpu/cpu.cfs_period_us': '100000\n' }), parallelism: 16 }), 16);
    assert.equal(usableCpus({ cgroupRoot: cgroup({ 'cpu.cfs_quota_us': '250000', 'cpu.cfs_period_us': '100000' }), parallelism: 16 }), 3);
  });
  test('no cgroup files: os.availableParallelism()', () => {
    const root = cgroup({});
    assert.equal(cgroupCpuQuota(root), undefined);
    assert.equal(usableCpus({ cgroupRoot: root }), availableParallelism());
    assert.equal(workerCount('auto', { cgroupRoot: root }), availableParallelism());
    assert.equal(workerCount(3, { cgroupRoot: root }), 3);
  });
  test('unreadable values are no quota', () => {
    assert.equal(cgroupCpuQuota(cgroup({ 'cpu.max': 'garbage' })), undefined);
    assert.equal(cgroupCpuQuota(cgroup({ 'cpu.max': '0 100000' })), undefined);
  });
});

describe('the workers setting', () => {
  const file = { routes: [{ name: 'a', upstream: 'http://127.0.0.1:1', auth: { tokenUrl: 'http://127.0.0.1:2/t', clientId: 'a', clientSecret: 'b' } }] };
  const env = { BEARER_SIDECAR_UPSTREAM: 'http://127.0.0.1:1', BEARER_SIDECAR_TOKEN_URL: 'http://127.0.0.1:2/t', BEARER_SIDECAR_CLIENT_ID: 'a', BEARER_SIDECAR_CLIENT_SECRET: 'b' };
  const problem = 'must be a whole number of at least 1, or "auto" (the CPUs this process may use)';

  test('default 1; a number; "auto"', () => {
    assert.equal(resolveConfig(file, { env: {} }).workers, 1);
    assert.equal(resolveConfig({ ...file, workers: 4 }, { env: {} }).workers, 4);
    assert.equal(resolveConfig({ ...file, workers: 'auto' }, { env: {} }).workers, 'auto');
  });
  test('0, -1, 1.5 and "x" are refused with the field path', () => {
    for (const workers of [0, -1, 1.5, 'x']) assert.deepEqual(problems(() => resolveConfig({ ...file, workers }, { env: {} })), [`workers: ${problem}`]);
  });
  test('BEARER_SIDECAR_WORKERS: without a file, and over a file\'s value; a bad value is named by the variable', () => {
    assert.equal(loadConfig(undefined, { ...env, BEARER_SIDECAR_WORKERS: 'auto' }).workers, 'auto');
    assert.equal(loadConfig(undefined, { ...env, BEARER_SIDECAR_WORKERS: '2' }).workers, 2);
    assert.equal(resolveConfig({ ...file, workers: 4 }, { env: { BEARER_SIDECAR_WORKERS: '2' } }).workers, 2);
    for (const value of ['0', '-1', 'x', '${HOME}']) assert.deepEqual(problems(() => loadConfig(undefined, { ...env, BEARER_SIDECAR_WORKERS: value })), [`BEARER_SIDECAR_WORKERS (workers: ${problem})`]);
  });
});

describe('restart backoff of a worker that exits', () => {
  test('0.5 s, doubling to 30 s while it keeps failing; back to 0.5 s once it has run 60 s', () => {
    const delays: number[] = [];
    let last: number | undefined;
    for (let i = 0; i < 9; i++) delays.push((last = restartDelayMs(last, 1_000)));
    assert.deepEqual(delays, [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    assert.equal(restartDelayMs(30_000, 59_999), 30_000);
    assert.equal(restartDelayMs(30_000, 60_000), 500);
  });
});
