// Notices when file-backed credentials change, so that a token request that failed with the old
// ones (invalid_client before a rotated Secret reached this pod) is retried at once instead of
// after its backoff. The files are read again at every token request anyway; this only shortens
// the wait.
//
// Kubernetes updates a mounted Secret by writing a new timestamped directory and renaming the
// `..data` symlink over the old one; the file itself is a symlink through `..data` and is never
// written. So the directory is watched, not the file, and a change is confirmed by reading the
// values again (compared by hash, never kept or logged) before anyone is told.

import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { SecretSource } from './secret.js';

export interface SecretWatch {
  close(): void;
}

export interface SecretWatchOptions {
  readonly logger?: Logger;
  /** Events come in bursts (a symlink swap is several); they are read once this long after the last. */
  readonly settleMs?: number;
}

export function watchSecretFiles(sources: readonly SecretSource[], onChange: () => void, options: SecretWatchOptions = {}): SecretWatch {
  const files = sources.flatMap((source) => (source.file ? [resolve(source.file)] : []));
  if (files.length === 0) return { close() {} };
  const { logger, settleMs = 100 } = options;
  const fingerprint = () => {
    const hash = createHash('sha256');
    for (const source of sources) {
      try {
        hash.update(source.read()).update('\0');
      } catch {
        hash.update('(unreadable)\0'); // mid-swap; the next event reads it again
      }
    }
    return hash.digest('hex');
  };

  let last = fingerprint();
  let timer: NodeJS.Timeout | undefined;
  const settle = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const now = fingerprint();
      if (now === last) return;
      last = now;
      logger?.info({ files }, 'credential files changed');
      onChange();
    }, settleMs);
    timer.unref();
  };

  const cannotWatch = (dir: string, err: unknown) =>
    logger?.warn({ dir, code: (err as NodeJS.ErrnoException).code }, 'cannot watch credential files; they are still read at every token request');
  const watchers: FSWatcher[] = [];
  for (const dir of new Set(files.map((file) => dirname(file)))) {
    try {
      const watcher = watch(dir, { persistent: false }, settle);
      watcher.on('error', (err) => {
        cannotWatch(dir, err);
        watcher.close();
      });
      watchers.push(watcher);
    } catch (err) {
      cannotWatch(dir, err);
    }
  }
  return {
    close() {
      clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
    },
  };
}
