// How many CPUs this process may use: what the kernel lets it run on (os.availableParallelism,
// which honours the affinity mask), cut to the container's CPU quota (cgroup v2 cpu.max, or v1
// cpu.cfs_quota_us / cpu.cfs_period_us), rounded up and at least 1. `workers: auto` starts that
// many workers: in a pod limited to 2 CPUs on a 32-core node, 2, not 32.

import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

export interface CpuOptions {
  /** Where the cgroup file system is mounted (tests give a directory of fixture files). */
  readonly cgroupRoot?: string;
  /** The CPUs the scheduler lets this process use (tests). */
  readonly parallelism?: number;
}

export function usableCpus({ cgroupRoot = '/sys/fs/cgroup', parallelism = availableParallelism() }: CpuOptions = {}): number {
  const quota = cgroupCpuQuota(cgroupRoot);
  const cpus = quota === undefined ? parallelism : Math.min(parallelism, Math.ceil(quota));
  return Math.max(1, cpus);
}

/** The CPU quota in CPUs (1.5 for 150000/100000), or undefined when there is none or it cannot be read. */
export function cgroupCpuQuota(root: string): number | undefined {
  // cgroup v2: "max 100000" (no limit) or "150000 100000".
  const v2 = read(join(root, 'cpu.max'));
  if (v2 !== undefined) {
    const [quota, period] = v2.split(/\s+/);
    return ratio(quota, period);
  }
  // cgroup v1: a quota of -1 is no limit.
  return ratio(read(join(root, 'cpu', 'cpu.cfs_quota_us')) ?? read(join(root, 'cpu.cfs_quota_us')), read(join(root, 'cpu', 'cpu.cfs_period_us')) ?? read(join(root, 'cpu.cfs_period_us')));
}

function ratio(quota: string | undefined, period: string | undefined): number | undefined {
  if (quota === undefined || period === undefined || !/^\d+$/.test(quota) || !/^\d+$/.test(period)) return undefined;
  const q = Number(quota);
  const p = Number(period);
  return q > 0 && p > 0 ? q / p : undefined;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The number of workers a config's `workers` asks for. */
export function workerCount(workers: number | 'auto', options?: CpuOptions): number {
  return workers === 'auto' ? usableCpus(options) : workers;
}
