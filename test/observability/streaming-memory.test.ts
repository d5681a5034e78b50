// Bodies stream: 200 MB up and 200 MB down through a real sidecar process must not grow its
// resident memory by more than 60 MB over its level after a warm-up (issue 7; the benchmark does
// the same with 1 GiB). RSS is read from /proc, so this runs on Linux only.

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

function rssMB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${field}:`)) ?? '';
  return Number(/(\d+)/.exec(line)?.[1] ?? NaN) / 1024;
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

test('200 MB up and 200 MB down stream through the sidecar; its RSS grows by less than 60 MB', { skip: !existsSync('/proc/self/status') && 'needs /proc (Linux)' }, async () => {
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
    // Warm-up: pools, buffers and JIT reach their working size.
    assert.equal(await upload(`${base}/up`, 20 * MB), 20 * MB);
    assert.equal(await download(`${base}/bytes/${20 * MB}`), 20 * MB);
    const before = rssMB(pid, 'VmRSS');
    writeFileSync(`/proc/${pid}/clear_refs`, '5'); // reset the peak (VmHWM) to the current RSS
    assert.equal(await upload(`${base}/up`, 200 * MB), 200 * MB);
    assert.equal(await download(`${base}/bytes/${200 * MB}`), 200 * MB);
    const peak = rssMB(pid, 'VmHWM');
    const growth = peak - before;
    const summary = `RSS before ${before.toFixed(1)} MB, peak ${peak.toFixed(1)} MB: grew ${growth.toFixed(1)} MB`;
    process.stdout.write(`# ${summary}\n`);
    assert.ok(growth < 60, summary);
  } finally {
    sidecar.child.kill('SIGKILL');
    await Promise.all([tokens.close(), upstream.close()]);
  }
});
