#!/usr/bin/env node
// A/B: several builds of the sidecar (and other proxies) side by side against the undici baseline,
// in many short interleaved rounds, so that noise from the rest of the machine hits all alike.
// For tuning: build a variant into another folder, then compare it with the current one.
//
//   node scripts/bench/ab.mjs [options] LABEL=PATH ...
//     PATH ending in cli.js       a sidecar (node PATH --config FILE), log level info, stdout to a file
//     PATH ending in .mjs/.js     a proxy script started as: node PATH PORT UPSTREAM_PORT
//   --conns=10  --seconds=3  --rounds=8  --no-baseline
//
// Prints, per target, the median req/s, p50, p99 and CPU µs/request, and the median of the
// per-round ratios to the baseline (paired, so a disturbed round moves both sides).
// Example: node scripts/bench/ab.mjs now=dist/cli.js tuned=/tmp/tuned/dist/cli.js
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuSeconds, getStatus, median, sidecarYaml, sleep } from './util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const { values: o, positionals } = parseArgs({
  options: { conns: { type: 'string', default: '10' }, seconds: { type: 'string', default: '3' }, rounds: { type: 'string', default: '8' }, 'no-baseline': { type: 'boolean', default: false } },
  allowPositionals: true,
});
const conns = Number(o.conns);
const seconds = Number(o.seconds);
const rounds = Number(o.rounds);
const cpu = cpuSeconds;
const get = getStatus;
async function until(url, ok = (s) => s > 0) {
  for (let i = 0; i < 1000; i++) {
    if (ok(await get(url))) return;
    await sleep(20);
  }
  throw new Error(`${url} never answered`);
}

const tmp = mkdtempSync(join(os.tmpdir(), 'bearer-sidecar-ab-'));
const children = [];
const cleanup = () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

const UP = 18300;
const TOKEN = 18301;
const { startTokenServer } = await import(pathToFileURL(join(root, 'dist', 'demo', 'token-server.js')).href);
const tokens = await startTokenServer({ host: '127.0.0.1', port: TOKEN, clients: [{ id: 'bench-client', secret: 'bench-secret' }], signingKey: 'k', expiresInSeconds: 3600 });
const start = (args, out = 'ignore') => {
  const c = spawn(process.execPath, args, { stdio: ['ignore', out, 'inherit'] });
  children.push(c);
  return c;
};
start([join(here, 'upstream.mjs'), String(UP)]);
await until(`http://127.0.0.1:${UP}/`);

const specs = positionals.map((p) => {
  const i = p.indexOf('=');
  if (i < 1) throw new Error(`expected LABEL=PATH, got ${p}`);
  return { label: p.slice(0, i), path: resolve(p.slice(i + 1)) };
});
if (!o['no-baseline']) specs.unshift({ label: 'baseline(undici)', path: join(here, 'proxy-undici.mjs') });
const targets = [];
for (const [k, s] of specs.entries()) {
  const port = 18310 + k;
  const fd = openSync(join(tmp, `${k}.log`), 'a');
  let child;
  if (s.path.endsWith('cli.js')) {
    const cfg = join(tmp, `${k}.yaml`);
    writeFileSync(cfg, sidecarYaml({ port, adminPort: port + 100, route: 'bench', upstream: `http://127.0.0.1:${UP}`, tokenUrl: tokens.url, clientId: 'bench-client', clientSecret: 'bench-secret' }));
    child = start([s.path, '--config', cfg], fd);
    await until(`http://127.0.0.1:${port + 100}/readyz`, (st) => st === 200);
  } else {
    child = start([s.path, String(port), String(UP)], fd);
  }
  closeSync(fd);
  await until(`http://127.0.0.1:${port}/`);
  targets.push({ ...s, port, pid: child.pid, runs: [] });
}

function wrk(port, secs) {
  return new Promise((res, rej) =>
    execFile('wrk', ['-t1', `-c${conns}`, `-d${secs}s`, '-s', join(here, 'report.lua'), `http://127.0.0.1:${port}/`], { timeout: (secs + 30) * 1000 }, (e, out) => {
      if (e) return rej(e);
      const line = out.split('\n').find((l) => l.startsWith('WRKJSON '));
      res(JSON.parse(line.slice(8)));
    }),
  );
}
for (const t of targets) await wrk(t.port, 2); // warm-up
for (let r = 0; r < rounds; r++) {
  const order = [...targets].sort(() => Math.random() - 0.5);
  for (const t of order) {
    const c0 = cpu(t.pid);
    const w = await wrk(t.port, seconds);
    const used = cpu(t.pid) - c0;
    const errors = Object.values(w.errors).reduce((a, b) => a + b, 0);
    t.runs[r] = { rps: w.requests / (w.duration_us / 1e6), p50: w.p50 / 1000, p99: w.p99 / 1000, us: (used * 1e6) / w.requests, errors };
    await sleep(200);
  }
  process.stderr.write(`round ${r + 1}/${rounds}\n`);
}
const base = targets[0];
const pad = (s, n) => String(s).padStart(n);
console.log(`wrk -t1 -c${conns}, ${rounds} rounds × ${seconds} s, small JSON; medians; ratios are medians of per-round ratios to ${base.label}`);
console.log(`${'target'.padEnd(22)}${pad('req/s', 8)}${pad('p50 ms', 8)}${pad('p99 ms', 8)}${pad('µs/req', 8)}${pad('rps÷base', 10)}${pad('base µs÷µs', 12)}${pad('errors', 8)}`);
for (const t of targets) {
  const m = (k) => median(t.runs.map((x) => x[k]));
  const rr = median(t.runs.map((x, i) => x.rps / base.runs[i].rps));
  const cr = median(t.runs.map((x, i) => base.runs[i].us / x.us));
  console.log(`${t.label.padEnd(22)}${pad(m('rps').toFixed(0), 8)}${pad(m('p50').toFixed(2), 8)}${pad(m('p99').toFixed(2), 8)}${pad(m('us').toFixed(0), 8)}${pad(rr.toFixed(2), 10)}${pad(cr.toFixed(2), 12)}${pad(t.runs.reduce((a, x) => a + x.errors, 0), 8)}`);
}
await tokens.close();
process.exit(0);
