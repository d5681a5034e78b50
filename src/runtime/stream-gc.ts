// Keeps a stream's memory from piling up between garbage collections (issue 14): a young-generation
// collection after every `everyBytes` of body forwarded. The CLI starts it (main.ts, `serve`, and each
// worker); the library (dist/index.js) leaves the host process's V8 alone.
//
// A body streamed through the sidecar allocates almost no JavaScript: each chunk is a Buffer whose
// bytes live outside V8's heap (malloc'd backing stores). V8 frees them only when it collects, and it
// collects when JavaScript allocates, so between two collections tens of megabytes of finished chunks
// wait in memory; the request-body chunks (~3 KB each, carved from malloc's main arena) leave it
// fragmented and it is never given back. Measured on Node 24 streaming 1 GiB each way: RSS grew
// ~50 MB over its level after a warm-up. A minor collection, which frees the chunks of the young
// generation, after every 8 MiB forwarded (at most one per 20 ms) keeps what waits to a few
// megabytes; it costs a fraction of a millisecond with the sidecar's small young generation. On the
// request path this adds one channel message and an addition per body chunk.
//
// The bytes come from undici's diagnostics channels (`undici:request:bodyChunkSent` and
// `undici:request:bodyChunkReceived`): nothing is added to forward.ts, and a process that streams
// nothing never collects. The names are global, so the channels of any copy of undici count (the
// bundle's and node_modules' alike).

import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import { v8Gc } from './v8-gc.js';

export interface StreamGcOptions {
  /** Body bytes forwarded (either way) between two collections (default 8 MiB). */
  readonly everyBytes?: number;
  /**
   * At most one collection per this many ms (default 20): many bodies at once, at a rate far beyond
   * one stream's (~400 MiB/s here, a collection every ~20 ms), collect no more often than that.
   */
  readonly minIntervalMs?: number;
  /** The clock, ms (default performance.now; a test's). */
  readonly now?: () => number;
}

/** The decision, without channels: `add(bytes)` collects once `everyBytes` have passed since the last collection and `minIntervalMs` has; returns whether it did. */
export function streamCollector(collect: () => void, options: StreamGcOptions = {}): { add(bytes: number): boolean } {
  const every = options.everyBytes ?? 8 * 1024 * 1024;
  const minInterval = options.minIntervalMs ?? 20;
  const now = options.now ?? (() => performance.now());
  let pending = 0;
  let last = -Infinity;
  return {
    add(bytes) {
      pending += bytes;
      if (pending < every) return false;
      const t = now();
      if (t - last < minInterval) return false;
      pending = 0;
      last = t;
      collect();
      return true;
    },
  };
}

/** A young-generation collection (v8-gc.ts). */
export function minorCollection(): () => void {
  const gc = v8Gc();
  return () => gc({ type: 'minor' });
}

const channels = ['undici:request:bodyChunkSent', 'undici:request:bodyChunkReceived'] as const;

/** Counts forwarded body bytes and collects every `everyBytes` (with `collect`: a test's); `stop()` unsubscribes. */
export function startStreamGc(options: StreamGcOptions = {}, collect: () => void = minorCollection()): { stop(): void } {
  const collector = streamCollector(collect, options);
  const onChunk = (message: unknown): void => {
    const chunk = (message as { chunk?: { length?: number } }).chunk;
    if (typeof chunk?.length === 'number') collector.add(chunk.length);
  };
  for (const name of channels) subscribe(name, onChunk);
  return {
    stop: () => {
      for (const name of channels) unsubscribe(name, onChunk);
    },
  };
}
