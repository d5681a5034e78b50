import assert from 'node:assert/strict';
import { channel } from 'node:diagnostics_channel';
import { Readable } from 'node:stream';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Pool } from 'undici';
import { minorCollection, startStreamGc, streamCollector } from '../../src/runtime/stream-gc.js';

const MiB = 1024 * 1024;
const publish = (name: string, message: unknown) => channel(name).publish(message);

test('streamCollector collects once per everyBytes forwarded, and counts again from zero after each', () => {
  let collections = 0;
  let clock = 0;
  const collector = streamCollector(() => (collections += 1), { everyBytes: 8 * MiB, now: () => (clock += 100) });
  for (let i = 0; i < 7; i++) assert.equal(collector.add(MiB), false);
  assert.equal(collector.add(MiB), true, 'the 8th MiB');
  assert.equal(collections, 1);
  assert.equal(collector.add(7 * MiB), false, 'counted from zero again');
  assert.equal(collector.add(2 * MiB), true);
  assert.equal(collections, 2);
  // Small bodies (a 27-byte response) add up slowly: 8 MiB of them is ~300 000 responses.
  for (let i = 0; i < 1000; i++) collector.add(27);
  assert.equal(collections, 2);
});

test('at most one collection per minIntervalMs, however fast the bytes come; the bytes wait for the next', () => {
  let collections = 0;
  let clock = 1000;
  const collector = streamCollector(() => (collections += 1), { everyBytes: MiB, minIntervalMs: 20, now: () => clock });
  assert.equal(collector.add(MiB), true);
  // 10 MiB within the same 19 ms: no second collection yet.
  for (let i = 0; i < 10; i++) {
    clock += 1.9;
    assert.equal(collector.add(MiB), false);
  }
  clock += 1.1; // 20 ms after the first
  assert.equal(collector.add(1), true, 'the waiting bytes collect as soon as the interval has passed');
  assert.equal(collections, 2);
  assert.equal(collector.add(MiB - 1), false, 'and the count started again from zero');
});

test("startStreamGc counts the chunks on undici's channels until stop()", () => {
  let collections = 0;
  const handle = startStreamGc({ everyBytes: 4 * MiB, minIntervalMs: 0 }, () => (collections += 1));
  try {
    publish('undici:request:bodyChunkReceived', { request: {}, chunk: Buffer.alloc(3 * MiB) });
    assert.equal(collections, 0);
    publish('undici:request:bodyChunkSent', { request: {}, chunk: new Uint8Array(MiB) });
    assert.equal(collections, 1, 'received and sent bytes count together');
    publish('undici:request:bodyChunkSent', { request: {}, chunk: 'not a chunk'.length });
    publish('undici:request:bodyChunkSent', { request: {} });
    assert.equal(collections, 1, 'messages without a chunk are ignored');
  } finally {
    handle.stop();
  }
  publish('undici:request:bodyChunkReceived', { request: {}, chunk: Buffer.alloc(8 * MiB) });
  assert.equal(collections, 1, 'nothing counted after stop()');
});

test('the bytes of real undici requests, both ways, reach the collector', async () => {
  const body = Buffer.alloc(2 * MiB, 1);
  const server = createServer((req, res) => {
    let got = 0;
    req.on('data', (chunk: Buffer) => (got += chunk.length));
    req.on('end', () => res.end(req.method === 'POST' ? String(got) : body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  let collections = 0;
  const handle = startStreamGc({ everyBytes: 256 * 1024, minIntervalMs: 0 }, () => (collections += 1));
  try {
    const down = await pool.request({ method: 'GET', path: '/' });
    assert.equal((await down.body.arrayBuffer()).byteLength, 2 * MiB);
    const afterDownload = collections;
    assert.ok(afterDownload >= 7, `2 MiB down in 256 KiB steps: ${afterDownload} collections`);
    const up = await pool.request({ method: 'POST', path: '/', body: Readable.from((function* () {
      for (let i = 0; i < 8; i++) yield Buffer.alloc(256 * 1024);
    })()) });
    assert.equal(await up.body.text(), String(2 * MiB));
    assert.ok(collections - afterDownload >= 7, `2 MiB up: ${collections - afterDownload} collections`);
  } finally {
    handle.stop();
    await pool.close();
    server.close();
  }
});

test('minorCollection runs a young-generation collection and leaves no global gc behind', async () => {
  const collect = minorCollection();
  collect();
  collect();
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined');
  const { runInNewContext } = await import('node:vm');
  assert.equal(runInNewContext('typeof gc'), 'undefined');
});
