// Notices when watched files change: file-backed credentials, so that a token request that failed
// with the old ones (invalid_client before a rotated Secret reached this pod) is retried at once
// instead of after its backoff (the files are read again at every token request anyway; this only
// shortens the wait); and, with --watch-config, the config file, which is then reloaded.
//
// Kubernetes updates a mounted Secret or ConfigMap by writing a new timestamped directory and
// renaming the `..data` symlink over the old one; the file itself is a symlink through `..data`
// and is never written. Editors, too, often write a new file and rename it over the old one. So
// the directory is watched, not the file, and a change is confirmed by reading the contents again
// (compared by hash, never kept or logged) before anyone is told.

import { createHash } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
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

/** A file whose content is watched; read() gives what counts (a secret's value, a config's text). */
interface WatchedFile {
  readonly file: string | undefined;
  read(): string;
}

/** The log lines of one kind of watch. */
interface WatchMessages {
  readonly changed: string;
  readonly cannotWatch: string;
}

export function watchSecretFiles(sources: readonly SecretSource[], onChange: () => void, options: SecretWatchOptions = {}): SecretWatch {
  return watchFiles(sources, onChange, options, {
    changed: 'credential files changed',
    cannotWatch: 'cannot watch credential files; they are still read at every token request',
  });
}

/** Calls `onChange` when the config file's text changes (--watch-config). */
export function watchConfigFile(file: string, onChange: () => void, options: SecretWatchOptions = {}): SecretWatch {
  return watchFiles([{ file, read: () => readFileSync(file, 'utf8') }], onChange, options, {
    changed: 'config file changed; reloading',
    cannotWatch: 'cannot watch the config file; reload it with SIGHUP',
  });
}

function watchFiles(sources: readonly WatchedFile[], onChange: () => void, options: SecretWatchOptions, messages: WatchMessages): SecretWatch {
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
      logger?.info({ files }, messages.changed);
      onChange();
    }, settleMs);
    timer.unref();
  };

  const cannotWatch = (dir: string, err: unknown) => logger?.warn({ dir, code: (err as NodeJS.ErrnoException).code }, messages.cannotWatch);
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
