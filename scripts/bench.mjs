#!/usr/bin/env node
// The benchmark of issues 7 and 14: `npm run bench` (builds first). Everything runs on 127.0.0.1.
//
// Starts an upstream (node:http; small JSON at /, 1 MiB at /big, /bytes/N streamed, POST counted),
// a demo token endpoint (in this process; idle under load) and, each as its own process:
// bearer-sidecar (started as the bin starts it: `node dist/cli.js`, which applies its runtime
// settings itself, src/runtime/settings.ts; an older build with the node flags its first line
// carried; log level info, one JSON line per request to a file) and the undici baseline on each
// runtime (the machine's node and Node 24, the image's, from scripts/node24), the node:http baseline
// and nginx when installed, and the baseline build (issue 14: 37e49ef, built once into a cache dir)
// on Node 24 at 10 and 100 connections. Loads each with wrk (else autocannon, when importable) at
// fixed connection counts, keep-alive, interleaved and repeated. Then, per runtime, a fresh
// sidecar's memory: idle (6 s after ready), peak under 100 connections, 30 s after, and 1 GiB
// streamed down and up. Then cores: sidecar workers: 1 vs 2 and nginx 1 vs 2 worker processes, in
// front of a static nginx upstream. Measures cold starts; prints every target as met / NOT MET and
// writes the results into BENCHMARKS.md between the bench:results markers (the rest is kept).
//
// Options (flags, or the env variable in brackets):
//   --quick                 smoke run: 2 s per case, 1 round, 128 MiB streamed, 3 s of memory load
//                           and 5 s after it; writes to /tmp unless --out
//   --duration=S            seconds per case (BENCH_DURATION, default 6)
//   --rounds=N              interleaved rounds (BENCH_ROUNDS, default 5)
//   --conns=1,10,100        connection counts, small body (BENCH_CONNS)
//   --big-conns=10          connection counts, 1 MiB body (BENCH_BIG_CONNS; "" to skip)
//   --stream-bytes=N        bytes streamed each way (BENCH_STREAM_BYTES, default 1 GiB)
//   --runtimes=current,24   the node runtimes for the sidecar and the undici baseline (BENCH_RUNTIMES):
//                           current = the node running this script, 24 = scripts/node24 (installed
//                           on first use, as the tests do)
//   --only=a,b              targets to run: direct,sidecar,node-http,undici,nginx (the baseline
//                           build and the memory tests run with sidecar)
//   --no-nginx              skip nginx even when installed (and with it the cores comparison)
//   --cores-conns=10,100    connection counts of the cores comparison (BENCH_CORES_CONNS; "" to skip)
//   --cores-runtimes=24     runtimes of the sidecar in the cores comparison (BENCH_CORES_RUNTIMES)
//   --mem-load=S            seconds of 100-connection load in the memory test (default 10)
//   --mem-after=S           seconds after that load before RSS is read again (default 30)
//   --idle-after=S          idle RSS is read this long after the sidecar is ready (default 6)
//   --cores-threads=N       wrk threads in the cores comparison (BENCH_CORES_THREADS, default 1)
//   --sidecar-dir=DIR       the sidecar build to measure: DIR/dist/cli.js (BENCH_SIDECAR_DIR,
//                           default this repository; e.g. a worktree of another branch, built)
//   --baseline-ref=REF      the build the CPU per request is compared with (BENCH_BASELINE_REF,
//                           default 37e49ef, issue 14's baseline): checked out and built once into
//                           <tmpdir>/bearer-sidecar-bench-<commit> (git clone --shared, npm ci
//                           --prefer-offline, npm run build), reused after; "none" skips it
//   --baseline-dir=DIR      a baseline already built (DIR/dist/cli.js) instead of --baseline-ref
//   --baseline-conns=10,100 connection counts of the baseline, small body (BENCH_BASELINE_CONNS)
//   --load-only             only the load cases: no memory, streaming, cores or extra cold starts
//   --json=FILE             also write every run's raw figures as JSON
//   --rewarm=S              seconds of unrecorded load before each recorded run (BENCH_REWARM,
//                           default 1; 0 in --quick)
//   --noise-budget=S        seconds in all to wait for a quiet machine before a case and to re-run
//                           a case that something else disturbed (BENCH_NOISE_BUDGET, default 150)
//   --out=FILE              where to write (default BENCHMARKS.md; --no-write to write nothing)
//   --frontier              instead of the benchmark: the frontier of memory and speed over the
//                           candidate runtime settings on Node 24 (scripts/bench/frontier.mjs, whose
//                           header lists its options; --frontier --quick for a short run)
//   --profile               instead of the benchmark: CPU-profile the sidecar and the undici
//                           baseline under wrk at 10 connections (--profile-seconds=10) and write
//                           the summary between the bench:profile markers of the output file
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, createReadStream, chmodSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { aggregate, inclusiveOf, loadProfile, toMarkdown } from './bench/cpuprofile.mjs';
import { download, fmt, httpGet, machineBusyPct, machineBusySeconds, resetPeak, sampled, upload, waitFor, which, wrk, writeSection as writeSectionOf } from './bench/measure.mjs';
import { binCommand, childrenOf, CLK_TCK, cpuSeconds, descendantsOf, killLeftovers, majorFaults, median, procStatus, sidecarYaml, sleep, startTime, treeOf, treeRssKb } from './bench/util.mjs';
import { node24 } from './node24.mjs';

// --frontier: the frontier of memory and speed instead (scripts/bench/frontier.mjs; its own options).
if (process.argv.includes('--frontier')) {
  const { runFrontier } = await import('./bench/frontier.mjs');
  await runFrontier(process.argv.slice(2));
  process.exit(0);
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// The build the CPU-per-request target of issue 14 compares with: main when the issue was filed.
const BASELINE_REF = '37e49ef';
const benchDir = join(root, 'scripts', 'bench');
const log = (...a) => process.stdout.write(`${a.join(' ')}\n`);

// ---------------------------------------------------------------- options
const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    rounds: { type: 'string' },
    conns: { type: 'string' },
    'big-conns': { type: 'string' },
    'stream-bytes': { type: 'string' },
    only: { type: 'string' },
    'no-nginx': { type: 'boolean', default: false },
    out: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'profile-seconds': { type: 'string' },
    'noise-budget': { type: 'string' },
    rewarm: { type: 'string' },
    'load-only': { type: 'boolean', default: false },
    runtimes: { type: 'string' },
    'cores-conns': { type: 'string' },
    'cores-runtimes': { type: 'string' },
    'mem-load': { type: 'string' },
    'mem-after': { type: 'string' },
    'idle-after': { type: 'string' },
    'sidecar-dir': { type: 'string' },
    'baseline-ref': { type: 'string' },
    'baseline-dir': { type: 'string' },
    'baseline-conns': { type: 'string' },
    'cores-threads': { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (flags.help) {
  const text = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1);
  log(text.slice(0, text.findIndex((l) => !l.startsWith('//'))).map((l) => l.slice(3)).join('\n'));
  process.exit(0);
}
const env = process.env;
const quick = flags.quick;
const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean).map(Number);
const opt = {
  // 6 s × 5 rounds (7 s before issue 14 added the Node 24 and baseline cases): the run stays ≤ ~35 min.
  duration: Number(flags.duration ?? env.BENCH_DURATION ?? (quick ? 2 : 6)),
  rounds: Number(flags.rounds ?? env.BENCH_ROUNDS ?? (quick ? 1 : 5)),
  conns: list(flags.conns ?? env.BENCH_CONNS ?? '1,10,100'),
  bigConns: list(flags['big-conns'] ?? env.BENCH_BIG_CONNS ?? '10'),
  streamBytes: Number(flags['stream-bytes'] ?? env.BENCH_STREAM_BYTES ?? (quick ? 128 * 2 ** 20 : 2 ** 30)),
  runtimes: (flags.runtimes ?? env.BENCH_RUNTIMES ?? 'current,24').split(',').map((x) => x.trim()).filter(Boolean),
  coresConns: list(flags['cores-conns'] ?? env.BENCH_CORES_CONNS ?? '10,100'),
  coresRuntimes: (flags['cores-runtimes'] ?? env.BENCH_CORES_RUNTIMES ?? '24').split(',').map((x) => x.trim()).filter(Boolean),
  memLoad: Number(flags['mem-load'] ?? (quick ? 3 : 10)),
  memAfter: Number(flags['mem-after'] ?? (quick ? 5 : 30)),
  // The idle reading: this long after /readyz first answered 200 (the token is held by then).
  idleAfter: Number(flags['idle-after'] ?? 6),
  sidecarDir: resolve(flags['sidecar-dir'] ?? env.BENCH_SIDECAR_DIR ?? root),
  baselineRef: flags['baseline-ref'] ?? env.BENCH_BASELINE_REF ?? BASELINE_REF,
  baselineDir: flags['baseline-dir'] ?? env.BENCH_BASELINE_DIR,
  baselineConns: list(flags['baseline-conns'] ?? env.BENCH_BASELINE_CONNS ?? '10,100'),
  coresThreads: Number(flags['cores-threads'] ?? env.BENCH_CORES_THREADS ?? 1),
  warmup: quick ? 1 : 3,
  // Seconds of unrecorded load just before each recorded run, same URL and connections: a target
  // sits idle for a minute or more between its cases, and this machine's kernel pages out file
  // pages idle that long (DAMON 'pageout', min age 60 s), so without it the first requests of a
  // run wait for the node binary's code to be read back (major page faults) and p99 shows it.
  rewarm: Number(flags.rewarm ?? env.BENCH_REWARM ?? (quick ? 0 : 1)),
  out: flags['no-write'] ? undefined : flags.out ?? env.BENCH_OUT ?? (quick ? join(os.tmpdir(), 'bearer-sidecar-bench-quick.md') : join(root, 'BENCHMARKS.md')),
  profileSeconds: Number(flags['profile-seconds'] ?? 10),
  // Seconds the run may spend in all waiting for a quiet machine and re-running disturbed cases.
  noiseBudget: Number(flags['noise-budget'] ?? env.BENCH_NOISE_BUDGET ?? (quick ? 10 : 150)),
};
const ports = {
  upstream: 18000, token: 18001, sidecar: 18080, admin: 19901, nodeHttp: 18081, undici: 18082, nginx: 18083, sidecar2: 18090, admin2: 19902, cold: 18095, coldAdmin: 19905,
  // Node 24's load-test sidecar and baseline; the cores comparison (static upstream, nginx proxies, sidecars).
  sidecar24: 18084, admin24: 19903, undici24: 18085, baseline: 18086, baselineAdmin: 19904, static: 18010, nginx1: 18011, nginx2: 18012, cores: 18013, coresAdmin: 18113,
};
for (const r of [...opt.runtimes, ...opt.coresRuntimes]) if (r !== 'current' && r !== '24') throw new Error(`--runtimes/--cores-runtimes: "${r}" is neither current nor 24`);

// ---------------------------------------------------------------- small helpers
const ms = (us) => us / 1000;
const mib = (kb) => kb / 1024;

let noiseSpent = 0;
/** Waits until the machine is nearly idle, at most maxSeconds and within the run's noise budget;
 * returns the busy % seen last. */
async function waitQuiet(maxSeconds = 15) {
  const end = performance.now() + maxSeconds * 1000;
  for (;;) {
    const t0 = performance.now();
    const busy = await machineBusyPct(500);
    if (busy < 10 || noiseSpent >= opt.noiseBudget || performance.now() >= end) return busy;
    noiseSpent += (performance.now() - t0) / 1000;
  }
}
async function assertPortFree(port) {
  await new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', (e) => reject(new Error(`port ${port} on 127.0.0.1 is in use (${e.code}); stop what holds it`)));
    s.listen(port, '127.0.0.1', () => s.close(resolve));
  });
}

// ---------------------------------------------------------------- processes
const children = new Set();
/** The command line the bin runs the sidecar with, for the report: `[VAR=value...] node [flags] dist/cli.js`. */
function startedAs() {
  const cli = join(opt.sidecarDir, 'dist', 'cli.js');
  const [, args, env] = binCommand('node', cli);
  return [...Object.entries(env).map(([name, value]) => `${name}=${value}`), 'node', ...args.map((a) => (a === cli ? 'dist/cli.js' : a))].join(' ');
}
function start(cmd, args, { stdout = 'ignore', stderr = 'inherit', name = cmd, env = {} } = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', stdout, stderr], cwd: root, env: { ...process.env, ...env } });
  child.benchName = name;
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}
/** Ends a child and its process tree: signal to the top (a sidecar's primary drains and ends its
 * workers, nginx's master its workers), SIGKILL after timeoutMs; then, after up to 2 s more, SIGKILL
 * to whatever of the tree seen before is still running. */
async function stop(child, { signal = 'SIGTERM', timeoutMs = 15_000 } = {}) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const tree = descendantsOf(child.pid);
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(t);
  for (let i = 0; i < 100 && tree.some((p) => startTime(p.pid) === p.start); i++) await sleep(20);
  const n = killLeftovers(tree);
  if (n) log(`bench: ${child.benchName}: ${n} process(es) of its tree outlived it; killed`);
}
function killAll() {
  for (const c of children) {
    const tree = descendantsOf(c.pid);
    try {
      c.kill('SIGKILL');
    } catch {}
    killLeftovers(tree);
  }
}
process.on('exit', killAll);
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => {
  killAll();
  process.exit(130);
});

const tmp = mkdtempSync(join(os.tmpdir(), 'bearer-sidecar-bench-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

// Every sidecar gets a client id of its own (bench-<name>), so that its token requests can be counted.
const tokenClients = [{ id: 'bench-client', secret: 'bench-secret' }];
const tokenRequestsOf = (tokens, name) => tokens.requests.filter((r) => r.clientId === `bench-${name}`).length;

function sidecarConfig(port, adminPort, name, { workers, upstream = `http://127.0.0.1:${ports.upstream}` } = {}) {
  const file = join(tmp, `${name}.yaml`);
  if (!tokenClients.some((c) => c.id === `bench-${name}`)) tokenClients.push({ id: `bench-${name}`, secret: 'bench-secret' });
  writeFileSync(file, sidecarYaml({ port, adminPort, route: 'bench', upstream, tokenUrl: `http://127.0.0.1:${ports.token}/oauth2/token`, clientId: `bench-${name}`, clientSecret: 'bench-secret', workers }));
  return file;
}

/** The machine's node (current) and Node 24 (scripts/node24, installed on first use); one entry when they are the same release. */
function resolveRuntimes(keys) {
  const list = [];
  for (const key of keys) {
    const path = key === 'current' ? process.execPath : node24('the benchmark');
    const version = key === 'current' ? process.version : spawnSync(path, ['--version'], { encoding: 'utf8' }).stdout.trim();
    if (list.some((r) => r.version === version)) continue;
    list.push({ key, path, version, major: version.replace(/^v/, '').split('.')[0] });
  }
  return list;
}
const currentRuntime = { key: 'current', path: process.execPath, version: process.version, major: process.version.replace(/^v/, '').split('.')[0] };

/**
 * The directory of a built baseline sidecar: --baseline-dir as given, else REF checked out and
 * built once into os.tmpdir()/bearer-sidecar-bench-<commit> (a `git clone --shared` of this
 * repository, `npm ci --prefer-offline`, `npm run build`), reused while its build stamp is there.
 * Undefined with --baseline-ref=none.
 */
function baselineBuild() {
  if (opt.baselineDir) {
    const dir = resolve(opt.baselineDir);
    if (!existsSync(join(dir, 'dist', 'cli.js'))) throw new Error(`--baseline-dir=${dir} has no dist/cli.js (run npm ci and npm run build there)`);
    let label = dir;
    try {
      label = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {}
    return { dir, label };
  }
  if (opt.baselineRef === 'none') return undefined;
  const git = (args, cwd = root) => execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  let commit;
  try {
    commit = git(['rev-parse', '--verify', `${opt.baselineRef}^{commit}`]);
  } catch {
    throw new Error(`--baseline-ref=${opt.baselineRef}: no such commit in ${root} (git fetch it, or --baseline-ref=none to skip the baseline)`);
  }
  const short = commit.slice(0, 7);
  const dir = join(os.tmpdir(), `bearer-sidecar-bench-${short}`);
  const stamp = join(dir, '.bench-build-done');
  if (existsSync(stamp) && existsSync(join(dir, 'dist', 'cli.js'))) return { dir, label: short };
  log(`baseline: building ${short} once into ${dir} (git clone --shared, npm ci --prefer-offline, npm run build)`);
  rmSync(dir, { recursive: true, force: true });
  const run = (cmd, args, cwd) => {
    const r = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) throw new Error(`baseline ${short}: \`${cmd} ${args.join(' ')}\` in ${cwd} failed (exit ${r.status}); remove ${dir} and retry, or --baseline-ref=none`);
  };
  run('git', ['clone', '--quiet', '--shared', '--no-checkout', root, dir], root);
  run('git', ['checkout', '--quiet', '--detach', commit], dir);
  run('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], dir);
  run('npm', ['run', 'build', '--silent'], dir);
  writeFileSync(stamp, `${commit}\n`);
  return { dir, label: short };
}

/** A sidecar's idle RSS (kB, its process tree): read opt.idleAfter s after it became ready. */
async function idleRssOf(sc) {
  await sleep(Math.max(0, sc.readyAt + opt.idleAfter * 1000 - performance.now()));
  return treeRssKb(sc.pid);
}

/** Spawns the sidecar as the bin starts it (runtime's node, an older build's first-line flags,
 * nodeArgs, then dist/cli.js, which applies its runtime settings itself); resolves once /readyz answers 200, with the time that took. A sidecar that exits
 * first rejects with the end of its log (e.g. a config field this build does not know). */
async function startSidecar({ port, adminPort, name, nodeArgs = [], runtime = currentRuntime, workers, upstream, dir = opt.sidecarDir }) {
  const config = sidecarConfig(port, adminPort, name, { workers, upstream });
  const logFile = join(tmp, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const cli = join(dir, 'dist', 'cli.js');
  const [node, args, env] = binCommand(runtime.path, cli, ['--config', config]);
  args.splice(args.indexOf(cli), 0, ...nodeArgs);
  const t0 = performance.now();
  const child = start(node, args, { stdout: fd, stderr: fd, name, env });
  closeSync(fd);
  const end = Date.now() + 20_000;
  while ((await httpGet(`http://127.0.0.1:${adminPort}/readyz`, { timeout: 1000 })) !== 200) {
    if (child.exitCode !== null) {
      const tail = readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join(' | ').slice(0, 600);
      throw Object.assign(new Error(`${name} exited with ${child.exitCode}: ${tail}`), { logTail: tail });
    }
    if (Date.now() > end) {
      const tree = treeOf(child.pid).length;
      await stop(child, { timeoutMs: 3000 });
      const tail = readFileSync(logFile, 'utf8').trim().split('\n').filter((l) => /"level":"(error|fatal)"|"level":[56]0/.test(l)).slice(-2).join(' | ').slice(0, 600);
      throw new Error(`${name} not ready in 20 s (${tree} process(es); stopped)${tail ? `: ${tail}` : ''}`);
    }
    await sleep(5);
  }
  const readyAt = performance.now();
  const coldStartMs = readyAt - t0;
  await waitFor(`http://127.0.0.1:${port}/`);
  return { child, pid: child.pid, coldStartMs, readyAt, logFile, name };
}

const smallBody = JSON.stringify({ ok: true, id: 12345, name: 'bench', items: [1, 2, 3] });

/** An nginx config of its own prefix under tmp: a reverse proxy to upstreamPort with a static
 * Authorization header (upstream keep-alive 128, no buffering, no access log), or with `static`
 * a server that answers every request with the upstream's small JSON body itself. */
function nginxConf({ name = 'nginx', port = ports.nginx, workers = 1, upstreamPort = ports.upstream, static: isStatic = false } = {}) {
  chmodSync(tmp, 0o755);
  const n = join(tmp, name);
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi', 'logs']) {
    mkdirSync(join(n, d), { recursive: true });
    chmodSync(join(n, d), 0o777);
  }
  const conf = join(n, 'nginx.conf');
  const location = isStatic
    ? `default_type application/json;
      return 200 '${smallBody}';`
    : `proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer static-bench-token";
      proxy_buffering off;
      proxy_request_buffering off;
      client_max_body_size 0;`;
  writeFileSync(
    conf,
    `daemon off;
master_process on;
worker_processes ${workers};
pid ${n}/nginx.pid;
error_log ${n}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${n}/client_body;
  proxy_temp_path ${n}/proxy;
  fastcgi_temp_path ${n}/fastcgi;
  uwsgi_temp_path ${n}/uwsgi;
  scgi_temp_path ${n}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  upstream bench_upstream {
    server 127.0.0.1:${upstreamPort};
    keepalive 128;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      ${location}
    }
  }
}
`,
  );
  return { conf, prefix: n };
}

/** Starts an nginx (nginxConf's options) and waits until it answers and all its workers run; their pids are ended with the run. */
async function startNginx(options) {
  const { conf, prefix } = nginxConf(options);
  const child = start(nginxPath, ['-p', prefix, '-c', conf], { name: 'nginx' });
  await waitFor(`http://127.0.0.1:${options.port}/`);
  for (let i = 0; i < 200 && childrenOf(child.pid).length < (options.workers ?? 1); i++) await sleep(10);
  const workers = childrenOf(child.pid);
  return { child, pid: child.pid, workers };
}

// ---------------------------------------------------------------- load generation
const wrkPath = which('wrk');
let autocannon;
if (!wrkPath) {
  try {
    autocannon = (await import('autocannon')).default;
  } catch {}
}
const loadTool = wrkPath ? 'wrk' : autocannon ? 'autocannon' : undefined;

/** One load run; latencies in microseconds. */
async function load(url, conns, seconds, threads = 1) {
  if (loadTool === 'wrk') return wrk(wrkPath, url, conns, seconds, threads);
  const r = await autocannon({ url, connections: conns, duration: seconds, pipelining: 1 });
  return {
    rps: r.requests.total / (r.duration || seconds),
    requests: r.requests.total,
    p50: r.latency.p50 * 1000,
    p99: r.latency.p99 * 1000,
    max: r.latency.max * 1000,
    errors: r.errors + r.timeouts + r.non2xx,
    loadCpu: NaN,
  };
}

// ---------------------------------------------------------------- machine
/** When the environment sets NODE_EXTRA_CA_CERTS, what it costs every Node process here at start
 * (Node reads and parses that CA bundle before any JavaScript runs): `node -e 0` with and without
 * it, 7 starts each, interleaved; medians of wall ms and max RSS MB. The benchmark itself keeps the
 * environment as it is, so cold start and idle RSS include this cost. */
function extraCaCost() {
  const file = env.NODE_EXTRA_CA_CERTS;
  if (!file) return undefined;
  const start = (withCa) => {
    const t0 = performance.now();
    const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, '-e', '0'], { encoding: 'utf8', env: withCa ? env : { ...env, NODE_EXTRA_CA_CERTS: '' } });
    return { ms: performance.now() - t0, mb: Number(r.stderr.trim().split('\n').pop()) / 1024 };
  };
  if (!existsSync('/usr/bin/time')) return undefined;
  const a = [];
  const b = [];
  for (let i = 0; i < 7; i++) a.push(start(true)), b.push(start(false));
  const med = (xs, k) => median(xs.map((x) => x[k]));
  return { file, ms: med(a, 'ms') - med(b, 'ms'), mb: med(a, 'mb') - med(b, 'mb') };
}

function machine() {
  const cpu = (/^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8')) ?? [])[1] ?? 'unknown';
  // wrk --version exits 1, nginx -v prints to stderr: take the first line of either stream.
  const ver = (cmd, args) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n')[0] || 'n/a';
  };
  let commit = 'unknown';
  try {
    const git = (args) => execFileSync('git', args, { cwd: opt.sidecarDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    commit = git(['rev-parse', '--short', 'HEAD']);
    const dirty = git(['status', '--porcelain', '--', 'src']);
    if (dirty) commit += ' (src/ has uncommitted changes)';
  } catch {}
  if (env.BENCH_SIDECAR_LABEL) commit = env.BENCH_SIDECAR_LABEL;
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu,
    ramGiB: os.totalmem() / 2 ** 30,
    kernel: os.release(),
    node: process.version,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    wrk: wrkPath ? ver('wrk', ['--version']) : 'not installed',
    nginx: which('nginx') ? ver('nginx', ['-v']).replace(/^nginx version: /, '') : 'not installed',
    curl: ver('curl', ['--version']).split(' ').slice(0, 2).join(' '),
    commit,
    extraCa: extraCaCost(),
  };
}

// ---------------------------------------------------------------- token server
const { startTokenServer } = await import(pathToFileURL(join(root, 'dist', 'demo', 'token-server.js')).href);

async function tokenRoundTripMs(url) {
  const body = 'grant_type=client_credentials';
  const auth = `Basic ${Buffer.from('bench-client:bench-secret').toString('base64')}`;
  const once = () =>
    new Promise((resolve, reject) => {
      const t0 = performance.now();
      const req = http.request(url, { method: 'POST', agent: false, headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded', 'content-length': body.length } }, (res) => {
        res.resume();
        res.on('end', () => resolve(performance.now() - t0));
      });
      req.on('error', reject);
      req.end(body);
    });
  const xs = [];
  for (let i = 0; i < 5; i++) xs.push(await once());
  return median(xs);
}

// ---------------------------------------------------------------- streaming (curl)
async function countLogLines(file) {
  let lines = 0;
  let requestLines = 0;
  let tail = '';
  for await (const chunk of createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 })) {
    const text = tail + chunk;
    const parts = text.split('\n');
    tail = parts.pop();
    lines += parts.length;
    for (const p of parts) if (p.includes('"msg":"request"')) requestLines++;
  }
  return { lines, requestLines };
}

// ================================================================= profile mode
if (flags.profile) {
  await runProfile();
  process.exit(0);
}

async function runProfile() {
  if (!wrkPath) throw new Error('--profile needs wrk (apt-get install wrk)');
  for (const p of [ports.upstream, ports.token, ports.sidecar, ports.admin, ports.undici]) await assertPortFree(p);
  const profDir = env.BENCH_PROFILE_DIR ?? '/tmp/prof';
  rmSync(profDir, { recursive: true, force: true });
  mkdirSync(join(profDir, 'sidecar'), { recursive: true });
  mkdirSync(join(profDir, 'undici'), { recursive: true });
  const tokens = await startTokenServer({ host: '127.0.0.1', port: ports.token, clients: tokenClients, signingKey: 'bench-signing-key', expiresInSeconds: 3600 });
  const upstream = start(process.execPath, [join(benchDir, 'upstream.mjs'), String(ports.upstream)], { name: 'upstream' });
  await waitFor(`http://127.0.0.1:${ports.upstream}/`);
  const secs = opt.profileSeconds;
  const results = {};
  const profileOne = async (name, startIt, url) => {
    const child = await startIt();
    await load(url, 10, 3); // warm-up, excluded from the summary below
    await waitQuiet();
    const from = Number(process.hrtime.bigint() / 1000n);
    const c0 = cpuSeconds(child.pid);
    const r = await load(url, 10, secs);
    const cpu = cpuSeconds(child.pid) - c0;
    const to = Number(process.hrtime.bigint() / 1000n);
    await stop(child);
    const dir = join(profDir, name);
    const file = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(dir, f))[0];
    if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
    // Only the samples of the measured run (the profile's clock is the monotonic one of hrtime).
    const agg = aggregate(loadProfile(file), { from, to });
    results[name] = { file, load: r, cpuUsPerReq: (cpu * 1e6) / r.requests, cpuPct: (100 * cpu * 1e6) / (to - from), agg };
    log(`${name}: ${fmt(r.rps)} req/s, p50 ${fmt(ms(r.p50), 2)} ms, ${fmt(results[name].cpuUsPerReq, 1)} µs CPU/request, profile ${file}`);
  };
  await profileOne(
    'sidecar',
    async () => (await startSidecar({ port: ports.sidecar, adminPort: ports.admin, name: 'sidecar-prof', nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${join(profDir, 'sidecar')}`] })).child,
    `http://127.0.0.1:${ports.sidecar}/`,
  );
  await profileOne(
    'undici',
    async () => {
      const c = start(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${join(profDir, 'undici')}`, join(benchDir, 'proxy-undici.mjs'), String(ports.undici), String(ports.upstream)], { name: 'undici' });
      await waitFor(`http://127.0.0.1:${ports.undici}/`);
      return c;
    },
    `http://127.0.0.1:${ports.undici}/`,
  );
  await stop(upstream);
  await tokens.close();

  const s = results.sidecar;
  const u = results.undici;
  const pk = (agg) => Object.fromEntries(agg.charged.map((r) => [r.key, r]));
  const sp = pk(s.agg);
  const up = pk(u.agg);
  const keys = [...new Set([...Object.keys(sp), ...Object.keys(up)])].filter((k) => k !== '(idle)');
  // µs of CPU per request spent in each package: busy-share × CPU per request.
  const perReq = (p, r) => (p ? (p.pctBusy / 100) * r.cpuUsPerReq : 0);
  const rows = keys
    .map((k) => ({ k, s: perReq(sp[k], s), u: perReq(up[k], u) }))
    .sort((a, b) => b.s - b.u - (a.s - a.u));
  const m = machine();
  const md = [
    `Profiled ${m.date} on ${m.nproc} × ${m.cpu}, Node ${m.node}, sidecar ${m.commit}: \`node --cpu-prof\` (1 ms sampling; it slows both processes), wrk -t1 -c10 for ${secs} s after a 3 s warm-up, SIGTERM to flush; small JSON body. Only the samples of the ${secs} s run are counted.`,
    '',
    '| | req/s | p50 ms | p99 ms | proxy CPU % | CPU µs / request |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...[['bearer-sidecar', s], ['undici Pool proxy', u]].map(([n, r]) => `| ${n} | ${fmt(r.load.rps)} | ${fmt(ms(r.load.p50), 2)} | ${fmt(ms(r.load.p99), 2)} | ${fmt(r.cpuPct)} | ${fmt(r.cpuUsPerReq, 1)} |`),
    '',
    'CPU µs per request charged to each package: a sample counts for the deepest frame of a dependency, the app (dist/) or the baseline script on its stack, so the natives and node core work a package calls count for it; "node core" is work with no such frame (HTTP parsing, event loop). Share of busy samples × CPU µs/request (from /proc, so it includes threads the profiler does not see: GC helpers, libuv pool). Largest difference first:',
    '',
    '| charged to | sidecar µs/req | undici proxy µs/req | difference |',
    '| --- | ---: | ---: | ---: |',
    ...rows.filter((r) => r.s >= 0.5 || r.u >= 0.5).map((r) => `| ${r.k} | ${fmt(r.s, 1)} | ${fmt(r.u, 1)} | ${r.s - r.u >= 0 ? '+' : ''}${fmt(r.s - r.u, 1)} |`),
    '',
    toMarkdown(s.agg, { top: 30, title: 'bearer-sidecar: top self time' }),
    '',
    toMarkdown(u.agg, { top: 15, title: 'undici Pool proxy: top self time' }),
    '',
    '#### bearer-sidecar: inclusive time of selected frames (% of busy)',
    '',
    '| frame | where | inclusive % |',
    '| --- | --- | ---: |',
    ...inclusiveOf(s.agg, /^(onResponse|hookRunner|preHandlerCallback|runPreParsing|handleRequest|wrapThenable|attachToken|rewriteRequestHeaders|onSendEnd|onSendHook|reply\.from|from|proxy|LOG|write|asJson|redact|kOnHeaders|onHeaders|request|dispatch|routeHandler|lookup|find|hookIterator|handler|serialize|ServerResponse\.writeHead|writeHead|_writeRaw|end|parserOnHeadersComplete|parserOnIncoming|onRequest|emit|processTicksAndRejections|onSend|send|pipe|finished|eos|buildURL|getQueryString|rewriteHeaders|copyHeaders|filterPseudoHeaders|stripHttp1ConnectionHeaders|requestHeaders|fastJsonStringify|stringify)\t/)
      .filter((r) => r.pctBusy >= 2)
      .slice(0, 40)
      .map((r) => {
        const [n, w] = r.key.split('\t');
        return `| \`${n}\` | \`${w}\` | ${fmt(r.pctBusy, 1)} |`;
      }),
  ].join('\n');
  const mdFile = join(profDir, 'profile.md');
  writeFileSync(mdFile, `${md}\n`);
  log(`\n${md}\n\nprofile summary: ${mdFile}`);
  if (opt.out) {
    writeSection(opt.out, 'profile', md);
    log(`written into ${opt.out} (bench:profile section)`);
  }
}

// ================================================================= BENCHMARKS.md
function template() {
  return `# Benchmarks

How bearer-sidecar compares with talking to the upstream directly, with two minimal Node proxies
and with nginx, on one machine, everything on 127.0.0.1, on the machine's Node and Node 24; memory,
CPU per request against a baseline build, and workers: 1 vs 2. Issues 7 and 14.

## How to run

\`\`\`sh
apt-get install -y wrk nginx      # optional but recommended: wrk (else autocannon, if installed), nginx (else skipped)
npm run bench                     # builds, then ~33 minutes: 6 s per case, 5 interleaved rounds, Node 20 and 24, 1 GiB streamed each way
npm run bench -- --quick          # smoke run, ~4 minutes; writes to /tmp/bearer-sidecar-bench-quick.md
npm run bench -- --profile        # CPU profiles of the sidecar and the undici baseline (/tmp/prof), summary below
\`\`\`

Other options: \`--duration=S --rounds=N --conns=1,10,100 --big-conns=10 --stream-bytes=N --only=sidecar,undici --no-nginx --out=FILE --no-write\`,
\`--runtimes=current,24 --baseline-ref=REF --sidecar-dir=DIR --cores-conns=10,100\` and more: \`node scripts/bench.mjs --help\`.
The script rewrites only the parts of this file between the \`bench:results\` and \`bench:profile\` markers.

<!-- bench:results:start -->
<!-- bench:results:end -->

## Profile

<!-- bench:profile:start -->
<!-- bench:profile:end -->
`;
}
const writeSection = (file, name, content) => writeSectionOf(file, name, content, template);

// ================================================================= the benchmark
if (!loadTool) {
  process.stderr.write('bench: no load generator: install wrk (apt-get install wrk) or add autocannon as a devDependency\n');
  process.exit(2);
}
const t00 = Date.now();
const loadAvgStart = os.loadavg()[0];
const nginxPath = flags['no-nginx'] ? undefined : which('nginx');
const only = flags.only ? new Set(flags.only.split(',')) : undefined;
const m = machine();
log(`bench: ${m.nproc} × ${m.cpu}, Node ${m.node}, ${loadTool}; ${opt.duration} s per case, ${opt.rounds} round(s), conns ${opt.conns.join('/')} (1 MiB: ${opt.bigConns.join('/') || 'none'})`);
if (!nginxPath) log('bench: nginx not installed (or --no-nginx): the nginx case is skipped (apt-get install nginx)');

for (const p of Object.values(ports)) await assertPortFree(p);
const tokens = await startTokenServer({ host: '127.0.0.1', port: ports.token, clients: tokenClients, signingKey: 'bench-signing-key', expiresInSeconds: 3600 });
const tokenRttMs = await tokenRoundTripMs(tokens.url);

const upstream = start(process.execPath, [join(benchDir, 'upstream.mjs'), String(ports.upstream)], { name: 'upstream' });
await waitFor(`http://127.0.0.1:${ports.upstream}/`);

const runtimes = resolveRuntimes(opt.runtimes);
const coresRuntimes = resolveRuntimes(opt.coresRuntimes);
const many = runtimes.length > 1;
log(`bench: runtimes ${runtimes.map((r) => `${r.version} (${r.key})`).join(', ')}; sidecar started as ${startedAs()}`);
// Target names: the machine's runtime keeps the plain names (sidecar, undici, ...); another gets @<major>.
const suffix = (rt) => (rt.key === 'current' ? '' : `@${rt.major}`);
const rtLabel = (rt) => (many || rt.key !== 'current' ? ` (Node ${rt.major})` : '');

/** name → { label, base URL, pid: proxy pid for RSS/CPU (undefined for direct), runtime } */
const targets = [];
const want = (n) => !only || only.has(n);
if (want('direct')) targets.push({ name: 'direct', kind: 'direct', label: 'direct (no proxy)', base: `http://127.0.0.1:${ports.upstream}` });

const skipped = []; // what could not run, and why
const loadSidecars = []; // { runtime, name, sidecar, idleRssKb }
if (want('sidecar')) {
  for (const rt of runtimes) {
    const name = `sidecar${suffix(rt)}`;
    const port = rt.key === 'current' ? ports.sidecar : ports.sidecar24;
    const sc = await startSidecar({ port, adminPort: rt.key === 'current' ? ports.admin : ports.admin24, name: name.replace('@', '-'), runtime: rt });
    loadSidecars.push({ runtime: rt, name, sidecar: sc });
    targets.push({ name, kind: 'sidecar', runtime: rt, label: `bearer-sidecar${rtLabel(rt)}`, base: `http://127.0.0.1:${port}`, pid: sc.pid, sidecar: sc });
  }
}
// The baseline build (issue 14's CPU-per-request target), on the image's runtime, beside the
// current build at opt.baselineConns with the small body, interleaved with everything else.
const baselineRt = runtimes.find((r) => r.major === '24') ?? runtimes[0];
let baseline; // { dir, label, name }
if (want('sidecar') && baselineRt) {
  try {
    const b = baselineBuild();
    if (b && opt.baselineConns.length) {
      const name = `baseline${suffix(baselineRt)}`;
      const sc = await startSidecar({ port: ports.baseline, adminPort: ports.baselineAdmin, name: name.replace('@', '-'), runtime: baselineRt, dir: b.dir });
      baseline = { ...b, name, sidecar: sc };
      targets.push({ name, kind: 'baseline', runtime: baselineRt, label: `bearer-sidecar (baseline ${b.label})${rtLabel(baselineRt)}`, base: `http://127.0.0.1:${ports.baseline}`, pid: sc.pid, sidecar: sc, cases: (c) => c.body === 'small' && opt.baselineConns.includes(c.conns) });
    }
  } catch (e) {
    skipped.push(`baseline build: ${e.message}`);
    log(`bench: skipped the baseline: ${e.message}`);
  }
}
if (want('node-http')) {
  const c = start(process.execPath, [join(benchDir, 'proxy-http.mjs'), String(ports.nodeHttp), String(ports.upstream)], { name: 'node-http' });
  await waitFor(`http://127.0.0.1:${ports.nodeHttp}/`);
  targets.push({ name: 'node-http', kind: 'node-http', runtime: currentRuntime, label: `node:http + http.Agent${rtLabel(currentRuntime)}`, base: `http://127.0.0.1:${ports.nodeHttp}`, pid: c.pid, idleRssKb: procStatus(c.pid).rssKb });
}
if (want('undici')) {
  for (const rt of runtimes) {
    const port = rt.key === 'current' ? ports.undici : ports.undici24;
    const c = start(rt.path, [join(benchDir, 'proxy-undici.mjs'), String(port), String(ports.upstream)], { name: `undici${suffix(rt)}` });
    await waitFor(`http://127.0.0.1:${port}/`);
    targets.push({ name: `undici${suffix(rt)}`, kind: 'undici', runtime: rt, label: `node:http + undici Pool${rtLabel(rt)}`, base: `http://127.0.0.1:${port}`, pid: c.pid, idleRssKb: procStatus(c.pid).rssKb });
  }
}
let nginx;
if (nginxPath && want('nginx')) {
  nginx = await startNginx({ port: ports.nginx, workers: 1 });
  const worker = nginx.workers[0];
  // The worker is the proxy; the master's CPU counts as ours (not "other").
  targets.push({ name: 'nginx', kind: 'nginx', label: 'nginx (1 worker)', base: `http://127.0.0.1:${ports.nginx}`, pid: worker, alsoOurs: [nginx.pid], idleRssKb: procStatus(worker).rssKb });
}

// Idle RSS of the load-test sidecars (and the baseline), each opt.idleAfter s after it was ready.
for (const t of targets) if (t.sidecar) t.idleRssKb = await idleRssOf(t.sidecar);
for (const l of loadSidecars) l.idleRssKb = targets.find((t) => t.name === l.name).idleRssKb;

// Warm-up (not recorded): JIT, upstream keep-alive pools.
for (const t of targets) {
  await load(`${t.base}/`, 10, opt.warmup);
  if (opt.bigConns.length && (!t.cases || opt.bigConns.some((c) => t.cases({ body: '1MiB', conns: c })))) await load(`${t.base}/big`, 10, 1);
}
for (const t of targets) if (t.pid) t.warmRssKb = procStatus(t.pid).rssKb;

const cpuOf = (pids) => pids.reduce((a, p) => a + (cpuSeconds(p) || 0), 0);
let retried = 0;
/**
 * Runs every case on every target, interleaved: rounds × cases, the target order rotated each
 * case; a run that something else disturbed is re-run once while the noise budget lasts. A target's
 * CPU, page faults and peak RSS are its pid's, or its whole process tree's with `tree` (peak: the
 * sum of each process's VmHWM); `alsoOurs` pids and upstreamPids() count as ours, not as other load.
 */
async function runCases(list, cases, upstreamPids, tag = '', { threads = 1 } = {}) {
  const out = []; // { round, body, conns, target, rps, p50, p99, max, errors, cpuPct, cpuUsPerReq, upCpuPct, loadCpuPct, peakKb, procs }
  const runsOf = (t) => cases.filter((c) => !t.cases || t.cases(c)).length;
  const totalRuns = opt.rounds * list.reduce((a, t) => a + runsOf(t), 0);
  for (let round = 0; round < opt.rounds; round++) {
    for (const [ci, c] of cases.entries()) {
      const k = (round + ci) % list.length;
      const order = [...list.slice(k), ...list.slice(0, k)]; // rotate so no target always goes first
      for (const t of order) {
        if (t.cases && !t.cases(c)) continue;
        for (let attempt = 0; ; attempt++) {
          await waitQuiet();
          if (opt.rewarm > 0) await load(`${t.base}${c.path}`, c.conns, opt.rewarm, threads);
          const pids = t.pid ? (t.tree ? treeOf(t.pid) : [t.pid]) : [];
          const ups = upstreamPids();
          for (const p of pids) resetPeak(p);
          const f0 = pids.reduce((a, p) => a + (majorFaults(p) || 0), 0);
          const c0 = cpuOf(pids);
          const a0 = cpuOf(t.alsoOurs ?? []);
          const u0 = cpuOf(ups);
          const m0 = machineBusySeconds();
          const b0 = process.cpuUsage();
          const w0 = performance.now();
          const r = await load(`${t.base}${c.path}`, c.conns, opt.duration, threads);
          const wall = (performance.now() - w0) / 1000;
          const cpu = pids.length ? cpuOf(pids) - c0 : NaN;
          const upCpu = cpuOf(ups) - u0;
          const peakKb = pids.length ? pids.reduce((a, p) => a + (procStatus(p).hwmKb || 0), 0) : NaN;
          const majflt = pids.length ? pids.reduce((a, p) => a + (majorFaults(p) || 0), 0) - f0 : NaN;
          // CPU used by anything else on the machine meanwhile (other people's builds and tests, steal).
          const bu = process.cpuUsage(b0);
          const ours = (Number.isFinite(cpu) ? cpu : 0) + upCpu + (Number.isFinite(r.loadCpu) ? r.loadCpu : 0) + (bu.user + bu.system) / 1e6 + (cpuOf(t.alsoOurs ?? []) - a0);
          const otherPct = (100 * Math.max(0, machineBusySeconds() - m0 - ours)) / wall;
          const run = { round, body: c.body, conns: c.conns, target: t.name, ...r, cpuPct: (100 * cpu) / wall, cpuUsPerReq: (cpu * 1e6) / r.requests, upCpuPct: (100 * upCpu) / wall, loadCpuPct: (100 * r.loadCpu) / wall, peakKb, procs: pids.length, majflt, otherPct, attempt };
          if (otherPct > 15 && attempt === 0 && noiseSpent + opt.duration <= opt.noiseBudget) {
            noiseSpent += opt.duration;
            log(`        ${tag}r${round + 1} ${c.body} c=${c.conns} ${t.name}: disturbed (other CPU ${fmt(otherPct)}%), running it again`);
            retried++;
            await sleep(250);
            continue;
          }
          out.push(run);
          log(
            `${tag}[${String(out.length).padStart(3)}/${totalRuns}] r${round + 1} ${c.body.padEnd(5)} c=${String(c.conns).padEnd(3)} ${t.name.padEnd(12)} ${fmt(r.rps).padStart(7)} req/s  p50 ${fmt(ms(r.p50), 2).padStart(6)} ms  p99 ${fmt(ms(r.p99), 2).padStart(7)} ms  max ${fmt(ms(r.max), 1).padStart(7)} ms  cpu ${fmt((cpu * 100) / wall).padStart(3)}%  other ${fmt(otherPct).padStart(3)}%${majflt > 0 ? `  major faults ${majflt}` : ''}${r.errors ? `  ERRORS ${r.errors}` : ''}`,
          );
          await sleep(250);
          break;
        }
      }
    }
  }
  return out;
}

const cases = [
  ...opt.conns.map((c) => ({ body: 'small', path: '/', conns: c })),
  ...opt.bigConns.map((c) => ({ body: '1MiB', path: '/big', conns: c })),
];
const runs = await runCases(targets, cases, () => [upstream.pid]);
for (const l of loadSidecars) l.tokenRequests = tokenRequestsOf(tokens, l.sidecar.name);
await sleep(500);
for (const l of loadSidecars) {
  l.logCheck = await countLogLines(l.sidecar.logFile);
  l.logCheck.sidecarRequests = runs.filter((r) => r.target === l.name).reduce((a, r) => a + r.requests, 0);
}
for (const t of targets) if (t.pid) t.endRssKb = procStatus(t.pid).rssKb;

// Stop the load-test proxies; the memory and streaming tests get fresh sidecars (their own RSS baseline).
for (const c of [...children]) if (c !== upstream) await stop(c);

// ---------------------------------------------------------------- memory and streaming, per runtime
/** A fresh sidecar's memory (sums over its process tree): idle (opt.idleAfter s after ready, one token, no
 * traffic), peak during opt.memLoad s of 100 keep-alive connections of small requests, opt.memAfter
 * s after that load; then, with stream, opt.streamBytes down and up (after a 64 MiB warm-up each
 * way), growth = peak during a transfer − RSS after the warm-up. */
async function memoryOf({ runtime, workers, name, stream }) {
  const s = await startSidecar({ port: ports.sidecar2, adminPort: ports.admin2, name, runtime, workers });
  const via = `http://127.0.0.1:${ports.sidecar2}`;
  const idleKb = await idleRssOf(s);
  const res = { runtime, workers: workers ?? 1, coldStartMs: s.coldStartMs, idleKb, procs: treeOf(s.pid).length };
  const peak = await sampled(s.pid, () => load(`${via}/`, 100, opt.memLoad));
  res.loadPeakKb = peak.peakKb;
  res.loadRps = peak.result.rps;
  res.loadErrors = peak.result.errors;
  await sleep(opt.memAfter * 1000);
  res.afterKb = treeRssKb(s.pid);
  log(`  ${name}: idle ${fmt(mib(res.idleKb), 1)} MB, peak under 100 connections ${fmt(mib(res.loadPeakKb), 1)} MB, ${opt.memAfter} s later ${fmt(mib(res.afterKb), 1)} MB (${res.procs} process(es))`);
  if (stream) {
    await download(via, 64 * 2 ** 20);
    await upload(via, 64 * 2 ** 20);
    await sleep(1000);
    res.warmKb = treeRssKb(s.pid);
    const direct = `http://127.0.0.1:${ports.upstream}`;
    res.reps = Math.max(1, Math.min(opt.rounds, 2));
    Object.assign(res, { downDirect: [], downSidecar: [], upDirect: [], upSidecar: [], downPeakKb: [], upPeakKb: [] });
    for (let i = 0; i < res.reps; i++) {
      res.downDirect.push((await download(direct, opt.streamBytes)).mbps);
      const d = await sampled(s.pid, () => download(via, opt.streamBytes));
      res.downSidecar.push(d.result.mbps);
      res.downPeakKb.push(d.peakKb);
      res.upDirect.push((await upload(direct, opt.streamBytes)).mbps);
      const u = await sampled(s.pid, () => upload(via, opt.streamBytes));
      res.upSidecar.push(u.result.mbps);
      res.upPeakKb.push(u.peakKb);
      log(`  rep ${i + 1}: down direct ${fmt(res.downDirect[i])} MiB/s, sidecar ${fmt(res.downSidecar[i])} MiB/s (peak RSS ${fmt(mib(d.peakKb), 1)} MB); up direct ${fmt(res.upDirect[i])} MiB/s, sidecar ${fmt(res.upSidecar[i])} MiB/s (peak RSS ${fmt(mib(u.peakKb), 1)} MB)`);
    }
    res.streamAfterKb = treeRssKb(s.pid);
  }
  res.tokenRequests = tokenRequestsOf(tokens, name);
  await stop(s.child);
  return res;
}

const memory = []; // one per runtime (workers: 1, with streaming), then workers: 2 on the cores runtimes
if (want('sidecar') && !flags['load-only']) {
  log(`memory: per runtime, a fresh sidecar idle, under ${opt.memLoad} s of 100 connections, ${opt.memAfter} s after; then ${fmt(opt.streamBytes / 2 ** 20)} MiB streamed each way`);
  for (const rt of runtimes) memory.push(await memoryOf({ runtime: rt, name: `memory-${rt.major}`, stream: true }));
  for (const rt of coresRuntimes) {
    try {
      memory.push(await memoryOf({ runtime: rt, workers: 2, name: `memory-${rt.major}-w2` }));
    } catch (e) {
      skipped.push(`memory of workers: 2 on Node ${rt.major}: ${e.message}`);
      log(`  skipped workers: 2 on Node ${rt.major}: ${e.message}`);
    }
  }
}

// ---------------------------------------------------------------- cores: workers 1 vs 2, nginx 1 vs 2
let cores; // { targets, runs, conns, staticPid }
if (!flags['load-only'] && opt.coresConns.length && (!only || only.has('sidecar') || only.has('nginx'))) {
  if (!nginxPath) skipped.push('cores comparison: needs nginx (the static upstream and the nginx proxies); apt-get install nginx');
  else {
    log(`cores: sidecar workers 1 vs 2 (Node ${coresRuntimes.map((r) => r.major).join(', ')}) and nginx 1 vs 2 workers, in front of a static nginx upstream (1 worker)`);
    const st = await startNginx({ name: 'nginx-static', port: ports.static, workers: 1, static: true });
    const ct = [];
    let i = 0;
    for (const rt of coresRuntimes) {
      for (const w of [1, 2]) {
        const port = ports.cores + i;
        const adminPort = ports.coresAdmin + i++;
        const name = `sidecar-w${w}${suffix(rt) || `@${rt.major}`}`;
        try {
          if (i > 1) await assertPortFree(port), await assertPortFree(adminPort);
          // workers: 1 is the default; left out so that a build without the field runs it too.
          const sc = await startSidecar({ port, adminPort, name: name.replace('@', '-'), runtime: rt, workers: w === 1 ? undefined : w, upstream: `http://127.0.0.1:${ports.static}` });
          ct.push({ name, kind: 'sidecar', workers: w, runtime: rt, label: `bearer-sidecar workers: ${w} (Node ${rt.major})`, base: `http://127.0.0.1:${port}`, pid: sc.pid, tree: true, sidecar: sc });
        } catch (e) {
          skipped.push(`cores: ${name}: ${e.message}`);
          log(`  skipped ${name}: ${e.message}`);
        }
      }
    }
    for (const w of [1, 2]) {
      const port = w === 1 ? ports.nginx1 : ports.nginx2;
      const n = await startNginx({ name: `nginx-proxy-${w}`, port, workers: w, upstreamPort: ports.static });
      ct.push({ name: `nginx-w${w}`, kind: 'nginx', workers: w, label: `nginx ${w} worker${w > 1 ? 's' : ''}`, base: `http://127.0.0.1:${port}`, pid: n.pid, tree: true });
    }
    for (const t of ct) await load(`${t.base}/`, 10, opt.warmup, opt.coresThreads);
    const coresRuns = await runCases(ct, opt.coresConns.map((c) => ({ body: 'small', path: '/', conns: c })), () => treeOf(st.pid), 'cores ', { threads: opt.coresThreads });
    for (const t of ct) if (t.sidecar) t.tokenRequests = tokenRequestsOf(tokens, t.sidecar.name);
    cores = { targets: ct, runs: coresRuns, conns: opt.coresConns };
    for (const c of [...children]) if (c !== upstream) await stop(c);
  }
}

// ---------------------------------------------------------------- cold starts, per runtime
const coldStarts = new Map(runtimes.map((rt) => [rt.key, []])); // runtime key → ms
const coldIdleKb = new Map(runtimes.map((rt) => [rt.key, []]));
for (const l of loadSidecars) coldStarts.get(l.runtime.key).push(l.sidecar.coldStartMs);
for (const r of memory) if (r.workers === 1) coldStarts.get(r.runtime.key)?.push(r.coldStartMs);
if (want('sidecar') && !flags['load-only']) {
  for (let i = 0; i < 3; i++) {
    for (const rt of runtimes) {
      const s = await startSidecar({ port: ports.cold, adminPort: ports.coldAdmin, name: `sidecar-cold-${rt.major}-${i}`, runtime: rt });
      coldStarts.get(rt.key).push(s.coldStartMs);
      coldIdleKb.get(rt.key).push(await idleRssOf(s));
      await stop(s.child);
    }
  }
}
await stop(upstream);
await tokens.close();

// ================================================================= report
// A case's runs for the tables and targets: those that nothing else disturbed (other CPU ≤ 15 %),
// when at least two such remain; else all of them. The same rule for every target.
const disturbed = (r) => r.otherPct > 15;
const caseRuns = (target, body, conns, rs = runs) => rs.filter((r) => r.target === target && r.body === body && r.conns === conns);
const sel = (target, body, conns, rs = runs) => {
  const all = caseRuns(target, body, conns, rs);
  const clean = all.filter((r) => !disturbed(r));
  return clean.length >= 2 ? clean : all;
};
const stat = (rs, key) => {
  const xs = rs.map((r) => r[key]).filter(Number.isFinite);
  return { med: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
};
const has = (t) => targets.some((x) => x.name === t);
const spread = (s, f = (x) => x, d = 0) => (s.n > 1 ? `${fmt(f(s.med), d)} (${fmt(f(s.min), d)}–${fmt(f(s.max), d)})` : fmt(f(s.med), d));

const lines = [];
const w = (s = '') => lines.push(s);
w(`### Results of ${m.date}`);
w();
w(`Machine: ${m.nproc} CPUs (\`nproc\`), ${m.cpu}, ${fmt(m.ramGiB, 1)} GiB RAM, Linux ${m.kernel}. Node ${m.node} (this script, the upstream and the node:http baseline); the sidecar and the undici baseline on ${runtimes.map((r) => `Node ${r.version}${r.key === 'current' ? ' (the machine\'s)' : ' (scripts/node24, the image\'s)'}`).join(' and ')}, the sidecar started as the bin starts it: \`${startedAs()}\` (the program applies its runtime settings itself: src/runtime/settings.ts, BEARER_SIDECAR_TUNING unset, the default profile). Load: ${loadTool === 'wrk' ? m.wrk.replace(/ Copyright.*$/, '') : 'autocannon'} (1 thread, keep-alive). nginx: ${m.nginx}. ${m.curl}. Sidecar commit ${m.commit}${opt.sidecarDir !== root ? ` (the build in ${opt.sidecarDir})` : ''}${baseline ? `; baseline build ${baseline.label} (${baseline.dir})` : ''}.`);
w();
if (m.extraCa) {
  w(`This machine's environment sets NODE_EXTRA_CA_CERTS (${m.extraCa.file}), and Node reads that bundle at the start of every process, before any JavaScript: \`node -e 0\` takes ${fmt(m.extraCa.ms)} ms and ${fmt(m.extraCa.mb, 1)} MB more with it than without (medians of 7 starts each). Every process here, the sidecar's cold starts and idle RSS included, runs with it, as CI does; a deployment without the variable (the image sets none) starts that much leaner.`);
  w();
}
if (baseline) {
  w(`Baseline: the rows "bearer-sidecar (baseline ${baseline.label})" are the sidecar built from ${baseline.label} (issue 14's starting point), started the same way on Node ${baselineRt.version}, beside the current build in the same interleaved rounds, small body at ${opt.baselineConns.join(' and ')} connections; the target compares the medians of CPU µs per request at 100 connections (issue 14: no more than 5 % above).`);
  w();
}
w(`Load average (1 min) before the run: ${fmt(loadAvgStart, 2)}${loadAvgStart > 0.5 ? ' — something else was using the CPU; figures are noisier than usual' : ''}.`);
w();
w(`Method: every process on the same ${m.nproc} cores; each case ${opt.duration} s; ${opt.rounds} round(s), the cases interleaved and the target order rotated each case; a ${opt.warmup} s warm-up per target first${opt.rewarm > 0 ? `, and ${opt.rewarm} s of unrecorded load with the same URL and connections just before each recorded run (a target idles a minute or more between its cases, and this machine's kernel pages out file pages idle for 60 s: without it the first requests wait for the node binary's code to be read back)` : ''}. Figures are the median across rounds with min–max in brackets; a run that something else disturbed (other CPU above 15 %) is re-run once while the noise budget lasts, and left out of the figures when at least two undisturbed runs of its case remain. The sidecar runs at log level info, one JSON line per request written to a file (pino, asynchronous). The baselines add a static \`Authorization\` header and log nothing; nginx: 1 worker, upstream keep-alive 128, \`access_log off\`, \`proxy_buffering off\`. CPU % is the proxy process's user+system time over the run's wall time (100 = one core); µs/req is that CPU time per request, the figure least disturbed by noise. Other CPU % (the worst round) is what the rest of the machine used meanwhile — other sessions' builds and tests, VM steal — beyond the upstream, the proxy, wrk and this script; above ~10 the round was disturbed. Peak RSS: the proxy process's VmHWM during the case (reset before each run; nginx: the worker).`);
w();
for (const body of ['small', '1MiB']) {
  const cs = body === 'small' ? opt.conns : opt.bigConns;
  if (!cs.length) continue;
  w(`#### ${body === 'small' ? `Small JSON body (${Buffer.byteLength(smallBody)} bytes)` : '1 MiB body'}`);
  w();
  w('| conns | target | req/s | p50 ms | p99 ms | max ms | proxy CPU % | CPU µs/req | peak RSS MB | errors | other CPU % |');
  w('| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const c of cs) {
    for (const t of targets) {
      const rs = sel(t.name, body, c);
      if (!rs.length) continue;
      // Errors and peak RSS from every recorded run, the left-out ones too: neither may hide.
      const every = caseRuns(t.name, body, c);
      const errors = every.reduce((a, r) => a + r.errors, 0);
      w(`| ${c} | ${t.label} | ${spread(stat(rs, 'rps'))} | ${spread(stat(rs, 'p50'), ms, 2)} | ${spread(stat(rs, 'p99'), ms, 2)} | ${fmt(ms(stat(rs, 'max').med), 1)} | ${t.pid ? fmt(stat(rs, 'cpuPct').med) : '—'} | ${t.pid ? fmt(stat(rs, 'cpuUsPerReq').med, 1) : '—'} | ${t.pid ? fmt(mib(Math.max(...every.map((r) => r.peakKb))), 1) : '—'} | ${errors ? `**${errors}**` : 0} | ${fmt(stat(rs, 'otherPct').max)} |`);
    }
  }
  w();
}

// Ratios (medians) and targets, per runtime: the sidecar against the baselines on the same node.
const med = (t, body, c, key, rs = runs) => stat(sel(t, body, c, rs), key).med;
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);
const sidecarRts = loadSidecars.map((l) => l.runtime);
const fasterNode = (rt, body, c) => {
  const a = has(`node-http${suffix(rt)}`) ? med(`node-http${suffix(rt)}`, body, c, 'rps') : -1;
  const b = has(`undici${suffix(rt)}`) ? med(`undici${suffix(rt)}`, body, c, 'rps') : -1;
  if (a < 0 && b < 0) return undefined;
  return a >= b ? `node-http${suffix(rt)}` : `undici${suffix(rt)}`;
};
const ratioRows = [];
if (sidecarRts.length) {
  w('#### Ratios (sidecar ÷ other, medians; each runtime against the baselines on the same runtime)');
  w();
  w('| runtime | body | conns | req/s ÷ direct | req/s ÷ node:http | req/s ÷ undici | req/s ÷ nginx | p50 ÷ faster Node proxy | p99 ÷ faster Node proxy | faster Node proxy | its CPU µs/req ÷ sidecar\'s |');
  w('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |');
  for (const rt of sidecarRts) {
    const sc = `sidecar${suffix(rt)}`;
    for (const [body, cs] of [['small', opt.conns], ['1MiB', opt.bigConns]]) {
      for (const c of cs) {
        const s = (k) => med(sc, body, c, k);
        const f = fasterNode(rt, body, c);
        const row = {
          rt,
          body,
          c,
          direct: has('direct') ? ratio(s('rps'), med('direct', body, c, 'rps')) : NaN,
          nodeHttp: has(`node-http${suffix(rt)}`) ? ratio(s('rps'), med(`node-http${suffix(rt)}`, body, c, 'rps')) : NaN,
          undici: has(`undici${suffix(rt)}`) ? ratio(s('rps'), med(`undici${suffix(rt)}`, body, c, 'rps')) : NaN,
          nginx: has('nginx') ? ratio(s('rps'), med('nginx', body, c, 'rps')) : NaN,
          faster: f ? ratio(s('rps'), med(f, body, c, 'rps')) : NaN,
          p50: f ? ratio(s('p50'), med(f, body, c, 'p50')) : NaN,
          p99: f ? ratio(s('p99'), med(f, body, c, 'p99')) : NaN,
          cpuEff: f ? ratio(med(f, body, c, 'cpuUsPerReq'), s('cpuUsPerReq')) : NaN,
          f,
        };
        ratioRows.push(row);
        if (![row.direct, row.nodeHttp, row.undici, row.nginx, row.faster].some(Number.isFinite)) continue;
        w(`| Node ${rt.major} | ${body} | ${c} | ${fmt(row.direct, 2)} | ${fmt(row.nodeHttp, 2)} | ${fmt(row.undici, 2)} | ${fmt(row.nginx, 2)} | ${fmt(row.p50, 2)} | ${fmt(row.p99, 2)} | ${f ?? '—'} | ${fmt(row.cpuEff, 2)} |`);
      }
    }
  }
  w();
  w('The last column is the throughput ratio to expect when both are CPU-bound, from CPU time per request alone; it is much less sensitive than req/s to other load on the machine. The node:http baseline runs on the machine\'s node only.');
  w();
}

const streams = memory.filter((r) => r.downSidecar);
for (const s of streams) {
  w(`#### Streaming ${fmt(opt.streamBytes / 2 ** 20)} MiB through a fresh sidecar, Node ${s.runtime.major} (curl, ${s.reps} repetition(s), medians)`);
  w();
  w('| direction | direct MiB/s | sidecar MiB/s | sidecar ÷ direct | sidecar RSS before (after warm-up) MB | sidecar peak RSS MB | growth MB |');
  w('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const [dir, d, sc, pk] of [['download (GET /bytes/N)', s.downDirect, s.downSidecar, s.downPeakKb], ['upload (chunked POST)', s.upDirect, s.upSidecar, s.upPeakKb]]) {
    w(`| ${dir} | ${fmt(median(d))} | ${fmt(median(sc))} | ${fmt(median(sc) / median(d), 2)} | ${fmt(mib(s.warmKb), 1)} | ${fmt(mib(Math.max(...pk)), 1)} | ${fmt(mib(Math.max(...pk) - s.warmKb), 1)} |`);
  }
  w();
  w(`Sidecar RSS: idle after start ${fmt(mib(s.idleKb), 1)} MB, after the memory test and the warm-up ${fmt(mib(s.warmKb), 1)} MB, after streaming ${fmt(mib(s.streamAfterKb), 1)} MB.`);
  w();
}

if (memory.length) {
  w(`#### Memory of a fresh sidecar (RSS summed over its process tree)`);
  w();
  w(`Per runtime, a fresh sidecar: idle ${opt.idleAfter} s after ready (one token held, no traffic: late enough that a first idle tick, such as a GC at the first quiet 5 s tick, has run, so start-up garbage counts as the steady state it is); peak during ${opt.memLoad} s of 100 keep-alive connections of small requests (RSS sampled every 20 ms, and VmHWM for a single process); ${opt.memAfter} s after that load stopped. The first rows' sidecars then stream (above).`);
  w();
  w('| runtime | workers | processes | idle MB | peak under 100 conns MB | req/s meanwhile | after MB | token requests |');
  w('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of memory) w(`| Node ${r.runtime.version} | ${r.workers} | ${r.procs} | ${fmt(mib(r.idleKb), 1)} | ${fmt(mib(r.loadPeakKb), 1)} | ${fmt(r.loadRps)}${r.loadErrors ? ` (**${r.loadErrors} errors**)` : ''} | ${fmt(mib(r.afterKb), 1)} | ${r.tokenRequests} |`);
  w();
}

if (cores) {
  w(`#### Cores: workers 1 vs 2 against a static upstream`);
  w();
  w(`Upstream: nginx with 1 worker answering the same small JSON itself (\`return 200\`), cheap enough not to be the bottleneck. In front of it: the sidecar with workers: 1 and workers: 2, and nginx as a proxy with 1 and 2 worker processes (as above: keep-alive 128, static header). ${opt.rounds} interleaved round(s) of ${opt.duration} s, wrk with ${opt.coresThreads} thread(s) (on 2 cores a second wrk thread only competes with the proxy under test: one thread drives nginx at well over twice the sidecar's rate using a fraction of a core, as its CPU column shows). CPU is summed over every process of the proxy's tree (sidecar primary + workers; nginx master + workers); wrk's and the upstream's CPU are not in it, each has its own column (% over the same wall time, 100 = one core). Peak RSS is the sum of each process's VmHWM.`);
  w();
  w('| conns | target | processes | req/s | p50 ms | p99 ms | tree CPU % | CPU µs/req | peak RSS MB (sum) | upstream CPU % | wrk CPU % | errors | other CPU % |');
  w('| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const c of cores.conns) {
    for (const t of cores.targets) {
      const rs = sel(t.name, 'small', c, cores.runs);
      if (!rs.length) continue;
      const every = caseRuns(t.name, 'small', c, cores.runs);
      const errors = every.reduce((a, r) => a + r.errors, 0);
      w(`| ${c} | ${t.label} | ${Math.max(...every.map((r) => r.procs))} | ${spread(stat(rs, 'rps'))} | ${spread(stat(rs, 'p50'), ms, 2)} | ${spread(stat(rs, 'p99'), ms, 2)} | ${fmt(stat(rs, 'cpuPct').med)} | ${fmt(stat(rs, 'cpuUsPerReq').med, 1)} | ${fmt(mib(Math.max(...every.map((r) => r.peakKb))), 1)} | ${fmt(stat(rs, 'upCpuPct').med)} | ${fmt(stat(rs, 'loadCpuPct').med)} | ${errors ? `**${errors}**` : 0} | ${fmt(stat(rs, 'otherPct').max)} |`);
    }
  }
  w();
  const scs = cores.targets.filter((t) => t.sidecar);
  if (scs.length) w(`Token requests by the cores sidecars over their whole run (must be 1 each, workers or not): ${scs.map((t) => `${t.label} ${t.tokenRequests}`).join(', ')}.`);
  w();
}

if (skipped.length) {
  w('Skipped:');
  w();
  for (const s of skipped) w(`- ${s.replace(/\|/g, '\\|')}`);
  w();
}

const coldMed = new Map([...coldStarts].map(([k, xs]) => [k, median(xs)]));
if ([...coldStarts.values()].some((xs) => xs.length)) {
  w(`#### Start-up and memory`);
  w();
  for (const rt of runtimes) {
    const xs = coldStarts.get(rt.key);
    if (!xs.length) continue;
    const cm = coldMed.get(rt.key);
    w(`- Node ${rt.version}: cold start (spawn → first 200 from /readyz, which includes one token round trip): median ${fmt(cm)} ms over ${xs.length} starts (${xs.map((x) => fmt(x)).join(', ')} ms); a token round trip on a fresh connection takes ${fmt(tokenRttMs, 1)} ms, so ${fmt(cm - tokenRttMs)} ms without it.`);
  }
  for (const l of loadSidecars) {
    const t = targets.find((x) => x.name === l.name);
    w(`- Load-test sidecar, Node ${l.runtime.major}: RSS idle ${fmt(mib(l.idleRssKb), 1)} MB, after warm-up ${fmt(mib(t.warmRssKb), 1)} MB, at the end ${fmt(mib(t.endRssKb), 1)} MB; token requests over the whole run: ${l.tokenRequests} (must be 1).`);
    const idle = coldIdleKb.get(l.runtime.key) ?? [];
    if (idle.length) w(`- Sidecar idle RSS ${opt.idleAfter} s after ready, no traffic, Node ${l.runtime.major}: ${idle.map((x) => fmt(mib(x), 1)).join(', ')} MB.`);
    if (l.logCheck && l.logCheck.sidecarRequests > 0) w(`- Sidecar log, Node ${l.runtime.major}: ${fmt(l.logCheck.requestLines)} "request" lines for ${fmt(l.logCheck.sidecarRequests)} requests completed by wrk in recorded runs (plus warm-up, the rewarm before each run, re-run disturbed runs and readiness checks) — one line per request, at info.`);
  }
  const others = targets.filter((x) => x.pid && x.kind !== 'sidecar');
  if (others.length) w(`- Other proxies, RSS idle after start / after warm-up: ${others.map((x) => `${x.label} ${fmt(mib(x.idleRssKb), 1)} / ${fmt(mib(x.warmRssKb), 1)} MB`).join(', ')}.`);
  w();
}

{
  const faults = targets.filter((t) => t.pid).map((t) => `${t.label} ${fmt(runs.filter((r) => r.target === t.name).reduce((a, r) => a + (Number.isFinite(r.majflt) ? r.majflt : 0), 0))}`);
  w(`Major page faults of each proxy process during its recorded runs, all cases: ${faults.join(', ')}.`);
  w();
}

// Targets. The memory targets are the image's runtime's (Node 24); the machine's node is reported beside them.
const verdicts = [];
const verdict = (name, ok, detail, reportOnly = false) => verdicts.push({ name, ok, detail, reportOnly });
const imageRt = runtimes.find((r) => r.major === '24') ?? runtimes[0];
const onImage = (rt) => rt.key === imageRt.key;
for (const rt of sidecarRts) {
  const tag = many ? ` (Node ${rt.major})` : '';
  for (const c of [10, 100]) {
    const r = ratioRows.find((x) => x.rt === rt && x.body === 'small' && x.c === c);
    if (r && r.f) verdict(`Throughput at ${c} connections ≥ 0.90 × the faster minimal Node proxy${tag}`, r.faster >= 0.9, `${fmt(r.faster, 2)} of ${r.f} (from CPU µs/request: ${fmt(r.cpuEff, 2)})`);
  }
  const r10 = ratioRows.find((x) => x.rt === rt && x.body === 'small' && x.c === 10);
  if (r10 && r10.f) {
    verdict(`Latency p50 at 10 connections ≤ 1.1 × that proxy${tag}`, r10.p50 <= 1.1, `${fmt(r10.p50, 2)}×`);
    verdict(`Latency p99 at 10 connections ≤ 1.1 × that proxy${tag}`, r10.p99 <= 1.1, `${fmt(r10.p99, 2)}×`);
  }
  if (has('nginx')) {
    for (const c of [10, 100]) {
      const r = ratioRows.find((x) => x.rt === rt && x.body === 'small' && x.c === c);
      // The faster minimal Node proxy's own ratio beside it: how much of the gap is Node's.
      const own = r?.f ? ratio(med(r.f, 'small', c, 'rps'), med('nginx', 'small', c, 'rps')) : NaN;
      if (r) verdict(`nginx ratio at ${c} connections ≥ 0.40 (aim)${tag}`, r.nginx >= 0.4, `${fmt(r.nginx, 2)} (the ${r.f ?? '—'} proxy: ${fmt(own, 2)})`);
    }
  }
  const l = loadSidecars.find((x) => x.runtime === rt);
  verdict(`Token requests = 1 (load-test sidecar, whole run)${tag}`, l.tokenRequests === 1, String(l.tokenRequests));
}
// CPU per request against the baseline build, same runtime, same run: the target at 100 connections.
if (baseline) {
  const sc = `sidecar${suffix(baselineRt)}`;
  for (const c of opt.baselineConns) {
    const cur = med(sc, 'small', c, 'cpuUsPerReq');
    const base = med(baseline.name, 'small', c, 'cpuUsPerReq');
    const r = ratio(cur, base);
    const detail = `${fmt(cur, 1)} vs ${fmt(base, 1)} µs (${fmt(r, 3)}×); req/s ${fmt(ratio(med(sc, 'small', c, 'rps'), med(baseline.name, 'small', c, 'rps')), 2)}×`;
    verdict(`CPU µs/request ≤ 1.05 × the baseline build ${baseline.label} at ${c} connections (Node ${baselineRt.major})`, r <= 1.05, Number.isFinite(r) ? detail : 'not measured', c !== 100);
  }
  verdict(`Token requests = 1 (baseline build, whole run)`, tokenRequestsOf(tokens, baseline.sidecar.name) === 1, String(tokenRequestsOf(tokens, baseline.sidecar.name)), true);
}
// Memory, per runtime: the targets on the image's runtime, the machine's node reported beside.
for (const rt of runtimes) {
  const tag = many ? ` (Node ${rt.major}${onImage(rt) ? '' : ', reported'})` : '';
  const mem = memory.find((r) => r.runtime === rt && r.workers === 1);
  const l = loadSidecars.find((x) => x.runtime === rt);
  const idles = [l?.idleRssKb, mem?.idleKb, ...(coldIdleKb.get(rt.key) ?? [])].filter(Number.isFinite);
  if (idles.length) verdict(`Idle RSS < 70 MB${tag}`, mib(median(idles)) < 70, `${fmt(mib(median(idles)), 1)} MB (median of ${idles.length} fresh sidecars, no traffic)`, !onImage(rt));
  if (mem) {
    verdict(`Peak RSS during ${opt.memLoad} s of 100 connections < 128 MB${tag}`, mib(mem.loadPeakKb) < 128, `${fmt(mib(mem.loadPeakKb), 1)} MB`, !onImage(rt));
    verdict(`RSS ${opt.memAfter} s after that load < 100 MB${tag}`, mib(mem.afterKb) < 100, `${fmt(mib(mem.afterKb), 1)} MB`, !onImage(rt));
  }
  if (mem?.downSidecar) {
    const gd = mib(Math.max(...mem.downPeakKb) - mem.warmKb);
    const gu = mib(Math.max(...mem.upPeakKb) - mem.warmKb);
    verdict(`Streaming ${fmt(opt.streamBytes / 2 ** 20)} MiB download grows RSS < 30 MB over warm level${tag}`, gd < 30, `+${fmt(gd, 1)} MB`, !onImage(rt));
    verdict(`Streaming ${fmt(opt.streamBytes / 2 ** 20)} MiB upload grows RSS < 30 MB over warm level${tag}`, gu < 30, `+${fmt(gu, 1)} MB`, !onImage(rt));
  }
  const xs = coldStarts.get(rt.key) ?? [];
  if (xs.length) verdict(`Cold start to ready < 500 ms + one token round trip${many ? ` (Node ${rt.major})` : ''}`, coldMed.get(rt.key) < 500 + tokenRttMs, `${fmt(coldMed.get(rt.key))} ms (token round trip ${fmt(tokenRttMs, 1)} ms)`);
}
if (cores) {
  for (const rt of coresRuntimes) {
    const w1 = cores.targets.find((t) => t.kind === 'sidecar' && t.runtime === rt && t.workers === 1);
    const w2 = cores.targets.find((t) => t.kind === 'sidecar' && t.runtime === rt && t.workers === 2);
    if (!w1 || !w2) {
      verdict(`workers: 2 ≥ 1.3 × workers: 1 req/s at 100 connections (Node ${rt.major})`, false, 'not measured: see Skipped');
      continue;
    }
    for (const c of cores.conns) {
      const r = ratio(med(w2.name, 'small', c, 'rps', cores.runs), med(w1.name, 'small', c, 'rps', cores.runs));
      const n = ratio(med('nginx-w2', 'small', c, 'rps', cores.runs), med('nginx-w1', 'small', c, 'rps', cores.runs));
      if (c === 100) verdict(`workers: 2 ≥ 1.3 × workers: 1 req/s at 100 connections (Node ${rt.major})`, r >= 1.3, `${fmt(r, 2)}× (nginx 2 ÷ 1 workers: ${fmt(n, 2)}×)`);
      else verdict(`workers: 2 ÷ workers: 1 req/s at ${c} connections (Node ${rt.major})`, true, `${fmt(r, 2)}× (nginx 2 ÷ 1 workers: ${fmt(n, 2)}×)`, true);
    }
    verdict(`Token requests = 1 with workers: 2 (Node ${rt.major}, whole run)`, w2.tokenRequests === 1, String(w2.tokenRequests));
  }
}
const errorRuns = [...runs, ...(cores?.runs ?? [])].filter((r) => r.errors > 0);
if (errorRuns.length) verdict('No errors in any load run', false, errorRuns.map((r) => `${r.target} ${r.body} c=${r.conns} r${r.round + 1}: ${r.errors}`).join('; '));

const result = (v) => (v.reportOnly ? (v.ok ? 'within (reported)' : 'over (reported)') : v.ok ? 'met' : '**NOT MET**');
w('#### Targets');
w();
w('| target | result | measured |');
w('| --- | --- | --- |');
for (const v of verdicts) w(`| ${v.name} | ${result(v)} | ${v.detail} |`);
w();
const allRuns = [...runs, ...(cores?.runs ?? [])];
w(`Total bench time ${fmt((Date.now() - t00) / 1000)} s, of which ${fmt(noiseSpent)} s waiting for a quiet machine or re-running ${retried} disturbed case run(s) (budget ${opt.noiseBudget} s); ${allRuns.filter(disturbed).length} of ${allRuns.length} recorded runs still had other CPU above 15 %, and ${runs.filter((r) => !sel(r.target, r.body, r.conns).includes(r)).length + (cores?.runs ?? []).filter((r) => !sel(r.target, r.body, r.conns, cores.runs).includes(r)).length} of them are left out of the medians (at least two undisturbed runs of their case remained).`);

const report = lines.join('\n');
if (flags.json) writeFileSync(flags.json, `${JSON.stringify({ machine: m, options: opt, runtimes, runs, memory, cores: cores && { conns: cores.conns, targets: cores.targets.map(({ sidecar, ...t }) => t), runs: cores.runs }, skipped, coldStarts: Object.fromEntries(coldStarts), coldIdleKb: Object.fromEntries(coldIdleKb), tokenRttMs, loadSidecars: loadSidecars.map(({ sidecar, ...l }) => l) }, null, 1)}\n`);
log(`\n${report}\n`);
log('Targets:');
for (const v of verdicts) log(`  ${v.reportOnly ? (v.ok ? 'within ' : 'over   ') : v.ok ? 'met    ' : 'NOT MET'}  ${v.name}: ${v.detail}`);
for (const s of skipped) log(`  skipped  ${s}`);
if (opt.out) {
  writeSection(opt.out, 'results', report);
  log(`\nwritten to ${opt.out}`);
}
process.exit(0);
