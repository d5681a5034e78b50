// The measuring the benchmark modes share (bench.mjs and its frontier mode, bench/frontier.mjs): wrk
// runs, curl streams, readiness, peak RSS, and writing a section of BENCHMARKS.md.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLK_TCK, procStatus, sleep, treeOf, treeRssKb } from './util.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));

/** Resets VmHWM to the current RSS (Linux >= 4.0). */
export function resetPeak(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** GET on a fresh connection: the status, 0 on any failure. */
export function httpGet(url, { agent = false, timeout = 2000 } = {}) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent, timeout }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}

export async function waitFor(url, { timeoutMs = 15_000, intervalMs = 20, ok = (s) => s >= 200 && s < 500 } = {}) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (ok(await httpGet(url))) return true;
    await sleep(intervalMs);
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms`);
}

/** One wrk run (keep-alive, report.lua's figures); latencies in microseconds, loadCpu: wrk's own CPU seconds. */
export async function wrk(wrkPath, url, conns, seconds, threads = 1) {
  const args = ['-t', String(Math.min(threads, conns)), '-c', String(conns), '-d', `${seconds}s`, '--timeout', '10s', '-s', join(benchDir, 'report.lua'), url];
  // Through sh so that wrk's CPU time can be read afterwards (the shell's cutime/cstime).
  const script = '"$0" "$@"; r=$?; read -r l < /proc/$$/stat; echo "SHSTAT $l"; exit $r';
  const out = await new Promise((resolve, reject) =>
    execFile('sh', ['-c', script, wrkPath, ...args], { timeout: (seconds + 30) * 1000, maxBuffer: 1 << 20 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  const sh = out.split('\n').find((l) => l.startsWith('SHSTAT '));
  const shf = sh ? sh.slice(sh.lastIndexOf(')') + 2).split(' ') : [];
  const loadCpu = sh ? (Number(shf[13]) + Number(shf[14])) / CLK_TCK : NaN;
  const line = out.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk printed no result:\n${out}`);
  const r = JSON.parse(line.slice(8));
  const errors = Object.values(r.errors).reduce((a, b) => a + b, 0);
  return { rps: r.requests / (r.duration_us / 1e6), requests: r.requests, p50: r.p50, p99: r.p99, max: r.max, errors, loadCpu };
}

function curl(args, seconds = 600) {
  return new Promise((resolve, reject) =>
    execFile('sh', ['-c', args], { timeout: seconds * 1000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))),
  );
}
/** GET base/bytes/N to /dev/null with curl. */
export async function download(base, bytes) {
  const out = await curl(`curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total}' ${base}/bytes/${bytes}`);
  const [code, size, secs] = out.trim().split(' ').map(Number);
  if (code !== 200 || size !== bytes) throw new Error(`download from ${base}: HTTP ${code}, ${size} of ${bytes} bytes`);
  return { seconds: secs, mbps: bytes / 2 ** 20 / secs };
}
/** A chunked POST of N bytes to base/upload with curl; the upstream counts them. */
export async function upload(base, bytes) {
  // Chunked upload from a generator; no Expect: 100-continue (curl adds it to large uploads).
  const out = await curl(`head -c ${bytes} /dev/zero | curl -sS -X POST -T - -H 'Expect:' -H 'content-type: application/octet-stream' -w '\\n%{http_code} %{time_total}' ${base}/upload`);
  const [body, status] = out.trim().split('\n');
  const [code, secs] = status.split(' ').map(Number);
  let got;
  try {
    got = JSON.parse(body).bytes;
  } catch {}
  if (code !== 200 || got !== bytes) throw new Error(`upload to ${base}: HTTP ${code}, upstream counted ${got} of ${bytes} bytes (${body.slice(0, 200)})`);
  return { seconds: secs, mbps: bytes / 2 ** 20 / secs };
}

/** Runs fn while sampling the RSS of pid's process tree every 20 ms; returns fn's result and the
 * peak in kB (for a single process, its VmHWM when higher: it sees between the samples). */
export async function sampled(pid, fn) {
  const pids = treeOf(pid);
  for (const p of pids) resetPeak(p);
  let peak = treeRssKb(pid);
  const timer = setInterval(() => {
    const kb = treeRssKb(pid);
    if (kb > peak) peak = kb;
  }, 20);
  try {
    const result = await fn();
    const kb = treeRssKb(pid);
    const hwm = pids.length === 1 ? procStatus(pid).hwmKb : NaN;
    return { result, peakKb: Math.max(peak, kb, Number.isFinite(hwm) ? hwm : 0) };
  } finally {
    clearInterval(timer);
  }
}

/** Replaces the part of `file` between its bench:NAME markers (appended when missing; `template()` when there is no file). */
export function writeSection(file, name, content, template = () => '') {
  let text = existsSync(file) ? readFileSync(file, 'utf8') : template();
  const a = `<!-- bench:${name}:start -->`;
  const b = `<!-- bench:${name}:end -->`;
  if (!text.includes(a) || !text.includes(b)) text = `${text.trimEnd()}\n\n${a}\n${b}\n`;
  const i = text.indexOf(a) + a.length;
  const j = text.indexOf(b);
  writeFileSync(file, `${text.slice(0, i)}\n${content.trim()}\n${text.slice(j)}`);
}

/** A command's path on PATH, or undefined. */
export function which(cmd) {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** A number for the report (en-US grouping, d decimals; — when not finite). */
export const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '—');

/** All CPUs' busy time (user+nice+system+irq+softirq+steal), in seconds. */
export function machineBusySeconds() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] || 0)) / CLK_TCK;
}

/** Busy CPU (% of one core) of the whole machine over ms milliseconds, minus this process. */
export async function machineBusyPct(ms = 500) {
  const m0 = machineBusySeconds();
  const b0 = process.cpuUsage();
  await sleep(ms);
  const b = process.cpuUsage(b0);
  return (100 * Math.max(0, machineBusySeconds() - m0 - (b.user + b.system) / 1e6)) / (ms / 1000);
}
