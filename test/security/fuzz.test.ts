// Malformed and hostile requests, as exact bytes: each gets a 4xx or a closed connection, the
// process stays up, the next good request through the same sidecar works, and nothing smuggled
// reaches the upstream. Then a bounded fast-check run over random methods, header names and values.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { rawRequest, startSecurityStack, underBase, type SecurityStack } from '../helpers/security.js';

const malformed: [name: string, bytes: (foreignPort: number) => string | Buffer][] = [
  ['a method with a bad character', () => 'G@T /api/x HTTP/1.1\r\nHost: x\r\n\r\n'],
  ['an unknown method', () => 'FOO /api/x HTTP/1.1\r\nHost: x\r\n\r\n'],
  ['a very long method', () => `${'A'.repeat(20_000)} /api/x HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['TRACE (not proxied)', () => 'TRACE /api/x HTTP/1.1\r\nHost: x\r\n\r\n'],
  ['a header larger than the limit', () => `GET /api/x HTTP/1.1\r\nHost: x\r\nX-Huge: ${'h'.repeat(40_000)}\r\n\r\n`],
  ['ten thousand small headers', () => `GET /api/x HTTP/1.1\r\nHost: x\r\n${'X-A: 1\r\n'.repeat(10_000)}\r\n`],
  ['NUL in a header value', () => 'GET /api/x HTTP/1.1\r\nHost: x\r\nX-Nul: a\0b\r\n\r\n'],
  ['a bare CR in a header value', () => 'GET /api/x HTTP/1.1\r\nHost: x\r\nX-Cr: a\rb\r\n\r\n'],
  ['a space in a header name', () => 'GET /api/x HTTP/1.1\r\nHost: x\r\nX Bad: 1\r\n\r\n'],
  ['a folded header (obs-fold)', () => 'GET /api/x HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n b\r\n\r\n'],
  ['no Host header in HTTP/1.1', () => 'GET /api/x HTTP/1.1\r\n\r\n'],
  ['an invalid chunk size', () => 'POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
  ['a chunk longer than announced', () => 'POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n'],
  ['Content-Length and Transfer-Encoding (CL.TE smuggling)', () => 'POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 47\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n'],
  ['Transfer-Encoding and Content-Length (TE.CL smuggling)', () => 'POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n2e\r\nGET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n'],
  ['an obfuscated Transfer-Encoding', () => 'POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n'],
  ['Transfer-Encoding: chunked, identity', () => 'POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n'],
  ['a space before the header colon', () => 'POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n'],
  ['two different Content-Lengths', () => 'POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc'],
  ['a negative Content-Length', () => 'POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n'],
  ['a non-numeric Content-Length', () => 'POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n'],
  ['non-UTF-8 bytes in the path', () => Buffer.concat([Buffer.from('GET /api/'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from(' HTTP/1.1\r\nHost: x\r\n\r\n')])],
  ['an absolute-form target', (foreign) => `GET http://127.0.0.1:${foreign}/x HTTP/1.1\r\nHost: 127.0.0.1:${foreign}\r\n\r\n`],
  ['CONNECT', (foreign) => `CONNECT 127.0.0.1:${foreign} HTTP/1.1\r\nHost: 127.0.0.1:${foreign}\r\n\r\n`],
  ['HTTP/0.9 style "GET /"', () => 'GET /api/x\r\n\r\n'],
  ['an unknown HTTP version', () => 'GET /api/x HTTP/9.9\r\nHost: x\r\n\r\n'],
  ['a request line without a version', () => 'GET /api/x \r\nHost: x\r\n\r\n'],
  // Empty lines before a request line are skipped (RFC 9112 §2.2): no answer, the connection waits.
  ['a bare CRLF CRLF', () => '\r\n\r\n'],
  ['binary garbage', () => Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])],
];

describe('malformed requests', () => {
  let stack: SecurityStack;
  before(async () => {
    stack = await startSecurityStack({ listen: { maxHeaderBytes: 16_384 } });
  });
  after(() => stack.close());

  for (const [name, bytes] of malformed) {
    test(`${name}: a 4xx or a closed connection, then a good request works`, async () => {
      const response = await rawRequest(stack.port, bytes(stack.foreign.port), { idleMs: 300, timeoutMs: 1000 });
      assert.ok(response.status === 0 || (response.status >= 400 && response.status < 500), `got ${response.status}: ${response.text.slice(0, 200)}`);
      const good = await fetch(`${stack.sidecar.proxyUrl}/api/ok`);
      assert.equal(good.status, 200);
      await good.arrayBuffer();
      assert.ok(!stack.upstreamPaths().some((path) => path.includes('smuggled')), 'no smuggled request reached the upstream');
      assert.deepEqual(stack.upstreamPaths().filter((path) => !underBase(path)), []);
      assert.deepEqual(stack.foreign.hits, []);
    });
  }

  test('two Host headers: Node keeps the first; the sidecar never routes by Host, the upstream gets its own', async () => {
    const response = await rawRequest(stack.port, `GET /api/hosts HTTP/1.1\r\nHost: 127.0.0.1:${stack.foreign.port}\r\nHost: evil.example\r\nConnection: close\r\n\r\n`);
    assert.equal(response.status, 200);
    const last = stack.upstream.received.at(-1);
    assert.equal(last?.url, '/base/hosts');
    assert.equal(last?.headers.host, new URL(stack.upstream.url).host);
    assert.deepEqual(stack.foreign.hits, []);
  });

  test('fast-check: random methods, header names and values never crash it or reach beyond the base path', async () => {
    const token = fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}$/);
    const method = fc.oneof(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH'), token, fc.string({ maxLength: 12 }));
    const headerName = fc.oneof(token, fc.string({ maxLength: 20 })).filter((n) => !/^(content-length|transfer-encoding|expect|upgrade|connection)$/i.test(n.trim()));
    const headerValue = fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'binary', maxLength: 60 }), fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('latin1')));
    const requests = fc.sample(fc.record({ method, headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 }) }), { numRuns: 200, seed: 20_261_125 });
    const statuses = new Map<number, number>();
    for (const { method: m, headers } of requests) {
      const head = `${m} /api/fuzz HTTP/1.1\r\nHost: x\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}Connection: close\r\n\r\n`;
      const response = await rawRequest(stack.port, Buffer.from(head, 'latin1'), { idleMs: 300, timeoutMs: 3000 });
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      assert.ok(response.status < 500, `${JSON.stringify(head)} → ${response.status}: ${response.text.slice(0, 300)}`);
    }
    assert.ok((statuses.get(200) ?? 0) > 0 && (statuses.get(400) ?? 0) > 0, `a mix of good and bad requests was generated: ${JSON.stringify([...statuses])}`);
    assert.equal((await fetch(`${stack.sidecar.proxyUrl}/api/ok`)).status, 200);
    assert.deepEqual(stack.upstreamPaths().filter((path) => !underBase(path)), []);
    assert.deepEqual(stack.foreign.hits, []);
  });
});
