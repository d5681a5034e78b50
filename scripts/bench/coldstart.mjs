#!/usr/bin/env node
// Cold start and idle RSS, A/B: several builds (or node flags) side by side, interleaved and with
// the order rotated each round, so that noise from the rest of the machine hits all alike.
//
//   node scripts/bench/coldstart.mjs [--rounds=N] [--idle-ms=1500] LABEL=PATH[,NODEARG...] ...
//     PATH: the entry to run (dist/cli.js, a bundle...); NODEARGs go before it, e.g.
//     base=dist/cli.js  semi1=dist/cli.js,--max-semi-space-size=1
//   --env=LABEL:VAR=VALUE sets an environment variable for that label only; --node=LABEL:PATH
//   runs that label with another node binary.
//
// Per start: spawn → first 200 from /readyz (which needs the first token from the local token
// endpoint in this process), the process's CPU time (user+system) by then, and VmRSS after
// --idle-ms with no traffic. Prints medians and ranges.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuSeconds, getStatus, median, sidecarYaml, sleep, targetSpec } from './util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const { values: o, positionals } = parseArgs({
  options: { rounds: { type: 'string', default: '10' }, 'idle-ms': { type: 'string', default: '1500' }, env: { type: 'string', multiple: true, default: [] }, node: { type: 'string', multiple: true, default: [] } },
  allowPositionals: true,
});
const rounds = Number(o.rounds);
const idleMs = Number(o['idle-ms']);
// user+system CPU of a process in ms: less moved by a busy machine than wall time.
const cpuMs = (pid) => cpuSeconds(pid) * 1000;
const get = getStatus;
const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

const targets = positionals.map((p) => {
  const { label, path, nodeArgs, env, node } = targetSpec(p, o);
  return { label, path: resolve(path), node, nodeArgs, env, starts: [], cpu: [], rss: [] };
});

const { startTokenServer } = await import(pathToFileURL(join(root, 'dist', 'demo', 'token-server.js')).href);
const tokens = await startTokenServer({ clients: [{ id: 'c', secret: 's' }], signingKey: 'k', expiresInSeconds: 3600 });
const tmp = mkdtempSync(join(os.tmpdir(), 'bearer-sidecar-cold-'));
const config = join(tmp, 'sidecar.yaml');
const port = 18195;
const adminPort = 19995;
// The upstream is never called: port 1, nothing listens there.
writeFileSync(config, sidecarYaml({ port, adminPort, route: 'cold', upstream: 'http://127.0.0.1:1', tokenUrl: tokens.url, clientId: 'c', clientSecret: 's' }));

async function once(t) {
  const t0 = performance.now();
  const child = spawn(t.node, [...t.nodeArgs, t.path, '--config', config], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...t.env } });
  const exited = new Promise((r) => child.once('exit', r));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${t.label} exited with ${child.exitCode}`);
      if ((await get(`http://127.0.0.1:${adminPort}/readyz`)) === 200) break;
      if (performance.now() - t0 > 20_000) throw new Error(`${t.label} not ready in 20 s`);
      await sleep(2);
    }
    t.starts.push(performance.now() - t0);
    t.cpu.push(cpuMs(child.pid));
    await sleep(idleMs);
    t.rss.push(rssKb(child.pid) / 1024);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

// A warm-up start per target (page cache, compile cache files when enabled) is not counted.
for (const t of targets) {
  await once(t);
  t.starts.length = 0;
  t.cpu.length = 0;
  t.rss.length = 0;
}
for (let r = 0; r < rounds; r++) {
  const order = targets.map((_, i) => targets[(i + r) % targets.length]);
  for (const t of order) await once(t);
}
await tokens.close();
rmSync(tmp, { recursive: true, force: true });

const f = (x) => x.toFixed(0);
const f1 = (x) => x.toFixed(1);
console.log(`${rounds} rounds, interleaved; load average before the end: ${os.loadavg()[0].toFixed(2)}`);
console.log('| target | cold start ms median (min–max) | CPU ms to ready median | idle RSS MB median (min–max) |');
console.log('| --- | ---: | ---: | ---: |');
for (const t of targets) {
  console.log(
    `| ${t.label} | ${f(median(t.starts))} (${f(Math.min(...t.starts))}–${f(Math.max(...t.starts))}) | ${f(median(t.cpu))} | ${f1(median(t.rss))} (${f1(Math.min(...t.rss))}–${f1(Math.max(...t.rss))}) |`,
  );
}
