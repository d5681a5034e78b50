#!/usr/bin/env node
// The shared token cache (issue 22, docs/shared-cache.md), measured:
// 1. Cold start of a fleet: N sidecar processes (default 8) started together against one token
//    endpoint that takes 100 ms per grant (an identity provider across a network): grants, and each
//    replica's time from spawn to its first proxied answer (median and slowest), without the cache
//    and with it (a redis-server of its own, emptied before each round). Rounds alternate.
// 2. The small-request path: one sidecar with the cache on and one with it off, wrk -t1 -c10 in
//    interleaved rounds (as ab.mjs): req/s and CPU µs per request. A token held in memory costs no
//    cache round trip, so the two should not differ beyond noise.
//
//   npm run build && node scripts/bench/fleet.mjs [--replicas=8] [--cold-rounds=3] [--rounds=6] [--seconds=3]
//
// Needs redis-server and wrk on the PATH. Only loopback addresses; everything it starts, it stops.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuSeconds, getStatus, median, sleep } from './util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const cli = join(root, 'dist', 'cli.js');
const { values: o } = parseArgs({
  options: { replicas: { type: 'string', default: '8' }, 'cold-rounds': { type: 'string', default: '3' }, rounds: { type: 'string', default: '6' }, seconds: { type: 'string', default: '3' }, conns: { type: 'string', default: '10' } },
});
const replicas = Number(o.replicas);
for (const tool of ['redis-server', 'wrk']) {
  if (spawnSync(tool, ['--version']).error) {
    console.error(`${tool} is not installed; it is needed here`);
    process.exit(2);
  }
}

const tmp = mkdtempSync(join(os.tmpdir(), 'bearer-sidecar-fleet-'));
const children = new Set();
const cleanup = () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));
const start = (command, args) => {
  const child = spawn(command, args, { stdio: 'ignore' });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
};
const stop = async (child) => {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
};
async function until(url, ok = (status) => status > 0, tries = 1500) {
  for (let i = 0; i < tries; i++) {
    if (ok(await getStatus(url))) return;
    await sleep(20);
  }
  throw new Error(`${url} never answered`);
}

// Ports: a block of its own (18500-18599), as the other bench scripts have theirs.
const UP = 18500;
const TOKEN = 18501;
const REDIS = 18502;
const firstPort = 18510;

// The token endpoint: 100 ms a grant, counted; an opaque token (the bench upstream checks none).
let grants = 0;
const tokenServer = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    grants += 1;
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: randomBytes(24).toString('base64url'), token_type: 'Bearer', expires_in: 3600 }));
    }, 100);
  });
});
await new Promise((resolve) => tokenServer.listen(TOKEN, '127.0.0.1', resolve));
start(process.execPath, [join(here, 'upstream.mjs'), String(UP)]);
await until(`http://127.0.0.1:${UP}/`);

const password = randomBytes(12).toString('hex');
const keyFile = join(tmp, 'key');
writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`);
const redis = start('redis-server', ['--port', String(REDIS), '--bind', '127.0.0.1', '--requirepass', password, '--save', '', '--appendonly', 'no']);
await sleep(300);
const flushRedis = () => spawnSync('redis-cli', ['-p', String(REDIS), '--no-auth-warning', '-a', password, 'FLUSHALL']);

function configFile(name, port, cache) {
  const file = join(tmp, `${name}.yaml`);
  writeFileSync(
    file,
    `listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: ${port + 50} }
logLevel: info
${cache ? `tokenCache: { url: "redis://:${password}@127.0.0.1:${REDIS}/0", encryptionKeyFile: ${keyFile} }\n` : ''}routes:
  - name: bench
    prefix: /
    upstream: http://127.0.0.1:${UP}
    auth: { tokenUrl: http://127.0.0.1:${TOKEN}/token, clientId: bench-client, clientSecret: bench-secret }
`,
  );
  return file;
}

// 1. Cold start.
const cold = { off: [], on: [] };
for (let round = 0; round < Number(o['cold-rounds']); round++) {
  for (const mode of round % 2 === 0 ? ['off', 'on'] : ['on', 'off']) {
    flushRedis();
    const before = grants;
    const files = Array.from({ length: replicas }, (_, i) => configFile(`cold-${i}`, firstPort + i, mode === 'on'));
    const started = performance.now();
    const fleet = files.map((file) => start(process.execPath, [cli, '--config', file]));
    const firstAnswerMs = await Promise.all(
      files.map(async (_, i) => {
        await until(`http://127.0.0.1:${firstPort + i}/`, (status) => status === 200);
        return performance.now() - started;
      }),
    );
    await Promise.all(fleet.map(stop));
    cold[mode].push({ grants: grants - before, medianMs: median(firstAnswerMs), slowestMs: Math.max(...firstAnswerMs) });
    process.stderr.write(`cold round ${round + 1} ${mode}: ${grants - before} grants, first answers ${median(firstAnswerMs).toFixed(0)} ms median, ${Math.max(...firstAnswerMs).toFixed(0)} ms slowest\n`);
  }
}

// 2. The small-request path, cache on and off, interleaved.
const targets = [];
for (const [i, mode] of ['off', 'on'].entries()) {
  const port = firstPort + 20 + i;
  const child = start(process.execPath, [cli, '--config', configFile(`path-${mode}`, port, mode === 'on')]);
  await until(`http://127.0.0.1:${port + 50}/readyz`, (status) => status === 200);
  targets.push({ mode, port, pid: child.pid, runs: [] });
}
function wrk(port, seconds) {
  return new Promise((resolve, reject) =>
    execFile('wrk', ['-t1', `-c${o.conns}`, `-d${seconds}s`, '-s', join(here, 'report.lua'), `http://127.0.0.1:${port}/`], { timeout: (seconds + 30) * 1000 }, (error, out) => {
      if (error) return reject(error);
      resolve(JSON.parse(out.split('\n').find((line) => line.startsWith('WRKJSON ')).slice(8)));
    }),
  );
}
for (const target of targets) await wrk(target.port, 2); // warm-up
const rounds = Number(o.rounds);
const seconds = Number(o.seconds);
for (let round = 0; round < rounds; round++) {
  for (const target of round % 2 === 0 ? targets : [...targets].reverse()) {
    const cpu0 = cpuSeconds(target.pid);
    const result = await wrk(target.port, seconds);
    const used = cpuSeconds(target.pid) - cpu0;
    target.runs.push({ rps: result.requests / (result.duration_us / 1e6), us: (used * 1e6) / result.requests, errors: Object.values(result.errors).reduce((a, b) => a + b, 0) });
    await sleep(200);
  }
  process.stderr.write(`path round ${round + 1}/${rounds}\n`);
}

const summary = (runs, key) => median(runs.map((run) => run[key]));
console.log(`\nCold start of ${replicas} sidecar processes together, ${o['cold-rounds']} rounds each (token endpoint: 100 ms a grant); medians over rounds`);
console.log('cache   grants/round   first answer: median   slowest');
for (const mode of ['off', 'on']) {
  console.log(`${mode.padEnd(8)}${String(summary(cold[mode], 'grants')).padStart(12)}${(summary(cold[mode], 'medianMs').toFixed(0) + ' ms').padStart(23)}${(summary(cold[mode], 'slowestMs').toFixed(0) + ' ms').padStart(10)}`);
}
console.log(`\nSmall-request path, wrk -t1 -c${o.conns}, ${rounds} interleaved rounds × ${seconds} s; medians`);
console.log('cache      req/s   CPU µs/req   errors');
const [off, on] = targets;
for (const target of targets) {
  console.log(`${target.mode.padEnd(8)}${summary(target.runs, 'rps').toFixed(0).padStart(8)}${summary(target.runs, 'us').toFixed(1).padStart(13)}${String(target.runs.reduce((a, run) => a + run.errors, 0)).padStart(9)}`);
}
const ratio = median(on.runs.map((run, i) => run.rps / off.runs[i].rps));
const cpuRatio = median(on.runs.map((run, i) => run.us / off.runs[i].us));
console.log(`on ÷ off, median of per-round ratios: req/s ${ratio.toFixed(3)}, CPU per request ${cpuRatio.toFixed(3)}`);
await stop(redis);
tokenServer.close();
process.exit(0);
