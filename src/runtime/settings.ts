// The runtime settings the sidecar applies to its own process: the single definition (issue 21).
// Every launcher (the installed bin through any `env`, `node dist/cli.js`, `npx`, `npm start`, the
// image's ENTRYPOINT, the systemd unit) runs the same program, and the program applies these
// itself (launch.ts, from cli.ts); each `workers: N` child is forked with the same ones
// (workers/primary.ts). Nothing else carries a copy. The benchmark enumerates `tuningProfiles`.
//
// A profile is chosen with BEARER_SIDECAR_TUNING or `--tuning` (the flag wins): `default`, `lean`,
// or `none` (V8's and glibc's defaults, no collections of our own: the baseline the others are
// measured against). A setting the user set already (the same node flag on node's command line or
// in NODE_OPTIONS, the same malloc variable in the environment) is never overridden.
//
// The values below are where to change them: each is measured on Node 24 (the image's) on a 2-CPU
// machine, small requests unless said otherwise (BENCHMARKS.md has the runs; issue 14 and 21).

/** The environment variable that picks the profile. */
export const tuningVariable = 'BEARER_SIDECAR_TUNING';

/** The profiles, in the order the benchmark lists them. */
export const tuningNames = ['default', 'lean', 'none'] as const;
export type TuningName = (typeof tuningNames)[number];

/** One setting: how it is applied, why, and what running without it costs. */
export interface RuntimeSetting {
  /**
   * `node-flag`: on node's command line (V8 sizes its heap before any JavaScript runs, so the
   * process re-executes itself to add one); `v8-flag`: set from inside (v8.setFlagsFromString)
   * before any WebAssembly is compiled; `environment`: a variable glibc's malloc reads at its first
   * call (a re-execution too); `collection`: a collector of ours the process starts.
   */
  readonly kind: 'node-flag' | 'v8-flag' | 'environment' | 'collection';
  /** `--flag=value`, `NAME=value`, or the collection's name. */
  readonly value: string;
  readonly why: string;
  /** What running without it costs, as measured; the start-up line says it where it cannot be applied. */
  readonly withoutIt: string;
}

/** Every setting a profile may hold. */
export const runtimeSettings = {
  // V8 sizes its young generation before any JavaScript runs (v8.setFlagsFromString has no effect
  // on it). Measured with 100 connections of small requests (issue 14): a sidecar that idles at
  // ~80 MB held ~165-180 MB after 10 s without it, ~115-130 MB with it; `node dist/cli.js` without
  // it peaked at 206 MiB (issue 21).
  youngGeneration: {
    kind: 'node-flag',
    value: '--max-semi-space-size=4',
    why: "V8's young generation at most 2 × 4 MB. Node 24's V8 grows it to 2 × 64 MB under load and keeps it; it also fixes the size in a container, where under a memory limit of 512 MiB or less V8 picks 2 × 1 MB by itself and garbage collection takes twice the CPU",
    withoutIt: "peak RSS ~206 MiB instead of < 128 MiB under 100 connections for 10 s (Node 24, whose V8 grows the young generation to 2 × 64 MB; Node 20's grows it to 2 × 16 MB)",
  },
  // How much a WebAssembly function runs in baseline code (Liftoff) before V8 optimises it
  // (TurboFan) in a background thread. The sidecar's only WebAssembly is undici's HTTP parser. At
  // V8's default budget a single token fetch uses it up, so every start optimised llhttp's 33 KB
  // parse function at once, though an idle sidecar may parse one response an hour; that compile's
  // ~30 MB of scratch memory sits in a worker thread's malloc arena, and in about half the starts
  // glibc kept ~10 MB of it (issue 7). With this budget a token fetch uses about 1 % of it and
  // proxied traffic uses it up within a few hundred requests: a busy sidecar runs optimised code as
  // before (no change in req/s or CPU per request in an A/B run). Set from inside, no re-execution;
  // Node refuses it in NODE_OPTIONS, so a user's own is one on node's command line.
  wasmTieringBudget: {
    kind: 'v8-flag',
    value: '--wasm-tiering-budget=1000000000',
    why: "V8 optimises undici's WebAssembly HTTP parser (llhttp) once it is busy, not after the first token fetch: that compile needs ~30 MB of scratch memory, of which glibc kept ~10 MB in about half the starts",
    withoutIt: 'idle RSS 70 or 80 MB at random instead of 70',
  },
  // Ignored by other C libraries (musl). Issue 14 measured its memory gain; issue 21 its price,
  // which is why the default profile leaves it out.
  mallocMmapThreshold: {
    kind: 'environment',
    value: 'MALLOC_MMAP_THRESHOLD_=32768',
    why: "blocks of 32 KiB and more (the 64 KiB socket read buffers) are mapped and unmapped on their own instead of being carved out of malloc's arenas, where the freed ones stay resident after a load. It costs an mmap/munmap pair with fresh page faults for every such buffer: 1 MiB bodies ran 6× slower (116-149 vs 650-880 req/s at 10 connections) and small requests took +27 % CPU",
    withoutIt: 'RSS 30 s after a load 101-107 MiB instead of 83-102 (medians of two runs)',
  },
  idleCollection: {
    kind: 'collection',
    value: 'idle-gc',
    why: 'a full garbage collection at the first quiet moment after the process grew gives back what a burst of traffic left (runtime/idle-gc.ts)',
    withoutIt: 'RSS stays at its peak after a load (145 MB 30 s later, where idle is 70)',
  },
  streamCollection: {
    kind: 'collection',
    value: 'stream-gc',
    why: "a young-generation collection every 8 MiB of body forwarded frees a long body's chunks as they pass (runtime/stream-gc.ts)",
    withoutIt: 'streaming 1 GiB each way grew RSS by ~44 MB instead of ~22',
  },
} as const satisfies Record<string, RuntimeSetting>;

export type SettingName = keyof typeof runtimeSettings;

/**
 * The settings of each profile, by name. Chosen from the frontier run (`npm run bench -- --frontier`,
 * BENCHMARKS.md "Frontier of memory and speed"): semi-spaces 4/8/16 MB or V8's, the malloc mmap
 * threshold or 1 or 2 arenas, the collections on or off, side by side on Node 24 (two runs on a quiet
 * machine, 60572a0 and d9e3abf). No candidate held every target: without the mmap threshold RSS
 * stayed above 100 MiB 30 s after a load, with it large bodies and CPU per request pay several
 * times over; one malloc arena (MALLOC_ARENA_MAX=1) held both memory targets in a 7-round A/B but
 * cost +16 % CPU per request at 100 connections. So the default favours CPU and latency and `lean`
 * is the one switch for memory.
 */
export const tuningProfiles: Readonly<Record<TuningName, readonly SettingName[]>> = {
  // What users feel first (CPU and latency), memory bounded: no malloc variable (6× slower 1 MiB bodies).
  default: ['youngGeneration', 'wasmTieringBudget', 'idleCollection', 'streamCollection'],
  // The smallest memory: the default and malloc's mmap threshold, paid for in CPU on large bodies.
  lean: ['youngGeneration', 'wasmTieringBudget', 'mallocMmapThreshold', 'idleCollection', 'streamCollection'],
  // V8's and glibc's defaults, no collections of ours.
  none: [],
};

/** A profile's settings, sorted by how they are applied. */
export interface Tuning {
  readonly name: TuningName;
  /** For node's command line. */
  readonly nodeFlags: readonly string[];
  /** Set with v8.setFlagsFromString before any WebAssembly is compiled. */
  readonly v8Flags: readonly string[];
  /** Variables for the environment (glibc's malloc). */
  readonly environment: Readonly<Record<string, string>>;
  readonly idleCollection: boolean;
  readonly streamCollection: boolean;
}

export function tuning(name: TuningName): Tuning {
  const settings = tuningProfiles[name].map((setting) => runtimeSettings[setting] as RuntimeSetting);
  const values = (kind: RuntimeSetting['kind']) => settings.filter((s) => s.kind === kind).map((s) => s.value);
  return {
    name,
    nodeFlags: values('node-flag'),
    v8Flags: values('v8-flag'),
    environment: Object.fromEntries(values('environment').map((assignment) => assignment.split(/=(.*)/s, 2) as [string, string])),
    idleCollection: tuningProfiles[name].includes('idleCollection'),
    streamCollection: tuningProfiles[name].includes('streamCollection'),
  };
}

export function isTuningName(value: string): value is TuningName {
  return (tuningNames as readonly string[]).includes(value);
}

/** The CLI's message for a name that is no profile's; `from`: where it came from (--tuning, the variable). */
export function badTuningMessage(value: string, from: string): string {
  return `${from} must be ${tuningNames.slice(0, -1).join(', ')} or ${tuningNames.at(-1)}, not "${value}"`;
}

/** The setting a flag or variable is (for the message that names one not applied). */
export function settingOf(value: string): RuntimeSetting | undefined {
  return Object.values(runtimeSettings).find((s) => s.value === value);
}
