// How the CLI applies its runtime settings (settings.ts) to its own process, first thing in cli.ts,
// before the heavy modules load. Settings that must be there before the process starts (a node
// flag V8 reads at start-up, a malloc variable glibc reads at its first call) are applied by
// re-executing the same program with them (process.execve, Node 22.15+ and 23.11+): the PID stays
// (PID 1 in a container stays PID 1), and so do signal handling and the open descriptors. Where
// Node has no execve, the sidecar runs without them and says so in one line at start (main.ts,
// notAppliedMessage). The V8 flags settable from inside are set here in any case. A re-execution
// costs one more start of node (~95 ms CPU and ~85 ms to ready on a quiet 2-CPU machine, about one bare
// `node -e 0`; docs/deployment.md, "Runtime settings").
//
// Only `serve` re-executes: --help, --version, `check` and `token` are short-lived, and a worker
// of `workers: N` is forked with the settings on its command line (workers/primary.ts).
//
// This file is imported by dist/cli.js as it is (not bundled): it loads nothing but settings.ts
// and node:v8.

import { setFlagsFromString } from 'node:v8';
import { tuning, isTuningName, tuningVariable, settingOf, type Tuning, type TuningName } from './settings.js';

/** Set in the environment of the re-executed process: it never re-executes again. Removed from process.env at once. */
export const reexecutedVariable = 'BEARER_SIDECAR_REEXECUTED';

/** What cli.ts left for main.ts (a global: cli.js and the bundle each have a copy of this module). */
const outcomeKey = Symbol.for('bearer-sidecar.launch');

export interface LaunchOutcome {
  readonly tuning: TuningName;
  /** Settings of the profile this process runs without (`--flag=value`, `NAME=value`). */
  readonly notApplied: readonly string[];
  /** Why (no process.execve, or its error). */
  readonly reason?: string;
}

/** What this process needs to run with a profile, less what the user set. */
export interface LaunchPlan {
  readonly tuning: Tuning;
  /** Node flags it lacks: for node's command line (a re-execution, or a worker's execArgv). */
  readonly nodeFlags: readonly string[];
  /** Variables it lacks: for its environment (a re-execution, or a worker's). */
  readonly environment: Readonly<Record<string, string>>;
  /** V8 flags to set from inside (setFlagsFromString). */
  readonly v8Flags: readonly string[];
}

/** A flag's name as V8 and Node compare them: `--max_semi_space_size=4` and `--no-max-semi-space-size` are `max-semi-space-size`. */
function flagName(flag: string): string {
  return flag.replace(/^--?(no-)?/, '').split('=')[0]!.replaceAll('_', '-');
}

/** The node flags the user gave: node's command line (execArgv) and NODE_OPTIONS. */
function givenFlags(execArgv: readonly string[], env: NodeJS.ProcessEnv): Set<string> {
  const fromOptions = (env.NODE_OPTIONS ?? '').split(/\s+/).filter((word) => word.startsWith('-'));
  return new Set([...execArgv, ...fromOptions].map(flagName));
}

/** Whether the user set malloc's variable already: MALLOC_X_ itself, or its glibc tunable (GLIBC_TUNABLES=glibc.malloc.x=...). */
function givenVariable(name: string, env: NodeJS.ProcessEnv): boolean {
  if (env[name] !== undefined) return true;
  const tunable = /^MALLOC_([A-Z_]+?)_?$/.exec(name)?.[1];
  return tunable !== undefined && (env.GLIBC_TUNABLES ?? '').split(':').some((t) => t.startsWith(`glibc.malloc.${tunable.toLowerCase()}=`));
}

/** What a profile adds to a process started with `execArgv` and `env`: never a setting the user gave. */
export function launchPlan(profile: TuningName, execArgv: readonly string[], env: NodeJS.ProcessEnv): LaunchPlan {
  const settings = tuning(profile);
  const given = givenFlags(execArgv, env);
  const missing = (flags: readonly string[]) => flags.filter((flag) => !given.has(flagName(flag)));
  return {
    tuning: settings,
    nodeFlags: missing(settings.nodeFlags),
    environment: Object.fromEntries(Object.entries(settings.environment).filter(([name]) => !givenVariable(name, env))),
    v8Flags: missing(settings.v8Flags),
  };
}

/** The options of main.ts that take a value (to find the verb without parsing everything). */
const valued = new Set(['-c', '--config', '--route', '--tuning']);

/** The command line's verb and --tuning, read as main.ts's parseArgs reads them; `help` for -h/--help/-v/--version. */
export function readCommandLine(argv: readonly string[]): { verb: string; tuning: string | undefined } {
  let verb: string | undefined;
  let profile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      verb ??= argv[i + 1];
      break;
    }
    if (['-h', '--help', '-v', '--version'].includes(arg)) return { verb: 'help', tuning: profile };
    if (arg.startsWith('--tuning=')) profile = arg.slice('--tuning='.length);
    else if (valued.has(arg)) {
      if (arg === '--tuning') profile = argv[i + 1];
      i += 1;
    } else if (!arg.startsWith('-')) verb ??= arg;
  }
  return { verb: verb ?? 'serve', tuning: profile };
}

/** The profile asked for: --tuning, else BEARER_SIDECAR_TUNING, else `default`. Not checked (main.ts reports a bad one). */
export function requestedTuning(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag ?? env[tuningVariable] ?? 'default';
}

interface LaunchProcess {
  readonly argv: readonly string[];
  readonly argv0: string;
  readonly execArgv: readonly string[];
  readonly execPath: string;
  readonly env: NodeJS.ProcessEnv;
  readonly version: string;
  readonly execve?: ((file: string, args?: readonly string[], env?: NodeJS.ProcessEnv) => never) | undefined;
}

/**
 * Applies the profile the command line and environment ask for to this process: re-executes it
 * with the settings it lacks (never returns then), or records what it runs without; sets the V8
 * flags. Called by cli.ts before anything else.
 */
export function applyRuntimeSettings(proc: LaunchProcess = process as unknown as LaunchProcess, setFlag: (flag: string) => void = setFlagsFromString): LaunchOutcome | undefined {
  const reexecuted = proc.env[reexecutedVariable] !== undefined;
  delete proc.env[reexecutedVariable];
  const { verb, tuning: flag } = readCommandLine(proc.argv.slice(2));
  const requested = requestedTuning(flag, proc.env);
  if (!isTuningName(requested)) return undefined; // main.ts says what is wrong
  const plan = launchPlan(requested, proc.execArgv, proc.env);
  const lacking = [...plan.nodeFlags, ...Object.entries(plan.environment).map(([name, value]) => `${name}=${value}`)];
  // A worker is forked with the settings (primary.ts); short-lived verbs do not pay a re-execution.
  const restart = lacking.length > 0 && verb === 'serve' && proc.env.BSC_WORKER_SLOT === undefined;
  let reason: string | undefined;
  if (restart && reexecuted) reason = 're-executed, yet the settings are missing';
  else if (restart && typeof proc.execve !== 'function') reason = `Node ${proc.version} cannot re-execute itself (process.execve: Node 22.15+, 23.11+)`;
  else if (restart) {
    try {
      proc.execve?.(proc.execPath, [proc.argv0, ...proc.execArgv, ...plan.nodeFlags, ...proc.argv.slice(1)], { ...proc.env, ...plan.environment, [reexecutedVariable]: '1' });
    } catch (err) {
      reason = `re-executing failed: ${(err as Error).message}`;
    }
  }
  // Before any WebAssembly is compiled.
  for (const v8Flag of plan.v8Flags) setFlag(v8Flag);
  const outcome: LaunchOutcome = { tuning: requested, notApplied: restart ? lacking : [], ...(reason ? { reason } : {}) };
  (globalThis as Record<symbol, unknown>)[outcomeKey] = outcome;
  return outcome;
}

/** What applyRuntimeSettings recorded in this process (undefined when it did not run: the library, a test). */
export function launchOutcome(): LaunchOutcome | undefined {
  return (globalThis as Record<symbol, unknown>)[outcomeKey] as LaunchOutcome | undefined;
}

/** The start-up line for settings this process runs without: each one, what that costs, and the fix. */
export function notAppliedMessage(outcome: LaunchOutcome, cliPath: string): string | undefined {
  if (outcome.notApplied.length === 0) return undefined;
  const costs = outcome.notApplied.map((value) => `${value}: ${settingOf(value)?.withoutIt ?? 'not measured'}`);
  const flags = outcome.notApplied.filter((value) => value.startsWith('-'));
  const variables = outcome.notApplied.filter((value) => !value.startsWith('-'));
  const command = [...variables, 'node', ...flags, cliPath].join(' ');
  return `running without the runtime settings ${outcome.notApplied.join(' ')} of tuning ${outcome.tuning}: ${outcome.reason}. Measured without them: ${costs.join('; ')}. Fix: start it as \`${command}\`, or use Node 22.15 or later`;
}
