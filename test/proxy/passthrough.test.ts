import assert from 'node:assert/strict';
import { createServer, request as httpRequest, ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { closeServer } from '../../src/demo/token-server.js';
import { startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';
import { startSidecar, type TestSidecar } from '../helpers/sidecar.js';

// An upstream that answers each path in a fixed way and counts its hits.
let upstream: Server;
let tokens: ScriptedTokenServer;
let sidecar: TestSidecar;
const hits = new Map<string, number>();

before(async () => {
  upstream = createServer((req, res) => {
    hits.set(req.url ?? '', (hits.get(req.url ?? '') ?? 0) + 1);
    let size = 0;
    req.on('data', (d: Buffer) => (size += d.length));
    req.on('end', () => {
      if (req.url === '/busy') {
        res.writeHead(503, { 'retry-after': '1', 'content-type': 'application/json' });
        return void res.end('{"error":"busy"}');
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ size, expect: req.headers.expect ?? null }));
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  tokens = await startScriptedTokenServer();
  sidecar = await startSidecar({
    routes: [{ name: 'api', upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, auth: { tokenUrl: tokens.url, clientId: 'a', clientSecret: 'b' } }],
  });
});

after(async () => {
  await sidecar.close();
  await Promise.all([closeServer(upstream), tokens.close()]);
});

test("an upstream 503 reaches the caller as it is, after one upstream hit (the proxy does not retry)", async () => {
  const response = await fetch(`${sidecar.proxyUrl}/busy`);
  assert.equal(response.status, 503);
  assert.equal(response.headers.get('retry-after'), '1');
  assert.deepEqual(await response.json(), { error: 'busy' });
  assert.equal(hits.get('/busy'), 1);
});

test('Expect: 100-continue (as curl sends for large uploads) gets 100 Continue and then the upstream answer', async () => {
  const body = Buffer.alloc(2 * 1024 * 1024, 'u');
  const result = await new Promise<{ status: number; continued: boolean; json: { size: number; expect: string | null } }>((resolve, reject) => {
    let continued = false;
    const req = httpRequest(`${sidecar.proxyUrl}/upload`, { method: 'PUT', headers: { expect: '100-continue', 'content-length': String(body.length) } });
    req.on('continue', () => {
      continued = true;
      req.end(body);
    });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, continued, json: JSON.parse(text) as { size: number; expect: string | null } }));
    });
    req.on('error', reject);
  });
  assert.equal(result.continued, true);
  assert.equal(result.status, 200);
  assert.deepEqual(result.json, { size: body.length, expect: null });
});

test('a long body reaches the caller whole, and no empty write reaches its socket (undici hands on empty chunks)', async () => {
  const body = Buffer.alloc(4 * 1024 * 1024, 'b');
  const origin = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
    res.end(body);
  });
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  const long = await startSidecar({
    routes: [{ name: 'long', upstream: `http://127.0.0.1:${(origin.address() as AddressInfo).port}`, auth: { tokenUrl: tokens.url, clientId: 'a', clientSecret: 'b' } }],
  });
  // Every write to the caller's response in this process, by length.
  const lengths: number[] = [];
  const write = ServerResponse.prototype.write;
  ServerResponse.prototype.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
    if (this.req.url === '/long-body') lengths.push(typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as Buffer).length);
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof write;
  try {
    const received = await new Promise<number>((resolve, reject) => {
      httpRequest(`${long.proxyUrl}/long-body`, (res) => {
        let size = 0;
        res.on('data', (d: Buffer) => (size += d.length));
        res.on('end', () => resolve(size));
        res.on('error', reject);
      })
        .on('error', reject)
        .end();
    });
    assert.equal(received, body.length);
    assert.ok(lengths.length > 4, `the body went out in chunks (${lengths.length} writes)`);
    assert.equal(lengths.filter((n) => n === 0).length, 0, `empty writes among ${lengths.length}`);
    assert.equal(lengths.reduce((a, b) => a + b, 0), body.length);
  } finally {
    ServerResponse.prototype.write = write;
    await long.close();
    await closeServer(origin);
  }
});
