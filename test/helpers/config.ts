// Config test helpers: files in a fresh temporary directory, a directory laid out as a mounted
// Kubernetes Secret, and the problems a config is rejected with.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/errors.js';

/** A fresh temporary directory and a writer of files in it (returns the file's path). */
export function tempFiles(prefix: string): { dir: string; file(name: string, text: string): string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    file(name, text) {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
  };
}

/** The problem lines of the ConfigError that `fn` must throw. */
export function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'BSC_CONFIG_INVALID');
    return [...err.problems];
  }
  assert.fail('expected the config to be rejected');
}

/** A directory laid out as the kubelet lays out a mounted Secret. */
export function secretVolume(files: Record<string, string>): { dir: string; rotate(files: Record<string, string>): void } {
  const dir = mkdtempSync(join(tmpdir(), 'bsc-secret-'));
  let generation = 0;
  let current = '';
  const writeGeneration = (values: Record<string, string>) => {
    generation += 1;
    const name = `..2026_11_25_12_00_0${generation}.000000001`;
    mkdirSync(join(dir, name));
    for (const [file, value] of Object.entries(values)) writeFileSync(join(dir, name, file), value);
    return name;
  };
  current = writeGeneration(files);
  symlinkSync(current, join(dir, '..data'));
  for (const file of Object.keys(files)) symlinkSync(join('..data', file), join(dir, file));
  return {
    dir,
    rotate(values) {
      const previous = current;
      current = writeGeneration(values);
      symlinkSync(current, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data')); // the atomic swap
      rmSync(join(dir, previous), { recursive: true });
    },
  };
}
