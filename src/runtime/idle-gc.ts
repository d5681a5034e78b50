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
  /** A full, blocking garbage collection; `startUp`: the first one, of start-up's garbage. */
  collect(startUp: boolean): void;
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
      probes.collect(level === -Infinity);
      level = probes.rss();
      return true;
    },
  };
}

/**
 * A full collection. The first, of start-up's garbage, is the one V8 makes under memory pressure
 * (v8-gc.ts): it also shrinks the young generation to its smallest size, gives back the pages V8
 * keeps pooled and drops compiled code, none of which start-up's work needs again. Measured on Node
 * 24: idle RSS 73.5 → 66.2 MB, where a plain full collection gave back nothing (issue 14). After a
 * burst it is a plain one: dropping the compiled code of the request path made the next burst pay
 * for compiling it again, ~1.5-1.8× the CPU per request for seconds (10 rounds of 3 s after 12 s idle:
 * 203 vs 125 µs at 100 connections), and the young generation grows back under load within a second.
 */
export function fullCollection(): (startUp: boolean) => void {
  const gc = v8Gc();
  // V8 11 (Node 20) has no such flavor and would make a minor collection of these options (v8-gc.ts).
  const memoryPressure = Number.parseInt(process.versions.v8, 10) >= 12;
  return (startUp) => (startUp && memoryPressure ? gc({ type: 'major', flavor: 'last-resort' }) : gc());
}

/** This process's RSS, event-loop utilisation and fullCollection. */
export function processProbes(): IdleGcProbes {
  const collect = fullCollection();
  let last = performance.eventLoopUtilization();
  return {
    rss: () => process.memoryUsage.rss(),
    utilization: () => {
      const now = performance.eventLoopUtilization();
      const { utilization } = performance.eventLoopUtilization(now, last);
      last = now;
      return utilization;
    },
    collect,
  };
}

/** Starts the check on an unref'd timer (it never keeps the process alive); `stop()` ends it. `probes`: a test's. */
export function startIdleGc(options: IdleGcOptions = {}, probes: IdleGcProbes = processProbes()): { stop(): void } {
  const collector = idleCollector(probes, options);
  const firstMs = options.firstCheckMs ?? 1000;
  let looks = 0;
  const look = (): void => {
    looks += 1;
    timer = !collector.tick() && looks < 30 ? setTimeout(look, firstMs) : setInterval(() => collector.tick(), options.intervalMs ?? 5000);
    timer.unref();
  };
  let timer = setTimeout(look, firstMs);
  timer.unref();
  return {
    stop: () => clearTimeout(timer), // a Timeout either way: clearTimeout clears an interval too
  };
}
