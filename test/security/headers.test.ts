// What crosses the sidecar besides the body: hop-by-hop headers stop at it (both ways),
// X-Forwarded-* and Forwarded follow routes[].forwardedHeaders, cookies follow forwardCookies.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { closeServer } from '../../src/demo/token-server.js';
import { decodeChunked, rawRequest, withSecurityStack } from '../helpers/security.js';
import { startScriptedTokenServer } from '../helpers/servers.js';
import { startSidecar } from '../helpers/sidecar.js';

interface Echo {
  path: string;
  headers: Record<string, string | undefined>;
}

/** Sends exact header lines (node:http and fetch refuse some of them) and returns what the upstream saw. */
async function echoed(port: number, headerLines: string[]): Promise<Echo> {
  const response = await rawRequest(port, `GET /api/h HTTP/1.1\r\nHost: 127.0.0.1\r\n${headerLines.map((l) => `${l}\r\n`).join('')}Connection: close\r\n\r\n`);
  assert.equal(response.status, 200, response.text);
  return JSON.parse(decodeChunked(response)) as Echo;
}

const spoofed = ['X-Forwarded-For: 6.6.6.6', 'X-Forwarded-Host: evil.example', 'X-Forwarded-Proto: https', 'X-Forwarded-Port: 443', 'X-Forwarded-Prefix: /admin', 'X-Real-IP: 6.6.6.6', 'Forwarded: for=6.6.6.6;host=evil.example'];

describe('hop-by-hop headers', () => {
  test('Connection and the headers it names, Proxy-Authorization, Proxy-Connection, Keep-Alive, TE, Trailer, Upgrade are not forwarded', async () => {
    await withSecurityStack({}, async (stack) => {
      const echo = await rawRequest(
        stack.port,
        'GET /api/h HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-T\r\nX-Kept: yes\r\n\r\n',
      );
      const seen = (JSON.parse(decodeChunked(echo)) as Echo).headers;
      for (const name of ['x-secret-hop', 'proxy-authorization', 'proxy-connection', 'keep-alive', 'te', 'trailer', 'upgrade']) assert.equal(seen[name], undefined, name);
      assert.equal(seen['x-kept'], 'yes');
    });
  });

  test("the upstream's Connection, Keep-Alive and the headers its Connection names do not reach the caller; a caller's close is honoured", async () => {
    const upstream = createServer((_req, res) => {
      res.writeHead(200, { connection: 'keep-alive, x-upstream-hop', 'keep-alive': 'timeout=1', 'x-upstream-hop': 'internal', 'proxy-authenticate': 'Basic', 'x-kept': 'yes', 'content-type': 'text/plain' });
      res.end('ok');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const tokens = await startScriptedTokenServer();
    const sidecar = await startSidecar({ routes: [{ name: 'r', upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, auth: { tokenUrl: tokens.url, clientId: 'i', clientSecret: 's' } }] });
    try {
      const started = Date.now();
      const response = await rawRequest(Number(new URL(sidecar.proxyUrl).port), 'GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { idleMs: 3000 });
      assert.equal(response.status, 200);
      assert.match(response.head, /\r\nconnection: close/i);
      assert.doesNotMatch(response.head, /keep-alive|x-upstream-hop|proxy-authenticate/i);
      assert.match(response.head, /\r\nx-kept: yes/i);
      assert.ok(Date.now() - started < 2500, 'the sidecar closed the connection as asked');
    } finally {
      await sidecar.close();
      await Promise.all([tokens.close(), closeServer(upstream)]);
    }
  });
});

describe('routes[].forwardedHeaders', () => {
  test('strip (the default): a caller cannot claim another address, host or scheme upstream', async () => {
    await withSecurityStack({}, async (stack) => {
      const { headers } = await echoed(stack.port, spoofed);
      for (const name of ['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-forwarded-prefix', 'x-real-ip', 'forwarded']) assert.equal(headers[name], undefined, name);
    });
  });

  test("append: the caller's X-Forwarded-For chain gets the client address; proto and host are the sidecar's; the rest is removed", async () => {
    await withSecurityStack({ routeExtra: { forwardedHeaders: 'append' } }, async (stack) => {
      const { headers } = await echoed(stack.port, spoofed);
      assert.equal(headers['x-forwarded-for'], '6.6.6.6, 127.0.0.1');
      assert.equal(headers['x-forwarded-proto'], 'http');
      assert.equal(headers['x-forwarded-host'], '127.0.0.1');
      for (const name of ['x-forwarded-port', 'x-forwarded-prefix', 'x-real-ip', 'forwarded']) assert.equal(headers[name], undefined, name);
      const fresh = await echoed(stack.port, []);
      assert.equal(fresh.headers['x-forwarded-for'], '127.0.0.1');
    });
  });

  test('pass: forwarded as the caller sent them', async () => {
    await withSecurityStack({ routeExtra: { forwardedHeaders: 'pass' } }, async (stack) => {
      const { headers } = await echoed(stack.port, spoofed);
      assert.equal(headers['x-forwarded-for'], '6.6.6.6');
      assert.equal(headers['x-forwarded-host'], 'evil.example');
      assert.equal(headers.forwarded, 'for=6.6.6.6;host=evil.example');
    });
  });
});

describe('routes[].forwardCookies', () => {
  async function cookieStack(forwardCookies: boolean) {
    const upstream = createServer((req, res) => {
      res.writeHead(200, { 'set-cookie': ['session=upstream; HttpOnly', 'other=2'], 'content-type': 'application/json' });
      res.end(JSON.stringify({ cookie: req.headers.cookie ?? null }));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const tokens = await startScriptedTokenServer();
    const sidecar = await startSidecar({ routes: [{ name: 'r', forwardCookies, upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, auth: { tokenUrl: tokens.url, clientId: 'i', clientSecret: 's' } }] });
    return {
      sidecar,
      close: async () => {
        await sidecar.close();
        await Promise.all([tokens.close(), closeServer(upstream)]);
      },
    };
  }

  test('true (the default): Cookie goes up, Set-Cookie comes back', async () => {
    const { sidecar, close } = await cookieStack(true);
    try {
      const response = await fetch(`${sidecar.proxyUrl}/x`, { headers: { cookie: 'a=1; b=2' } });
      assert.deepEqual(await response.json(), { cookie: 'a=1; b=2' });
      assert.deepEqual(response.headers.getSetCookie(), ['session=upstream; HttpOnly', 'other=2']);
    } finally {
      await close();
    }
  });

  test('false: neither Cookie nor Set-Cookie crosses the sidecar', async () => {
    const { sidecar, close } = await cookieStack(false);
    try {
      const response = await fetch(`${sidecar.proxyUrl}/x`, { headers: { cookie: 'a=1; b=2' } });
      assert.deepEqual(await response.json(), { cookie: null });
      assert.deepEqual(response.headers.getSetCookie(), []);
    } finally {
      await close();
    }
  });
});
