// V8 settings the CLI applies to its own process before it loads anything else (cli.ts). The
// library (dist/index.js) leaves the host process's V8 alone.
//
// The WebAssembly tiering budget: how much a WebAssembly function runs in baseline code (Liftoff)
// before V8 optimises it (TurboFan) in a background thread. The sidecar's only WebAssembly is
// undici's HTTP parser (llhttp). At V8's default budget a single token fetch uses it up, so every
// start optimises llhttp's 33 KB parse function at once, though an idle sidecar may parse one
// response an hour. That compile needs ~30 MB of scratch memory in a worker thread's malloc arena,
// and in about half the starts glibc keeps ~10 MB of it resident: idle RSS 70 or 80 MB at random
// (issue 7; BENCHMARKS.md). With this budget a token fetch uses about 1 % of it, and proxied
// traffic uses it up within a few hundred requests, so a busy sidecar runs optimised code as
// before (no change in req/s or CPU per request in an A/B run).
export const wasmTieringBudget = 1_000_000_000;

/**
 * The flags to set for this process: none that the user set already on node's command line
 * (`node --wasm-tiering-budget=N dist/cli.js`; Node refuses this flag in NODE_OPTIONS).
 */
export function sidecarV8Flags(execArgv: readonly string[]): string[] {
  const given = execArgv.map((a) => a.replace(/^--(no-)?/, '').split('=')[0]!.replaceAll('_', '-'));
  return given.includes('wasm-tiering-budget') ? [] : [`--wasm-tiering-budget=${wasmTieringBudget}`];
}
