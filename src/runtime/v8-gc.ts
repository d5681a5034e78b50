// V8's gc() for the CLI's own memory management (idle-gc.ts, stream-gc.ts), without `--expose-gc` on
// the command line: the flag is set just long enough to create one context that has `gc`, so neither
// the main context nor any later one sees a global `gc`. One context for the process, made at the
// first call (a context costs memory of its own).
//
// The options are V8's (src/extensions/gc-extension.cc): `type` 'minor' collects the young
// generation; 'major' everything, and with `flavor: 'last-resort'` it is the collection V8 makes
// under memory pressure (Heap::CollectAllAvailableGarbage): several passes that also shrink the
// young generation to its smallest size, give pooled pages back and drop compiled code that can
// be compiled again. V8 11 (Node 20) knows only `type: 'minor'`: any other options object is a
// young-generation collection there (gc({ type: 'major' }) freed nothing, measured), while gc()
// without options is a full collection on every version.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface V8GcOptions {
  readonly type: 'minor' | 'major';
  readonly flavor?: 'regular' | 'last-resort';
}

let gc: ((options?: V8GcOptions) => void) | undefined;

/** V8's gc(options), synchronous. */
export function v8Gc(): (options?: V8GcOptions) => void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    try {
      gc = runInNewContext('gc') as (options?: V8GcOptions) => void;
    } finally {
      setFlagsFromString('--no-expose-gc');
    }
  }
  return gc;
}
