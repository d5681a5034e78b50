// Config test helpers: files in a fresh temporary directory, and the problems a config is rejected with.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
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
