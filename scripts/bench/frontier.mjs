// The frontier of memory and speed (issue 21 §2): `npm run bench -- --frontier [--quick]`, or
// `node scripts/bench/frontier.mjs`. On Node 24 (scripts/node24, the image's), side by side in one
// run, every candidate runtime setting of the sidecar is measured on the same cases, in interleaved
// rounds; the baselines in the same run are the same build with V8's and glibc's defaults
// (BEARER_SIDECAR_TUNING=none, the `none` candidate) and a minimal node:http + undici proxy
// (scripts/bench/proxy-undici.mjs) for the large bodies. The targets the default profile must hold
// are printed as met / NOT MET, for every candidate (the frontier) and for the default.
//
// A candidate is a tuning profile (src/runtime/settings.ts: default, lean, none) with explicit node
// flags and environment variables on top; the sidecar never overrides either, so
// `none` + `--max-semi-space-size=8` is that flag alone and `default` + `--max-semi-space-size=8`
// the default profile with 8 MB semi-spaces.
//
// Each round, for every candidate (order rotated each round):
//   1. a fresh sidecar: idle RSS --idle-after s after /readyz first answered 200 (one token, no traffic);
//   2. peak RSS during --mem-load s of 100 keep-alive connections of small requests (wrk), then RSS
//      --mem-after s later, no traffic in between (the other candidates run meanwhile);
//   3. then, cases interleaved across candidates: small body at 10 and 100 connections (CPU µs per
//      request from /proc, p50, p99), 1 MiB body at 10 connections (req/s; the undici proxy too), and
//      --stream-bytes streamed down and up with curl (MiB/s; the undici proxy too), each after
//      --rewarm s of unrecorded load (16 MiB for the streams).
// Ratios are taken per round (candidate ÷ baseline in the same round) and their median reported.
//
// Options: --quick (1 round, 2 s per case, 4 s of memory load, 8 s after, 64 MiB streamed),
// --rounds=N (5), --duration=S (4), --rewarm=S (1; whole seconds), --mem-load=S (10), --mem-after=S (30),
// --idle-after=S (6), --stream-bytes=N (256 MiB), --candidates=a,b (names below; default all),
// --noise-budget=S (60: seconds in all to wait for a quiet machine), --json=FILE (the raw figures,
// written after every round; default <tmpdir>/bearer-sidecar-frontier.json), --from-json=FILE (only
// the report, from such a file: a run cut short still reports its rounds), --out=FILE
// (default BENCHMARKS.md, between the bench:frontier markers; /tmp/bearer-sidecar-frontier-quick.md
// with --quick), --no-write. Ports 18200-18259 on 127.0.0.1. Needs wrk and curl.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { node24 } from '../node24.mjs';
import { download, fmt, httpGet, machineBusyPct, machineBusySeconds, resetPeak, upload, waitFor, which, wrk, writeSection } from './measure.mjs';
import { cpuSeconds, median, procStatus, sidecarYaml, sleep, tuningProfiles } from './util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const log = (...a) => process.stdout.write(`${a.join(' ')}\n`);
const MiB = 2 ** 20;

/**
 * The candidates: a profile, then node flags and environment on top. `settings` describes them for
 * the table. The young generation (semi-space 4/8/16 MB or V8's default), malloc (the mmap
 * threshold, or at most 1 or 2 arenas), the collections (in the default and lean profiles, not in none).
 */
export const allCandidates = [
  { name: 'none', tuning: 'none', settings: "V8's and glibc's defaults, no collections (the baseline)" },
  { name: 'none+semi4', tuning: 'none', nodeArgs: ['--max-semi-space-size=4'], settings: 'semi-space 4 MB' },
  { name: 'none+semi8', tuning: 'none', nodeArgs: ['--max-semi-space-size=8'], settings: 'semi-space 8 MB' },
  { name: 'none+semi16', tuning: 'none', nodeArgs: ['--max-semi-space-size=16'], settings: 'semi-space 16 MB' },
  { name: 'none+mmap32k', tuning: 'none', env: { MALLOC_MMAP_THRESHOLD_: '32768' }, settings: 'MALLOC_MMAP_THRESHOLD_=32768' },
  { name: 'default', tuning: 'default', settings: 'the default profile' },
  { name: 'default+semi8', tuning: 'default', nodeArgs: ['--max-semi-space-size=8'], settings: 'the default profile, semi-space 8 MB' },
  { name: 'default+semi16', tuning: 'default', nodeArgs: ['--max-semi-space-size=16'], settings: 'the default profile, semi-space 16 MB' },
  { name: 'default+arena1', tuning: 'default', env: { MALLOC_ARENA_MAX: '1' }, settings: 'the default profile, MALLOC_ARENA_MAX=1' },
  { name: 'default+arena2', tuning: 'default', env: { MALLOC_ARENA_MAX: '2' }, settings: 'the default profile, MALLOC_ARENA_MAX=2' },
  { name: 'lean', tuning: 'lean', settings: 'the lean profile' },
];

// The targets of issue 21 for the default profile.
const targets = { idleMiB: 70, peakMiB: 128, afterMiB: 100, cpu: 1.05, p99: 1.2, big: 0.9, stream: 0.9 };

export async function runFrontier(argv = process.argv.slice(2)) {
  const { values: f } = parseArgs({
    args: argv.filter((a) => a !== '--frontier'),
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      rewarm: { type: 'string' },
      'mem-load': { type: 'string' },
      'mem-after': { type: 'string' },
      'idle-after': { type: 'string' },
      'stream-bytes': { type: 'string' },
      candidates: { type: 'string' },
      'noise-budget': { type: 'string' },
      json: { type: 'string' },
      'from-json': { type: 'string' },
      out: { type: 'string' },
      'no-write': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const quick = f.quick;
  const opt = {
    rounds: Number(f.rounds ?? (quick ? 1 : 5)),
    duration: Number(f.duration ?? (quick ? 2 : 4)),
    rewarm: Math.round(Number(f.rewarm ?? 1)), // wrk takes whole seconds
    memLoad: Number(f['mem-load'] ?? (quick ? 4 : 10)),
    memAfter: Number(f['mem-after'] ?? (quick ? 8 : 30)),
    idleAfter: Number(f['idle-after'] ?? 6),
    streamBytes: Number(f['stream-bytes'] ?? (quick ? 64 * MiB : 256 * MiB)),
    noiseBudget: Number(f['noise-budget'] ?? (quick ? 5 : 60)),
    out: f['no-write'] ? undefined : f.out ?? (quick ? join(os.tmpdir(), 'bearer-sidecar-frontier-quick.md') : join(root, 'BENCHMARKS.md')),
    json: f.json ?? join(os.tmpdir(), `bearer-sidecar-frontier${quick ? '-quick' : ''}.json`),
  };
  if (f['from-json']) {
    const saved = JSON.parse(readFileSync(f['from-json'], 'utf8'));
    return publish(render(saved), saved, opt.out);
  }
  const names = f.candidates?.split(',').map((s) => s.trim()).filter(Boolean);
  const candidates = names ? names.map((n) => allCandidates.find((c) => c.name === n) ?? fail(`--candidates: no candidate "${n}" (${allCandidates.map((c) => c.name).join(', ')})`)) : allCandidates;
  if (!candidates.some((c) => c.name === 'none')) candidates.unshift(allCandidates[0]);
  const wrkPath = which('wrk') ?? fail('the frontier needs wrk (apt-get install wrk)');
  if (!which('curl')) fail('the frontier needs curl');
  const node = node24('the benchmark');
  const nodeVersion = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
  const cli = join(root, 'dist', 'cli.js');
  if (!existsSync(cli)) fail('no dist/cli.js: npm run build first');
  const profiles = await profileDescriptions();

  const ports = { upstream: 18200, token: 18201, undici: 18202, sidecar: (i) => 18210 + i, admin: (i) => 18235 + i };
  const tmp = mkdtempSync(join(os.tmpdir(), 'bearer-sidecar-frontier-'));
  const children = new Set();
  const startChild = (cmd, args, env, out = 'ignore') => {
    const child = spawn(cmd, args, { stdio: ['ignore', out, out], cwd: root, env });
    children.add(child);
    child.on('exit', () => children.delete(child));
    return child;
  };
  const stopChild = async (child) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };
  const killAll = () => {
    for (const c of children) c.kill('SIGKILL');
  };
  process.on('exit', () => {
    killAll();
    rmSync(tmp, { recursive: true, force: true });
  });
  for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

  // The environment every process gets: this one's, without anything that would tune node or malloc.
  const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(MALLOC_|GLIBC_TUNABLES$|NODE_OPTIONS$|BEARER_SIDECAR_)/.test(k)));

  const { startTokenServer } = await import(pathToFileURL(join(root, 'dist', 'demo', 'token-server.js')).href);
  const tokens = await startTokenServer({ host: '127.0.0.1', port: ports.token, clients: [{ id: 'frontier', secret: 'frontier-secret' }], signingKey: 'frontier-signing-key', expiresInSeconds: 3600 });
  const upstream = startChild(process.execPath, [join(here, 'upstream.mjs'), String(ports.upstream)], baseEnv);
  await waitFor(`http://127.0.0.1:${ports.upstream}/`);
  const undici = startChild(node, [join(here, 'proxy-undici.mjs'), String(ports.undici), String(ports.upstream)], baseEnv);
  await waitFor(`http://127.0.0.1:${ports.undici}/`);
  const undiciTarget = { name: 'undici', base: `http://127.0.0.1:${ports.undici}`, pid: undici.pid };

  const machineState = () => `load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`;
  const stateAtStart = machineState();
  const t00 = Date.now();
  const commit = gitCommit();
  log(`frontier: Node ${nodeVersion} (${node}), ${candidates.length} candidates + undici, ${opt.rounds} round(s), ${opt.duration} s per case, memory ${opt.memLoad} s load / ${opt.memAfter} s after, ${fmt(opt.streamBytes / MiB)} MiB streamed; ${stateAtStart}`);

  let noiseSpent = 0;
  const waitQuiet = async (maxSeconds = 5) => {
    const end = performance.now() + maxSeconds * 1000;
    for (;;) {
      const t0 = performance.now();
      const busy = await machineBusyPct(400);
      if (busy < 10 || noiseSpent >= opt.noiseBudget || performance.now() >= end) return busy;
      noiseSpent += (performance.now() - t0) / 1000;
    }
  };

  /** A fresh sidecar of candidate c in slot i; resolves once /readyz answers 200. */
  const startSidecar = async (c, i, round) => {
    const port = ports.sidecar(i);
    const adminPort = ports.admin(i);
    const config = join(tmp, `${c.name}.yaml`);
    writeFileSync(config, sidecarYaml({ port, adminPort, route: 'bench', upstream: `http://127.0.0.1:${ports.upstream}`, tokenUrl: `http://127.0.0.1:${ports.token}/oauth2/token`, clientId: 'frontier', clientSecret: 'frontier-secret' }));
    const logFile = join(tmp, `${c.name}-r${round}.log`);
    const fd = openSync(logFile, 'w');
    const t0 = performance.now();
    const child = startChild(node, [...(c.nodeArgs ?? []), cli, '--config', config], { ...baseEnv, BEARER_SIDECAR_TUNING: c.tuning, ...(c.env ?? {}) }, fd);
    closeSync(fd);
    const end = Date.now() + 30_000;
    while ((await httpGet(`http://127.0.0.1:${adminPort}/readyz`, { timeout: 1000 })) !== 200) {
      if (child.exitCode !== null || Date.now() > end) {
        const tail = readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join(' | ').slice(0, 600);
        await stopChild(child);
        throw new Error(`${c.name}: not ready (${child.exitCode === null ? 'timeout' : `exit ${child.exitCode}`}): ${tail}`);
      }
      await sleep(5);
    }
    return { child, pid: child.pid, base: `http://127.0.0.1:${port}`, readyAt: performance.now(), coldStartMs: performance.now() - t0, logFile, cmdline: readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0').filter(Boolean) };
  };

  /** One recorded wrk run against a target with a pid: figures, CPU of the target, other load on the machine. */
  const measure = async (target, path, conns) => {
    await waitQuiet();
    if (opt.rewarm > 0) await wrk(wrkPath, `${target.base}${path}`, conns, opt.rewarm);
    const c0 = cpuSeconds(target.pid);
    const u0 = cpuSeconds(upstream.pid);
    const m0 = machineBusySeconds();
    const b0 = process.cpuUsage();
    const w0 = performance.now();
    const r = await wrk(wrkPath, `${target.base}${path}`, conns, opt.duration);
    const wall = (performance.now() - w0) / 1000;
    const cpu = cpuSeconds(target.pid) - c0;
    const bu = process.cpuUsage(b0);
    const ours = cpu + (cpuSeconds(upstream.pid) - u0) + (Number.isFinite(r.loadCpu) ? r.loadCpu : 0) + (bu.user + bu.system) / 1e6;
    return { ...r, cpuUsPerReq: (cpu * 1e6) / r.requests, otherPct: (100 * Math.max(0, machineBusySeconds() - m0 - ours)) / wall };
  };
  const streams = async (target) => {
    await waitQuiet();
    await download(target.base, 16 * MiB);
    const c0 = cpuSeconds(target.pid);
    const down = await download(target.base, opt.streamBytes);
    const c1 = cpuSeconds(target.pid);
    await upload(target.base, 16 * MiB);
    const c2 = cpuSeconds(target.pid);
    const up = await upload(target.base, opt.streamBytes);
    const c3 = cpuSeconds(target.pid);
    const gib = opt.streamBytes / 2 ** 30;
    return { downMiBs: down.mbps, upMiBs: up.mbps, downCpuPerGiB: (c1 - c0) / gib, upCpuPerGiB: (c3 - c2) / gib };
  };

  const runs = []; // { round, candidate, ...figures }
  const add = (round, candidate, kind, figures) => {
    runs.push({ round, candidate, kind, ...figures });
    const parts = Object.entries(figures)
      .filter(([, v]) => typeof v === 'number')
      .map(([k, v]) => `${k} ${fmt(v, Number.isInteger(v) || Math.abs(v) >= 10 ? 0 : 2)}`);
    log(`  r${round + 1} ${candidate.padEnd(15)} ${kind.padEnd(9)} ${parts.join('  ')}`);
  };

  const state = (roundsDone) => ({
    quick,
    commit,
    node: nodeVersion,
    machine: `${os.availableParallelism?.() ?? os.cpus().length} × ${cpuModel()}`,
    stateAtStart,
    stateAtEnd: machineState(),
    startedAt: new Date(t00).toISOString(),
    minutes: (Date.now() - t00) / 60_000,
    noiseSpent,
    options: opt,
    profiles,
    candidates,
    roundsDone,
    runs,
  });

  try {
    for (let round = 0; round < opt.rounds; round++) {
      const k = round % candidates.length;
      const order = [...candidates.slice(k), ...candidates.slice(0, k)];
      log(`round ${round + 1}/${opt.rounds}: ${order.map((c) => c.name).join(', ')} (${machineState()})`);
      // 1. Fresh sidecars, one after another; each one's idle RSS opt.idleAfter s after it was ready.
      const live = new Map();
      for (const c of order) live.set(c.name, await startSidecar(c, candidates.indexOf(c), round));
      for (const c of order) {
        const s = live.get(c.name);
        await sleep(Math.max(0, s.readyAt + opt.idleAfter * 1000 - performance.now()));
        s.idleKb = procStatus(s.pid).rssKb;
      }
      // 2. Peak under 100 connections, then RSS opt.memAfter s later (read on a timer while the others run).
      for (const c of order) {
        const s = live.get(c.name);
        await waitQuiet();
        resetPeak(s.pid);
        let peak = procStatus(s.pid).rssKb;
        const timer = setInterval(() => (peak = Math.max(peak, procStatus(s.pid).rssKb || 0)), 20);
        const c0 = cpuSeconds(s.pid);
        const r = await wrk(wrkPath, `${s.base}/`, 100, opt.memLoad);
        clearInterval(timer);
        const cpu = cpuSeconds(s.pid) - c0;
        s.peakKb = Math.max(peak, procStatus(s.pid).hwmKb || 0);
        s.afterRead = sleep(opt.memAfter * 1000).then(() => (s.afterKb = procStatus(s.pid).rssKb));
        add(round, c.name, 'memory', { idleMiB: s.idleKb / 1024, peakMiB: s.peakKb / 1024, coldStartMs: s.coldStartMs, loadRps: r.rps, loadCpuUs: (cpu * 1e6) / r.requests, errors: r.errors });
      }
      // 3. The load cases, each across all candidates (and undici for the large bodies), the order rotated per case.
      const cases = [
        { kind: 'small10', path: '/', conns: 10 },
        { kind: 'small100', path: '/', conns: 100 },
        { kind: 'big10', path: '/big', conns: 10, undici: true },
        { kind: 'stream', undici: true },
      ];
      for (const [ci, cs] of cases.entries()) {
        const targetsOf = [...order.map((c) => ({ name: c.name, ...live.get(c.name) })), ...(cs.undici ? [undiciTarget] : [])];
        const j = ci % targetsOf.length;
        for (const t of [...targetsOf.slice(j), ...targetsOf.slice(0, j)]) {
          await t.afterRead; // no traffic to a sidecar before its RSS after the load is read
          if (cs.kind === 'stream') add(round, t.name, 'stream', await streams(t));
          else {
            const r = await measure(t, cs.path, cs.conns);
            add(round, t.name, cs.kind, { rps: r.rps, p50ms: r.p50 / 1000, p99ms: r.p99 / 1000, cpuUs: r.cpuUsPerReq, otherPct: r.otherPct, errors: r.errors });
          }
        }
      }
      for (const c of order) runs.find((x) => x.round === round && x.candidate === c.name && x.kind === 'memory').afterMiB = live.get(c.name).afterKb / 1024;
      log(`  r${round + 1} after ${opt.memAfter} s: ${order.map((c) => `${c.name} ${fmt(live.get(c.name).afterKb / 1024, 1)}`).join(', ')} MiB`);
      for (const c of order) {
        const s = live.get(c.name);
        await stopChild(s.child);
        rmSync(s.logFile, { force: true });
      }
      if (round === 0) log(`  round 1 took ${fmt((Date.now() - t00) / 1000)} s`);
      // Saved after every round: a run cut short can still be reported (--from-json).
      writeFileSync(opt.json, `${JSON.stringify(state(round + 1), null, 1)}\n`);
    }
  } finally {
    killAll();
    await tokens.close();
  }

  const saved = state(Math.max(0, ...runs.map((r) => r.round + 1)));
  writeFileSync(opt.json, `${JSON.stringify(saved, null, 1)}\n`);
  log(`raw figures: ${opt.json}`);
  publish(render(saved), saved, opt.out);
}

function publish({ report, defaultVerdicts }, saved, out) {
  log(`\n${report}\n`);
  if (defaultVerdicts) {
    log('Targets (default profile):');
    for (const v of defaultVerdicts) log(`  ${v.ok ? 'met    ' : 'NOT MET'}  ${v.name}: ${v.detail}`);
  }
  if (out) {
    writeSection(out, 'frontier', report);
    log(`\nwritten to ${out} (bench:frontier section)`);
  }
}

/** The report (markdown) of a saved run, and the default profile's verdicts. */
function render({ quick, commit, node: nodeVersion, machine, stateAtStart, stateAtEnd, startedAt, minutes, noiseSpent, options: opt, profiles, candidates, roundsDone, runs }) {
  const get = (cand, kind, key) => runs.filter((r) => r.candidate === cand && r.kind === kind).map((r) => r[key]).filter(Number.isFinite);
  const med = (cand, kind, key) => median(get(cand, kind, key));
  const max = (cand, kind, key) => Math.max(...get(cand, kind, key));
  /** Median over rounds of (a's figure ÷ b's figure in the same round). */
  const paired = (a, b, kind, key) => {
    const xs = [];
    for (let round = 0; round < roundsDone; round++) {
      const x = runs.find((r) => r.round === round && r.candidate === a && r.kind === kind)?.[key];
      const y = runs.find((r) => r.round === round && r.candidate === b && r.kind === kind)?.[key];
      if (Number.isFinite(x) && Number.isFinite(y) && y > 0) xs.push(x / y);
    }
    return median(xs);
  };
  const verdictsOf = (c) => [
    { name: `idle RSS < ${targets.idleMiB} MiB`, ok: max(c, 'memory', 'idleMiB') < targets.idleMiB, detail: `${fmt(med(c, 'memory', 'idleMiB'), 1)} MiB (max ${fmt(max(c, 'memory', 'idleMiB'), 1)})`, margin: targets.idleMiB - max(c, 'memory', 'idleMiB') },
    { name: `peak RSS under 100 connections for ${opt.memLoad} s < ${targets.peakMiB} MiB`, ok: max(c, 'memory', 'peakMiB') < targets.peakMiB, detail: `max ${fmt(max(c, 'memory', 'peakMiB'), 1)} MiB (median ${fmt(med(c, 'memory', 'peakMiB'), 1)})`, margin: targets.peakMiB - max(c, 'memory', 'peakMiB') },
    { name: `RSS ${opt.memAfter} s later < ${targets.afterMiB} MiB`, ok: max(c, 'memory', 'afterMiB') < targets.afterMiB, detail: `max ${fmt(max(c, 'memory', 'afterMiB'), 1)} MiB (median ${fmt(med(c, 'memory', 'afterMiB'), 1)})`, margin: targets.afterMiB - max(c, 'memory', 'afterMiB') },
    ...[10, 100].map((n) => {
      const r = paired(c, 'none', `small${n}`, 'cpuUs');
      return { name: `CPU per request at ${n} connections ≤ ${targets.cpu}× none`, ok: r <= targets.cpu, detail: `${fmt(r, 3)}× (${fmt(med(c, `small${n}`, 'cpuUs'), 1)} vs ${fmt(med('none', `small${n}`, 'cpuUs'), 1)} µs)`, margin: targets.cpu - r };
    }),
    ...[10, 100].map((n) => {
      const r = paired(c, 'none', `small${n}`, 'p99ms');
      return { name: `p99 at ${n} connections ≤ ${targets.p99}× none`, ok: r <= targets.p99, detail: `${fmt(r, 2)}× (${fmt(med(c, `small${n}`, 'p99ms'), 2)} vs ${fmt(med('none', `small${n}`, 'p99ms'), 2)} ms)`, margin: targets.p99 - r };
    }),
    (() => {
      const r = paired(c, 'undici', 'big10', 'rps');
      return { name: `1 MiB responses at 10 connections ≥ ${targets.big}× the undici proxy`, ok: r >= targets.big, detail: `${fmt(r, 2)}× (${fmt(med(c, 'big10', 'rps'))} vs ${fmt(med('undici', 'big10', 'rps'))} req/s)`, margin: r - targets.big };
    })(),
    ...['down', 'up'].map((dir) => {
      const r = paired(c, 'undici', 'stream', `${dir}MiBs`);
      return { name: `streaming ${dir} ≥ ${targets.stream}× the undici proxy`, ok: r >= targets.stream, detail: `${fmt(r, 2)}× (${fmt(med(c, 'stream', `${dir}MiBs`))} vs ${fmt(med('undici', 'stream', `${dir}MiBs`))} MiB/s)`, margin: r - targets.stream };
    }),
  ];

  const lines = [];
  const w = (s = '') => lines.push(s);
  w(`### Frontier of ${startedAt.replace(/\.\d+Z$/, 'Z')}${quick ? ' (QUICK RUN: short cases; not for decisions)' : ''}${roundsDone < opt.rounds ? ` (cut short: ${roundsDone} of ${opt.rounds} rounds)` : ''}`);
  w();
  w(`Sidecar ${commit}, Node ${nodeVersion}, ${machine}; ${roundsDone} interleaved round(s), ${opt.duration} s per case after ${opt.rewarm} s of unrecorded load, wrk -t1; memory: idle ${opt.idleAfter} s after ready, peak under 100 connections for ${opt.memLoad} s, ${opt.memAfter} s after; ${fmt(opt.streamBytes / MiB)} MiB streamed each way with curl. Machine: ${stateAtStart} at the start, ${stateAtEnd} at the end; ${fmt(minutes, 1)} minutes, ${fmt(noiseSpent)} s waiting for a quiet machine (budget ${opt.noiseBudget} s); the median other CPU during the recorded load runs was ${fmt(median(runs.map((r) => r.otherPct).filter(Number.isFinite)))} % of a core (max ${fmt(Math.max(...runs.map((r) => r.otherPct).filter(Number.isFinite)))} %).`);
  w();
  w('Profiles: ' + Object.entries(profiles).map(([n, d]) => `\`${n}\` = ${d}`).join('; ') + '.');
  w();
  w('| candidate | settings | CPU µs/req c10 | c100 | p50 / p99 ms c10 | p50 / p99 ms c100 | 1 MiB req/s c10 | stream down / up MiB/s | idle MiB | peak MiB (max) | after MiB (max) | targets held |');
  w('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const c of candidates) {
    const v = verdictsOf(c.name);
    const flags = [...(c.nodeArgs ?? []), ...Object.entries(c.env ?? {}).map(([k, x]) => `${k}=${x}`)];
    w(`| ${c.name} | ${c.settings}${flags.length ? ` (\`BEARER_SIDECAR_TUNING=${c.tuning}\` + \`${flags.join(' ')}\`)` : ` (\`BEARER_SIDECAR_TUNING=${c.tuning}\`)`} | ${fmt(med(c.name, 'small10', 'cpuUs'), 1)} | ${fmt(med(c.name, 'small100', 'cpuUs'), 1)} | ${fmt(med(c.name, 'small10', 'p50ms'), 2)} / ${fmt(med(c.name, 'small10', 'p99ms'), 2)} | ${fmt(med(c.name, 'small100', 'p50ms'), 2)} / ${fmt(med(c.name, 'small100', 'p99ms'), 2)} | ${fmt(med(c.name, 'big10', 'rps'))} | ${fmt(med(c.name, 'stream', 'downMiBs'))} / ${fmt(med(c.name, 'stream', 'upMiBs'))} | ${fmt(med(c.name, 'memory', 'idleMiB'), 1)} | ${fmt(med(c.name, 'memory', 'peakMiB'), 1)} (${fmt(max(c.name, 'memory', 'peakMiB'), 1)}) | ${fmt(med(c.name, 'memory', 'afterMiB'), 1)} (${fmt(max(c.name, 'memory', 'afterMiB'), 1)}) | ${v.filter((x) => x.ok).length}/${v.length}${v.every((x) => x.ok) ? ' **all**' : `: not ${v.filter((x) => !x.ok).map((x) => shortName(x.name)).join(', ')}`} |`);
  }
  w(`| undici | minimal node:http + undici Pool proxy (scripts/bench/proxy-undici.mjs) | | | | | ${fmt(med('undici', 'big10', 'rps'))} | ${fmt(med('undici', 'stream', 'downMiBs'))} / ${fmt(med('undici', 'stream', 'upMiBs'))} | | | | |`);
  w();
  w('Medians over the rounds; "max" is the highest round. Memory targets are judged on the highest round (every round must hold them), the others on the median of the per-round ratios to the baseline measured in the same round. Streaming CPU seconds per GiB (down / up): ' + [...candidates.map((c) => c.name), 'undici'].map((n) => `${n} ${fmt(med(n, 'stream', 'downCpuPerGiB'), 2)} / ${fmt(med(n, 'stream', 'upCpuPerGiB'), 2)}`).join(', ') + '.');
  w();
  // The frontier's reading: who holds every target; else, among those that hold the CPU, latency and
  // throughput ones (what users feel), the least memory after a load.
  const all = candidates.filter((c) => verdictsOf(c.name).every((v) => v.ok));
  const feel = candidates.filter((c) => verdictsOf(c.name).filter((v) => !/RSS/.test(v.name)).every((v) => v.ok));
  const byAfter = (a, b) => max(a.name, 'memory', 'afterMiB') - max(b.name, 'memory', 'afterMiB');
  w(`Every target held by: ${all.length ? all.map((c) => c.name).join(', ') : 'no candidate'}. CPU, latency and throughput targets held by: ${feel.length ? [...feel].sort(byAfter).map((c) => `${c.name} (after ${fmt(max(c.name, 'memory', 'afterMiB'), 1)}, peak ${fmt(max(c.name, 'memory', 'peakMiB'), 1)} MiB)`).join(', ') : 'no candidate'}.`);
  w();
  const def = candidates.find((c) => c.name === 'default');
  if (def) {
    w('#### Targets of the default profile');
    w();
    w('| target | result | measured |');
    w('| --- | --- | --- |');
    for (const v of verdictsOf('default')) w(`| ${v.name} | ${v.ok ? 'met' : '**NOT MET**'} | ${v.detail} |`);
    w();
  }
  return { report: lines.join('\n'), defaultVerdicts: def ? verdictsOf('default') : undefined };
}

function shortName(name) {
  return name.replace(/ (<|≤|≥).*$/, '').replace(/ under 100 connections for \d+ s/, '').replace(/ at (\d+) connections/, ' c$1').replace(/ responses c10/, '').replace(/ the undici proxy/, '');
}

/** What each profile holds, from the build's settings module (util.mjs tuningProfiles), when it has one. */
async function profileDescriptions() {
  const profiles = await tuningProfiles(root);
  if (!profiles) return {};
  const describe = (t) => [...t.nodeFlags, ...t.v8Flags, ...Object.entries(t.environment).map(([k, v]) => `${k}=${v}`), ...(t.idleCollection ? ['idle collection'] : []), ...(t.streamCollection ? ['stream collection'] : [])];
  return Object.fromEntries(profiles.names.map((n) => [n, describe(profiles.tuning(n)).map((x) => `\`${x}\``).join(' ') || 'nothing']));
}

function fail(message) {
  process.stderr.write(`frontier: ${message}\n`);
  process.exit(2);
}
function gitCommit() {
  try {
    const git = (args) => execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return git(['rev-parse', '--short', 'HEAD']) + (git(['status', '--porcelain', '--', 'src']) ? ' (src/ has uncommitted changes)' : '');
  } catch {
    return 'unknown';
  }
}
function cpuModel() {
  return (/^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8')) ?? [])[1] ?? 'unknown CPU';
}
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await runFrontier();
