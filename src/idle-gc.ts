// Gives memory back when traffic stops: one full garbage collection at the first quiet moment after
// the process grew (issue 14). The CLI starts it (main.ts, `serve`); the library (dist/index.js)
// leaves the host process's V8 alone.
//
// V8 collects garbage only when JavaScript allocates. After a burst of traffic the young
// generation keeps the size the burst grew it to, and the buffers of finished requests wait in the
// heap for a collection that an idle sidecar may not need for hours: RSS stayed at its peak 30 s
// after a load (Node 24: 145 MB with 8 MB semi-spaces, where idle is 70). A full collection when
// the event loop has gone quiet shrinks the young generation and frees those buffers.
//
// The check runs every `intervalMs` on an unref'd timer, nothing on the request path: the event
// loop's utilisation over the last interval (below `quietUtilization`: no traffic to speak of) and
// RSS (more than `growthBytes` above its level after the last collection, or at start). After a
// collection that level is the new RSS, so a process whose memory stays up (a bigger working set,
// memory the allocator keeps) is not collected again and again; only new growth triggers one.

import { performance } from 'node:perf_hooks';
import { v8Gc } from './v8-gc.js';

export interface IdleGcOptions {
  /** How often to look, ms (default 5000). */
  readonly intervalMs?: number;
  /**
   * The looks for start-up's garbage, ms apart (default 1000): from the start, one every `firstCheckMs`
   * until the first quiet one collects (at most 30 of them), then one every `intervalMs`. The second
   * after listening is seldom quiet (the first token, the last of start-up's compilation).
   */
  readonly firstCheckMs?: number;
  /** Growth of RSS over its level after the last collection that makes one worth it, bytes (default 8 MiB). */
  readonly growthBytes?: number;
  /** Event-loop utilisation (0..1) under which the last interval counts as quiet (default 0.01). */
  readonly quietUtilization?: number;
}

export interface IdleGcProbes {
  /** Resident set size now, bytes. */
  rss(): number;
  /** Event-loop utilisation (0..1) since the previous call. */
  utilization(): number;
  /** A full, blocking garbage collection. */
  collect(): void;
}

/** The decision, without timers: `tick()` collects when the last interval was quiet and RSS grew; returns whether it did. */
export function idleCollector(probes: IdleGcProbes, options: IdleGcOptions = {}): { tick(): boolean } {
  const growth = options.growthBytes ?? 8 * 1024 * 1024;
  const quiet = options.quietUtilization ?? 0.01;
  // No level yet: the first quiet interval collects (start-up's garbage: config parsing, module
  // compilation, the first token fetch), and sets the level.
  let level = -Infinity;
  return {
    tick() {
      const utilization = probes.utilization();
      const rss = probes.rss();
      if (utilization >= quiet || rss <= level + growth) {
        // Memory that went down (the allocator or V8 gave some back) lowers the bar for the next collection.
        if (level !== -Infinity) level = Math.min(level, rss);
        return false;
      }
      probes.collect();
      level = probes.rss();
      return true;
    },
  };
}

/**
 * The collection V8 makes under memory pressure (v8-gc.ts): besides the garbage, it shrinks the
 * young generation a burst grew and gives back the pages V8 keeps pooled. Measured on Node 24: idle
 * RSS 77 → 70.5 MB, where a plain full collection gave back nothing (issue 14).
 */
export function fullCollection(): () => void {
  const gc = v8Gc();
  // V8 11 (Node 20) has no such flavor, and takes options differently (v8-gc.ts): a plain full collection there.
  if (Number.parseInt(process.versions.v8, 10) < 12) return () => gc();
  return () => gc({ type: 'major', flavor: 'last-resort' });
}

/** Starts the check on an unref'd timer (it never keeps the process alive); `stop()` ends it. */
export function startIdleGc(options: IdleGcOptions = {}): { stop(): void } {
  const collect = fullCollection();
  let last = performance.eventLoopUtilization();
  const collector = idleCollector(
    {
      rss: () => process.memoryUsage.rss(),
      utilization: () => {
        const now = performance.eventLoopUtilization();
        const { utilization } = performance.eventLoopUtilization(now, last);
        last = now;
        return utilization;
      },
      collect,
    },
    options,
  );
  let timer: NodeJS.Timeout | undefined;
  let looks = 0;
  const first = setInterval(() => {
    looks += 1;
    if (!collector.tick() && looks < 30) return;
    clearInterval(first);
    timer = setInterval(() => collector.tick(), options.intervalMs ?? 5000);
    timer.unref();
  }, options.firstCheckMs ?? 1000);
  first.unref();
  return {
    stop: () => {
      clearInterval(first);
      clearInterval(timer);
    },
  };
}
