// Small helpers the benchmark scripts share (bench.mjs, ab.mjs, coldstart.mjs).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import http from 'node:http';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

/** Clock ticks per second, the unit of /proc's CPU times. */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100;
  } catch {
    return 100;
  }
})();

/** The fields of /proc/PID/stat after the command name (the first is the state), or undefined once the process is gone. */
function procStat(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds a process has used; NaN once it is gone. */
export const cpuSeconds = (pid) => {
  const f = procStat(pid);
  return f ? (Number(f[11]) + Number(f[12])) / CLK_TCK : NaN;
};

/** When a process started (clock ticks since boot): with its pid, it names one process, even after the pid is reused. */
export const startTime = (pid) => procStat(pid)?.[19];

/** A process's descendants as { pid, start } (not the process itself), to end later the very
 * processes seen now (a sidecar's workers, nginx's workers) and never a later one with a reused pid. */
export const descendantsOf = (pid) => treeOf(pid).slice(1).map((p) => ({ pid: p, start: startTime(p) })).filter((x) => x.start !== undefined);

/** SIGKILLs those of the given descendants that still run; returns how many it ended. */
export function killLeftovers(list) {
  let n = 0;
  for (const { pid, start } of list) {
    if (startTime(pid) !== start) continue;
    try {
      process.kill(pid, 'SIGKILL');
      n++;
    } catch {}
  }
  return n;
}

/** Major page faults of a process so far (majflt); NaN once it is gone. */
export const majorFaults = (pid) => {
  const f = procStat(pid);
  return f ? Number(f[9]) : NaN;
};

/** GET on a fresh connection: resolves with the status, 0 on any failure; never throws. */
export const getStatus = (url) =>
  new Promise((res) => {
    const q = http.get(url, { agent: false, timeout: 1000 }, (r) => {
      r.resume();
      r.on('end', () => res(r.statusCode));
    });
    q.on('error', () => res(0));
    q.on('timeout', () => q.destroy());
  });

/** The config the bench tools start the sidecar with: one route, log level info (one line per
 * request); `workers` only when given (a build without the field refuses it as unknown). */
export const sidecarYaml = ({ port, adminPort, route, upstream, tokenUrl, clientId, clientSecret, workers }) => `${workers === undefined ? '' : `workers: ${workers}\n`}listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: ${adminPort} }
logLevel: info
routes:
  - name: ${route}
    prefix: /
    upstream: ${upstream}
    auth:
      tokenUrl: ${tokenUrl}
      clientId: ${clientId}
      clientSecret: ${clientSecret}
`;

/**
 * How a script's first line runs node: `{ env, args }`. Builds since issue 21 have a plain
 * `#!/usr/bin/env node` (no flags: the program applies its runtime settings itself); older builds
 * carried them there, and an A/B run against one starts it as its bin did. For
 * `#!/usr/bin/env -S [NAME=VALUE...] node --a=1 --b` (env -S splits its one argument at spaces) the
 * variables env sets and the words after `node`; for `#!/path/to/node --a=1` (the kernel passes the
 * rest of the line as one argument) that argument. Quotes are not interpreted: the flags Node takes
 * need none.
 */
export function shebangCommand(text) {
  const first = text.split('\n', 1)[0];
  if (!first.startsWith('#!')) return { env: {}, args: [] };
  let words = first.slice(2).trim().split(/\s+/).filter(Boolean);
  const env = {};
  if (words[0] && /(^|\/)env$/.test(words[0])) {
    words = words.slice(1);
    while (words[0]?.startsWith('-')) {
      const w = words.shift();
      if (w === '-S' || w === '--split-string') continue;
      if (w.startsWith('-S')) words.unshift(w.slice(2)); // -Snode --flag...
    }
    while (words[0] && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0])) {
      const [name, value] = words.shift().split(/=(.*)/s);
      env[name] = value;
    }
  }
  const i = words.findIndex((w) => /(^|\/)node(\d+)?(\.exe)?$/.test(w));
  return { env, args: i < 0 ? [] : words.slice(i + 1) };
}

/** The node flags of a script's first line (shebangCommand's args). */
export const shebangNodeArgs = (text) => shebangCommand(text).args;

/**
 * How the shipped bin runs on a given node binary: `[node, [...first-line flags, cli, ...args], env]`
 * (spawn with `{ ...process.env, ...env }`). For a build since issue 21 that is `node cli.js`, and
 * the program applies its settings itself; `tuning` picks its profile (BEARER_SIDECAR_TUNING).
 */
export function binCommand(nodePath, cliPath, args = [], { tuning } = {}) {
  const { env, args: flags } = shebangCommand(readFileSync(cliPath, 'utf8').slice(0, 4096));
  return [nodePath, [...flags, cliPath, ...args], tuning === undefined ? env : { ...env, BEARER_SIDECAR_TUNING: tuning }];
}

/**
 * The runtime-settings profiles of a build (DIR/dist/runtime/settings.js, issue 21): `{ variable,
 * names, tuning(name) }` (tuning: its nodeFlags, v8Flags, environment, idleCollection,
 * streamCollection), or undefined for a build before them.
 */
export async function tuningProfiles(dir) {
  const file = join(dir, 'dist', 'runtime', 'settings.js');
  if (!existsSync(file)) return undefined;
  const settings = await import(pathToFileURL(file).href);
  return { variable: settings.tuningVariable, names: [...settings.tuningNames], tuning: settings.tuning, settings: settings.runtimeSettings };
}

/** Direct children of a process (from /proc; empty once it is gone). */
export function childrenOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // Kernels without CONFIG_PROC_CHILDREN: every process whose parent is pid.
    return readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .map(Number)
      .filter((p) => Number(procStat(p)?.[1]) === pid);
  }
}

/** A process and all its descendants (primary + workers; nginx master + workers). */
export function treeOf(pid) {
  const all = [pid];
  for (let i = 0; i < all.length; i++) all.push(...childrenOf(all[i]));
  return all;
}

/** VmRSS and VmHWM of one process, in kB; NaN once it is gone. */
export function procStatus(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const get = (k) => Number((new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(text) ?? [])[1]);
    return { rssKb: get('VmRSS'), hwmKb: get('VmHWM') };
  } catch {
    return { rssKb: NaN, hwmKb: NaN };
  }
}

/** VmRSS summed over a process tree, in kB (processes that are gone count 0). */
export const treeRssKb = (pid) => treeOf(pid).reduce((a, p) => a + (procStatus(p).rssKb || 0), 0);

/**
 * One LABEL=PATH[,NODEARG...] argument of the A/B tools (memory.mjs, coldstart.mjs), with that
 * label's --env=LABEL:VAR=VALUE variables and --node=LABEL:PATH binary (default: this node).
 */
export function targetSpec(arg, { env: envOptions = [], node: nodeOptions = [] }) {
  const [label, spec] = arg.split(/=(.*)/s);
  const [path, ...nodeArgs] = spec.split(',');
  const env = {};
  for (const e of envOptions) {
    const [l, kv] = e.split(/:(.*)/s);
    if (l !== label) continue;
    const [k, v] = kv.split(/=(.*)/s);
    env[k] = v;
  }
  const node = nodeOptions.map((n) => n.split(/:(.*)/s)).find(([l]) => l === label)?.[1] ?? process.execPath;
  return { label, path, nodeArgs, env, node };
}
