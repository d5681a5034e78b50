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
import { lstatSync, readFileSync, readlinkSync, watch, type FSWatcher } from 'node:fs';
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

export interface ConfigWatchOptions extends SecretWatchOptions {
  /**
   * The text the config in force was loaded from (read before loading it). A file that differs
   * from it when the watch starts (an edit between loading and listening) is a change at once.
   */
  readonly loadedText?: string;
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
export function watchConfigFile(file: string, onChange: () => void, options: ConfigWatchOptions = {}): SecretWatch {
  return watchFiles([{ file, read: () => readFileSync(file, 'utf8') }], onChange, options, {
    changed: 'config file changed; reloading',
    cannotWatch: 'cannot watch the config file; reload it with SIGHUP',
  }, options.loadedText === undefined ? undefined : [options.loadedText]);
}

/** `baseline`: the contents the caller already acts on, when they may be older than the files now. */
function watchFiles(sources: readonly WatchedFile[], onChange: () => void, options: SecretWatchOptions, messages: WatchMessages, baseline?: readonly string[]): SecretWatch {
  const files = sources.flatMap((source) => (source.file ? [resolve(source.file)] : []));
  if (files.length === 0) return { close() {} };
  const { logger, settleMs = 100 } = options;
  const fingerprint = (contents: readonly (() => string)[]) => {
    const hash = createHash('sha256');
    for (const read of contents) {
      try {
        hash.update(read()).update('\0');
      } catch {
        hash.update('(unreadable)\0'); // mid-swap; the next event reads it again
      }
    }
    return hash.digest('hex');
  };
  const current = () => fingerprint(sources.map((source) => () => source.read()));

  let last = baseline ? fingerprint(baseline.map((text) => () => text)) : current();
  let timer: NodeJS.Timeout | undefined;
  const settle = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      // A symlink retargeted may lead somewhere new: watch there too.
      watchDirectories();
      const now = current();
      if (now === last) return;
      last = now;
      logger?.info({ files }, messages.changed);
      onChange();
    }, settleMs);
    timer.unref();
  };

  const cannotWatch = (dir: string, err: unknown) => logger?.warn({ dir, code: (err as NodeJS.ErrnoException).code }, messages.cannotWatch);
  const watchers = new Map<string, FSWatcher>();
  const ownDirs = new Set(files.map((file) => dirname(file)));
  /**
   * The directory of each file, and of every link on the way to what it points at (a symlink into
   * another directory is edited there). Those of links are followed as they change: a retargeted
   * link's old directory is let go, and one that goes away (a Kubernetes volume's old timestamped
   * directory) is no reason to warn.
   */
  function watchDirectories(): void {
    const wanted = new Set(files.flatMap((file) => linkDirectories(file)));
    for (const [dir, watcher] of watchers) {
      if (wanted.has(dir)) continue;
      watcher.close();
      watchers.delete(dir);
    }
    for (const dir of wanted) {
      if (watchers.has(dir)) continue;
      try {
        const watcher = watch(dir, { persistent: false }, settle);
        watcher.on('error', (err) => {
          if (ownDirs.has(dir)) cannotWatch(dir, err);
          watcher.close();
          watchers.delete(dir);
        });
        watchers.set(dir, watcher);
      } catch (err) {
        if (ownDirs.has(dir)) cannotWatch(dir, err);
      }
    }
  }
  watchDirectories();
  // The files may have changed since the caller read them.
  if (baseline) settle();
  return {
    close() {
      clearTimeout(timer);
      for (const watcher of watchers.values()) watcher.close();
    },
  };
}

/** The directories of `file` and of each symlink it leads through, in order (at most 16 links). */
function linkDirectories(file: string): string[] {
  const dirs = [dirname(file)];
  let path = file;
  for (let hop = 0; hop < 16; hop++) {
    let target: string;
    try {
      if (!lstatSync(path).isSymbolicLink()) break;
      target = readlinkSync(path);
    } catch {
      break; // gone, or mid-swap: the next event looks again
    }
    path = resolve(dirname(path), target);
    dirs.push(dirname(path));
  }
  return dirs;
}
