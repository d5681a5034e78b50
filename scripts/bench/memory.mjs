#!/usr/bin/env node
// Memory of the sidecar through a load and after it, A/B: several builds, node binaries or node
// flags side by side, interleaved and with the order rotated each round (issue 14 §1).
//
//   node scripts/bench/memory.mjs [options] LABEL=PATH[,NODEARG...] ...
//     PATH: a sidecar's cli.js. It runs as `NODE NODEARG... PATH`, the way the bin runs it; the
//     program applies its runtime settings itself (--env=LABEL:BEARER_SIDECAR_TUNING=none|lean
//     picks a profile: src/runtime/settings.ts). An older build whose first line carried node flags
//     and variables (`#!/usr/bin/env -S [VAR=x] node --flag...`) gets them, unless --no-shebang-flags.
//   --node=LABEL:PATH   that label's node binary (default: the one running this script)
//   --env=LABEL:VAR=VALUE  an environment variable for that label only
//   --rounds=3  --seconds=10 (load)  --conns=100  --after=30 (seconds idle after the load)
//   --cgroup=DIR        run each sidecar in this (existing, writable) cgroup v1 memory directory,
//                       e.g. one with memory.limit_in_bytes set, to see what a container limit does;
//                       with --cpu-rounds, label i runs in DIR/i (one limit per process)
//   --port-base=28000   upstream (nginx) = base, token server = base+1, sidecar = base+80, admin = base+1901,
//                       streaming upstream (--stream) = base+2
//   --cpu-rounds=N      instead: CPU per request only. One sidecar per label started once (proxy base+80+i,
//                       admin base+90+i), then N rounds of wrk -t1 -cCONNS for --cpu-seconds (default 3)
//                       each, labels interleaved and rotated; medians, and the median of each round's
//                       ratio to the first label (paired: a disturbed round moves both)
//   --stream=BYTES      instead of the load: stream BYTES down and then up through the sidecar (curl,
//                       after 64 MiB each way of warm-up, as scripts/bench.mjs does); peak RSS of each,
//                       growth = peak over RSS after the warm-up; CPU seconds of the sidecar per GiB each way
//
// Per run: a fresh sidecar, one token, upstream nginx (1 worker, a static 27-byte JSON body);
// idle RSS 1.5 s after ready; wrk -t1 -cCONNS for SECONDS; peak RSS (sampled every 20 ms) during
// the load; RSS 1 s and AFTER s after it; CPU µs/request (user+system of the sidecar over the load);
// V8 heap committed/used at the end (from /metrics). Prints medians and ranges per label, and each
// run as a JSON line on stderr. Needs nginx and wrk on PATH.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { cpuSeconds, getStatus, median, shebangCommand, sidecarYaml, sleep, targetSpec } from './util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const { values: o, positionals } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '10' },
    conns: { type: 'string', default: '100' },
    after: { type: 'string', default: '30' },
    cgroup: { type: 'string' },
    'port-base': { type: 'string', default: '28000' },
    stream: { type: 'string' },
    'cpu-rounds': { type: 'string' },
    'cpu-seconds': { type: 'string', default: '3' },
    'no-shebang-flags': { type: 'boolean', default: false },
    env: { type: 'string', multiple: true, default: [] },
    node: { type: 'string', multiple: true, default: [] },
  },
  allowPositionals: true,
});
const base = Number(o['port-base']);
const ports = { upstream: base, token: base + 1, streamUpstream: base + 2, sidecar: base + 80, admin: base + 1901 };
const streamBytes = o.stream ? Number(o.stream) : 0;

const shebang = (path) => shebangCommand(readFileSync(path, 'utf8').slice(0, 4096));

const targets = positionals.map((p) => {
  const { label, path, nodeArgs, env, node } = targetSpec(p, o);
  const full = resolve(path);
  const bin = o['no-shebang-flags'] ? { env: {}, args: [] } : shebang(full);
  return { label, path: full, node, args: [...bin.args, ...nodeArgs], env: { ...bin.env, ...env }, runs: [] };
});

const rssMb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const tmp = mkdtempSync(join(os.tmpdir(), 'bearer-sidecar-mem-'));
const { startTokenServer } = await import(pathToFileURL(join(root, 'dist', 'demo', 'token-server.js')).href);
const tokens = await startTokenServer({ host: '127.0.0.1', port: ports.token, clients: [{ id: 'c', secret: 's' }], signingKey: 'k', expiresInSeconds: 3600 });
writeFileSync(join(tmp, 'nginx.conf'), `daemon off; worker_processes 1; pid ${tmp}/nginx.pid; error_log ${tmp}/error.log warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path ${tmp}; proxy_temp_path ${tmp}; fastcgi_temp_path ${tmp}; uwsgi_temp_path ${tmp}; scgi_temp_path ${tmp};
keepalive_requests 1000000;
server { listen 127.0.0.1:${ports.upstream}; location / { default_type application/json; return 200 '{"ok":true,"hello":"world"}'; } } }`);
const ngx = spawn('nginx', ['-p', tmp, '-c', join(tmp, 'nginx.conf')], { stdio: 'inherit' });
// --stream: scripts/bench/upstream.mjs serves /bytes/N and counts uploads.
const streamUpstream = streamBytes ? spawn(process.execPath, [join(here, 'upstream.mjs'), String(ports.streamUpstream)], { stdio: 'inherit' }) : undefined;
const config = join(tmp, 'sidecar.yaml');
writeFileSync(config, sidecarYaml({ port: ports.sidecar, adminPort: ports.admin, route: 'bench', upstream: `http://127.0.0.1:${streamBytes ? ports.streamUpstream : ports.upstream}`, tokenUrl: `http://127.0.0.1:${ports.token}/oauth2/token`, clientId: 'c', clientSecret: 's' }));

const sh = (cmd) => promisify(execFile)('sh', ['-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 20 }).then((r) => r.stdout);
async function download(bytes) {
  const [code, size] = (await sh(`curl -sS -o /dev/null -w '%{http_code} %{size_download}' http://127.0.0.1:${ports.sidecar}/bytes/${bytes}`)).trim().split(' ').map(Number);
  if (code !== 200 || size !== bytes) throw new Error(`download: HTTP ${code}, ${size} of ${bytes} bytes`);
}
async function upload(bytes) {
  const out = await sh(`head -c ${bytes} /dev/zero | curl -sS -X POST -T - -H 'Expect:' -H 'content-type: application/octet-stream' http://127.0.0.1:${ports.sidecar}/upload`);
  if (JSON.parse(out).bytes !== bytes) throw new Error(`upload: upstream counted ${out.slice(0, 200)}`);
}
/** Runs fn while sampling pid's RSS every 20 ms; the peak, MB. */
async function peakDuring(pid, fn) {
  let peak = rssMb(pid);
  const iv = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 20);
  try {
    await fn();
  } finally {
    clearInterval(iv);
  }
  return Math.max(peak, rssMb(pid));
}

async function streamed(t, pid, r) {
  await download(64 * 2 ** 20);
  await upload(64 * 2 ** 20);
  await sleep(1000);
  r.warm = rssMb(pid);
  const gib = streamBytes / 2 ** 30;
  let cpu = cpuSeconds(pid);
  r.down = await peakDuring(pid, () => download(streamBytes));
  r.downCpu = (cpuSeconds(pid) - cpu) / gib;
  cpu = cpuSeconds(pid);
  r.up = await peakDuring(pid, () => upload(streamBytes));
  r.upCpu = (cpuSeconds(pid) - cpu) / gib;
  r.growth = Math.max(r.down, r.up) - r.warm;
  r.after = rssMb(pid);
  console.error(JSON.stringify(r, (k, v) => (typeof v === 'number' ? Math.round(v * 10) / 10 : v)));
  t.runs.push(r);
}

async function once(t) {
  // In a cgroup: a shell moves itself there, then execs node (so the sidecar is born inside it).
  const [cmd, argv] = o.cgroup
    ? ['sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', o.cgroup, t.node, ...t.args, t.path, '--config', config]]
    : [t.node, [...t.args, t.path, '--config', config]];
  const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...t.env } });
  const exited = new Promise((r) => child.once('exit', r));
  const pid = child.pid;
  try {
    const t0 = performance.now();
    while ((await getStatus(`http://127.0.0.1:${ports.admin}/readyz`)) !== 200) {
      if (child.exitCode !== null) throw new Error(`${t.label} exited with ${child.exitCode}`);
      if (performance.now() - t0 > 20_000) throw new Error(`${t.label} not ready in 20 s`);
      await sleep(20);
    }
    await sleep(1500);
    const r = { label: t.label, idle: rssMb(pid) };
    if (streamBytes) return await streamed(t, pid, r);
    let peak = r.idle;
    const iv = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 20);
    const c0 = cpuSeconds(pid);
    const { stdout } = await promisify(execFile)('wrk', ['-t', '1', '-c', o.conns, '-d', `${o.seconds}s`, `http://127.0.0.1:${ports.sidecar}/`], { encoding: 'utf8' });
    const c1 = cpuSeconds(pid);
    clearInterval(iv);
    const reqs = Number(/(\d+) requests in/.exec(stdout)[1]);
    Object.assign(r, { peak, rps: Math.round(reqs / Number(o.seconds)), cpuUs: ((c1 - c0) * 1e6) / reqs });
    await sleep(1000);
    r.after1 = rssMb(pid);
    await sleep(Number(o.after) * 1000 - 1000);
    r.after = rssMb(pid);
    const mt = await (await fetch(`http://127.0.0.1:${ports.admin}/metrics`)).text();
    const g = (n) => Number(new RegExp(`^bearer_sidecar_${n} (\\S+)`, 'm').exec(mt)?.[1]) / 1048576;
    Object.assign(r, { heapTotal: g('nodejs_heap_size_total_bytes'), heapUsed: g('nodejs_heap_size_used_bytes') });
    console.error(JSON.stringify(r, (k, v) => (typeof v === 'number' ? Math.round(v * 10) / 10 : v)));
    t.runs.push(r);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

/** --cpu-rounds: every label's sidecar at once, short interleaved loads, CPU µs per request. */
async function cpuRounds() {
  const cfgs = targets.map((t, i) => {
    const file = join(tmp, `cpu-${i}.yaml`);
    writeFileSync(file, sidecarYaml({ port: ports.sidecar + i, adminPort: base + 90 + i, route: 'bench', upstream: `http://127.0.0.1:${ports.upstream}`, tokenUrl: `http://127.0.0.1:${ports.token}/oauth2/token`, clientId: 'c', clientSecret: 's' }));
    return file;
  });
  const children = targets.map((t, i) => {
    const [cmd, argv] = o.cgroup
      ? ['sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', join(o.cgroup, String(i)), t.node, ...t.args, t.path, '--config', cfgs[i]]]
      : [t.node, [...t.args, t.path, '--config', cfgs[i]]];
    return spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...t.env } });
  });
  try {
    for (let i = 0; i < targets.length; i++) while ((await getStatus(`http://127.0.0.1:${base + 90 + i}/readyz`)) !== 200) await sleep(20);
    const wrk = (i) => promisify(execFile)('wrk', ['-t', '1', '-c', o.conns, '-d', `${o['cpu-seconds']}s`, `http://127.0.0.1:${ports.sidecar + i}/`], { encoding: 'utf8' });
    for (let i = 0; i < targets.length; i++) await wrk(i); // warm-up
    for (let round = 0; round < Number(o['cpu-rounds']); round++) {
      const row = {};
      for (let k = 0; k < targets.length; k++) {
        const i = (k + round) % targets.length;
        const c0 = cpuSeconds(children[i].pid);
        const { stdout } = await wrk(i);
        const reqs = Number(/(\d+) requests in/.exec(stdout)[1]);
        row[targets[i].label] = { cpuUs: ((cpuSeconds(children[i].pid) - c0) * 1e6) / reqs, rps: reqs / Number(o['cpu-seconds']) };
      }
      for (const t of targets) t.runs.push({ ...row[t.label], ratio: row[t.label].cpuUs / row[targets[0].label].cpuUs });
      console.error(JSON.stringify(Object.fromEntries(Object.entries(row).map(([k, v]) => [k, Math.round(v.cpuUs)]))));
    }
  } finally {
    for (const c of children) c.kill('SIGTERM');
  }
}

try {
  if (o['cpu-rounds']) await cpuRounds();
  else for (let round = 0; round < Number(o.rounds); round++) {
    for (let i = 0; i < targets.length; i++) await once(targets[(i + round) % targets.length]);
  }
} finally {
  ngx.kill('SIGQUIT');
  streamUpstream?.kill();
  await tokens.close?.();
  rmSync(tmp, { recursive: true, force: true });
}

const fmt = (xs, d = 1) => `${median(xs).toFixed(d)} (${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)})`;
if (o['cpu-rounds']) {
  console.log(`${o['cpu-rounds']} rounds of wrk -t1 -c${o.conns} ${o['cpu-seconds']} s per label, interleaved; medians (min–max)`);
  console.log(`| label | node flags | env | CPU µs/req | ÷ ${targets[0].label} (paired) | req/s |`);
  console.log('|---|---|---|---|---|---|');
  for (const t of targets) {
    const c = (k, d = 1) => `${median(t.runs.map((r) => r[k])).toFixed(d)} (${Math.min(...t.runs.map((r) => r[k])).toFixed(d)}–${Math.max(...t.runs.map((r) => r[k])).toFixed(d)})`;
    console.log(`| ${t.label} | ${t.args.join(' ') || '–'} | ${Object.entries(t.env).map(([k, v]) => `${k}=${v}`).join(' ') || '–'} | ${c('cpuUs')} | ${c('ratio', 3)} | ${median(t.runs.map((r) => r.rps)).toFixed(0)} |`);
  }
} else if (streamBytes) {
  console.log(`rounds ${o.rounds}, ${streamBytes / 2 ** 20} MiB down then up through a fresh sidecar after 64 MiB each way of warm-up; MB, medians (min–max)`);
  console.log('| label | env and node flags | idle | after warm-up | peak down | peak up | growth | after | CPU s/GiB down | CPU s/GiB up |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const t of targets) {
    const c = (k) => fmt(t.runs.map((r) => r[k]));
    console.log(`| ${t.label} | ${[...Object.entries(t.env).map(([k, v]) => `${k}=${v}`), ...t.args].join(' ') || '–'} | ${c('idle')} | ${c('warm')} | ${c('down')} | ${c('up')} | ${c('growth')} | ${c('after')} | ${fmt(t.runs.map((r) => r.downCpu), 2)} | ${fmt(t.runs.map((r) => r.upCpu), 2)} |`);
  }
} else {
  console.log(`rounds ${o.rounds}, wrk -t1 -c${o.conns} ${o.seconds}s, after = RSS ${o.after} s after the load${o.cgroup ? `, cgroup ${o.cgroup}` : ''}; MB, medians (min–max)`);
  console.log('| label | env and node flags | idle | peak | +1 s | after | CPU µs/req | req/s | heap committed / used |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const t of targets) {
    const c = (k) => fmt(t.runs.map((r) => r[k]));
    console.log(`| ${t.label} | ${[...Object.entries(t.env).map(([k, v]) => `${k}=${v}`), ...t.args].join(' ') || '–'} | ${c('idle')} | ${c('peak')} | ${c('after1')} | ${c('after')} | ${c('cpuUs')} | ${median(t.runs.map((r) => r.rps))} | ${median(t.runs.map((r) => r.heapTotal)).toFixed(0)} / ${median(t.runs.map((r) => r.heapUsed)).toFixed(0)} |`);
  }
}
