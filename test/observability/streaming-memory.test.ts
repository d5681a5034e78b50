// Bodies stream: 200 MB up and 200 MB down through a real sidecar process must not raise its
// peak resident memory by more than 60 MB over its peak during a warm-up (issue 7; the benchmark
// does the same with 1 GiB). RSS is read from /proc, so this runs on Linux only.
//
// The warm-up streams 64 MiB each way, as the benchmark does, and its peak is the baseline,
// because the working set it sets is the runtime's, and differs by runtime. Every chunk that
// passes through is a Buffer that is garbage once written. Node 20's V8 frees them with a
// scavenge whenever external memory pressure builds; Node 24's V8 (13.6) answers that pressure
// with an incremental mark-compact instead, which it starts only once external memory has grown
// by its soft limit (64 MiB) since the last one, so while streaming it holds some 40-60 MB more
// of dead Buffers, and its RSS saws up and down by that much. Measured against the RSS after a
// 20 MB warm-up, as this test once was, Node 24 "grew" 34-62 MB in 8 runs (63.6 in issue 13)
// against 8-19 MB on Node 20: the runtime filling its working set, not the sidecar buffering.
// Against the warm-up's peak: Node 24 -1 to 28 MB, Node 20 2-7 MB (6 runs each), where a body
// held in memory would add its 200 MB.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { startEchoUpstream } from '../../src/demo/echo-upstream.js';
import { startTokenServer } from '../../src/demo/token-server.js';
import { run } from '../helpers/process.js';
import { freePort, signingKey } from '../helpers/servers.js';

const MB = 1024 * 1024;

/** The process's peak resident memory (VmHWM) since the last resetPeak(pid), in MB. */
function peakRssMB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmHWM:')) ?? '';
  return Number(/(\d+)/.exec(line)?.[1] ?? NaN) / 1024;
}

/** Sets VmHWM to the current RSS. */
function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** Uploads `bytes` (chunked, generated on the fly) and returns what the upstream counted. */
function upload(url: string, bytes: number): Promise<number> {
  const chunk = Buffer.alloc(256 * 1024, 'u');
  let left = bytes;
  const body = new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= part.length;
      this.push(part);
    },
  });
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/octet-stream' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve((JSON.parse(text) as { body: { bytes: number } }).body.bytes));
    });
    req.on('error', reject);
    body.pipe(req);
  });
}

/** Downloads and counts, discarding the data as it comes. */
function download(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      let size = 0;
      res.on('data', (d: Buffer) => (size += d.length));
      res.on('end', () => resolve(size));
    })
      .on('error', reject)
      .end();
  });
}

test('200 MB up and 200 MB down stream through the sidecar; its peak RSS grows by less than 60 MB over the warm-up\'s', { skip: !existsSync('/proc/self/status') && 'needs /proc (Linux)' }, async () => {
  const tokens = await startTokenServer({ clients: [{ id: 'm', secret: 'memory-test-secret' }], signingKey });
  const upstream = await startEchoUpstream({ signingKey });
  const port = await freePort();
  const sidecar = run([], {
    BEARER_SIDECAR_TOKEN_URL: tokens.url,
    BEARER_SIDECAR_UPSTREAM: upstream.url,
    BEARER_SIDECAR_CLIENT_ID: 'm',
    BEARER_SIDECAR_CLIENT_SECRET: 'memory-test-secret',
    BEARER_SIDECAR_PORT: String(port),
    BEARER_SIDECAR_ADMIN_PORT: String(await freePort()),
  });
  try {
    await sidecar.waitFor(/"msg":"token refreshed"/, 20_000);
    const pid = sidecar.child.pid as number;
    const base = `http://127.0.0.1:${port}`;
    // Warm-up: pools, buffers, JIT and the garbage collector's external-memory cycle reach their
    // working size (see the top of the file).
    resetPeak(pid);
    assert.equal(await upload(`${base}/up`, 64 * MB), 64 * MB);
    assert.equal(await download(`${base}/bytes/${64 * MB}`), 64 * MB);
    const warmPeak = peakRssMB(pid);
    resetPeak(pid);
    assert.equal(await upload(`${base}/up`, 200 * MB), 200 * MB);
    assert.equal(await download(`${base}/bytes/${200 * MB}`), 200 * MB);
    const peak = peakRssMB(pid);
    const growth = peak - warmPeak;
    const summary = `Node ${process.version}: peak RSS ${warmPeak.toFixed(1)} MB in the warm-up, ${peak.toFixed(1)} MB streaming 200 MB each way: grew ${growth.toFixed(1)} MB`;
    process.stdout.write(`# ${summary}\n`);
    assert.ok(growth < 60, summary);
  } finally {
    sidecar.child.kill('SIGKILL');
    await Promise.all([tokens.close(), upstream.close()]);
  }
});
