// Never an open proxy: whatever the request target, Host header or upstream redirect, nothing
// (above all no token) reaches any host but the route's upstream, nor a path outside its base path.
// Every vector is sent as exact bytes over a socket; a foreign server records anything that leaks.

import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { closeServer } from '../../src/demo/token-server.js';
import { decodeChunked, rawGet, rawRequest, startForeignServer, startSecurityStack, underBase, type ForeignServer, type SecurityStack } from '../helpers/security.js';
import { startScriptedTokenServer } from '../helpers/servers.js';
import { startSidecar } from '../helpers/sidecar.js';

describe('request targets that point elsewhere', () => {
  let stack: SecurityStack;
  before(async () => {
    stack = await startSecurityStack();
  });
  after(() => stack.close());

  const foreignTarget = () => `127.0.0.1:${stack.foreign.port}`;
  const vectors: [name: string, target: () => string, status: number][] = [
    ['absolute-form to the foreign host', () => `http://${foreignTarget()}/x`, 400],
    ['absolute-form https', () => `https://${foreignTarget()}/x`, 400],
    ['absolute-form naming the upstream itself', () => `http://127.0.0.1:${new URL(stack.upstream.url).port}/base/x`, 400],
    ['scheme-relative //host', () => `//${foreignTarget()}/x`, 400],
    ['//host under the prefix', () => `/api//${foreignTarget()}/x`, 400],
    ['raw ../', () => '/../x', 400],
    ['raw ../ under the prefix', () => '/api/../../x', 400],
    ['/%2e%2e/', () => '/%2e%2e/x', 400],
    ['/%2E%2E/ under the prefix', () => '/api/%2E%2E/x', 400],
    ['/.%2e/', () => '/.%2e/x', 400],
    ['/..%2f', () => '/..%2fx', 400],
    ['/..%2F under the prefix', () => '/api/..%2F..%2Fx', 400],
    ['encoded slash alone', () => '/a%2fb', 400],
    ['backslashes', () => '/a\\..\\..\\x', 400],
    ['encoded backslash', () => '/..%5c..%5cx', 400],
    ['..; (Tomcat-style)', () => '/..;/x', 400],
    ['... segment (reply-from would refuse it too)', () => '/api/.../x', 400],
    ['asterisk-form', () => '*', 400],
    ['authority-form with GET', () => foreignTarget(), 400],
    ['NUL, encoded', () => '/a%00/x', 400],
    ['malformed percent-encoding', () => '/a%zz', 400],
  ];

  for (const [name, target, status] of vectors) {
    test(`${name}: ${status} JSON, nothing forwarded`, async () => {
      const before = stack.upstreamPaths().length;
      const response = await rawGet(stack.port, target());
      assert.equal(response.status, status, response.text);
      const body = JSON.parse(response.body) as { error: string; requestId?: string };
      assert.equal(body.error, 'bad_request');
      assert.equal(stack.upstreamPaths().length, before, 'the upstream got nothing');
      assert.deepEqual(stack.foreign.hits, []);
    });
  }

  test('raw non-ASCII bytes in the path: 400 (Node refuses them), nothing forwarded', async () => {
    const response = await rawRequest(stack.port, Buffer.concat([Buffer.from('GET /'), Buffer.from([0xff, 0xfe]), Buffer.from(' HTTP/1.1\r\nHost: x\r\n\r\n')]));
    assert.equal(response.status, 400);
    assert.equal((JSON.parse(response.body) as { error: string }).error, 'bad_request');
    assert.deepEqual(stack.foreign.hits, []);
  });

  test('CONNECT: 405 JSON and the connection is closed; no tunnel', async () => {
    const response = await rawRequest(stack.port, `CONNECT ${foreignTarget()} HTTP/1.1\r\nHost: ${foreignTarget()}\r\n\r\n`);
    assert.equal(response.status, 405);
    assert.match(response.head, /\r\nallow: /i);
    assert.equal((JSON.parse(response.body) as { error: string }).error, 'method_not_allowed');
    assert.deepEqual(stack.foreign.hits, []);
  });

  test('a Host header naming another host changes nothing: the upstream gets the request, with its own Host', async () => {
    const response = await rawRequest(stack.port, `GET /api/hosted HTTP/1.1\r\nHost: ${foreignTarget()}\r\nConnection: close\r\n\r\n`);
    assert.equal(response.status, 200, response.text);
    const echo = JSON.parse(decodeChunked(response)) as { path: string; headers: Record<string, string> };
    assert.equal(echo.path, '/base/hosted');
    assert.equal(echo.headers.host, new URL(stack.upstream.url).host);
    assert.deepEqual(stack.foreign.hits, []);
  });

  test('paths that look odd but are legitimate are forwarded verbatim, under the base path', async () => {
    for (const [target, expected] of [
      ['/api/a%20b', '/base/a%20b'],
      ['/api/x%3Ay', '/base/x%3Ay'],
      ['/api/%C3%A9t%C3%A9', '/base/%C3%A9t%C3%A9'],
      ['/api/a..b/c', '/base/a..b/c'],
      ['/api/v1.2/x;y=1', '/base/v1.2/x;y=1'],
      ['/api', '/base'],
      ['/%61pi/x', '/base/x'],
      ['/apix', '/base/apix'],
    ] as const) {
      const response = await rawGet(stack.port, target);
      assert.equal(response.status, 200, `${target}: ${response.text.slice(0, 200)}`);
      assert.equal(stack.upstreamPaths().at(-1), expected, target);
    }
    assert.deepEqual(stack.foreign.hits, []);
  });

  test('generated paths end to end: the foreign host gets nothing, the upstream nothing outside /base', async () => {
    const piece = fc.constantFrom('/', '.', '..', '%2e', '%2f', '%5c', '\\', ';', ':', '@', '%', 'a', 'api', '%61', '~', '%20', 'http:', '//', `127.0.0.1:${stack.foreign.port}`);
    const targets = fc.sample(
      fc.oneof(
        fc.array(piece, { maxLength: 10 }).map((parts) => `/${parts.join('')}`),
        fc.array(piece, { maxLength: 10 }).map((parts) => `/api/${parts.join('')}`),
        fc.webPath().map((p) => p || '/'),
      ),
      { numRuns: 100, seed: 4242 },
    );
    const answered = new Set<number>();
    for (const target of targets) {
      const response = await rawGet(stack.port, target);
      answered.add(response.status);
      assert.ok(response.status === 0 || (response.status >= 200 && response.status < 500), `${target}: ${response.status}`);
    }
    assert.ok(answered.has(200) && answered.has(400), `both accepted and refused paths were generated: ${[...answered].join(',')}`);
    const outside = stack.upstreamPaths().filter((path) => !underBase(path));
    assert.deepEqual(outside, []);
    assert.deepEqual(stack.foreign.hits, []);
  });
});

describe('redirects from the upstream', () => {
  let redirector: Server;
  let foreign: ForeignServer;
  let sidecarClose: () => Promise<void>;
  let proxyUrl: string;
  let tokensClose: () => Promise<void>;
  const received: string[] = [];

  before(async () => {
    foreign = await startForeignServer();
    // Answers /base/away with a redirect to the foreign host, /base/here with one to its own base path.
    redirector = createServer((req, res) => {
      received.push(req.url ?? '');
      const location = req.url?.startsWith('/base/away') ? `${foreign.url}/stolen` : req.url?.startsWith('/base/here') ? '/base/next?page=2' : '/elsewhere';
      res.writeHead(302, { location }).end();
    });
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
    const upstream = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/base`;
    const tokens = await startScriptedTokenServer();
    tokensClose = () => tokens.close();
    const auth = { tokenUrl: tokens.url, clientId: 'id', clientSecret: 'secret' };
    const sidecar = await startSidecar({
      routes: [
        { name: 'api', prefix: '/api', upstream, auth },
        { name: 'root', prefix: '/', upstream, auth },
      ],
    });
    proxyUrl = sidecar.proxyUrl;
    sidecarClose = () => sidecar.close();
  });
  after(async () => {
    await sidecarClose();
    await Promise.all([tokensClose(), foreign.close(), closeServer(redirector)]);
  });

  test('a redirect to another host is passed back unchanged and never followed', async () => {
    const response = await fetch(`${proxyUrl}/api/away`, { redirect: 'manual' });
    assert.equal(response.status, 302);
    assert.equal(response.headers.get('location'), `${foreign.url}/stolen`);
    assert.deepEqual(foreign.hits, []);
    assert.equal(received.filter((url) => url.startsWith('/base/away')).length, 1);
  });

  test('a Location under the base path is mapped back under the route prefix', async () => {
    const api = await fetch(`${proxyUrl}/api/here`, { redirect: 'manual' });
    assert.equal(api.headers.get('location'), '/api/next?page=2');
    const root = await fetch(`${proxyUrl}/here`, { redirect: 'manual' });
    assert.equal(root.headers.get('location'), '/next?page=2');
    const outside = await fetch(`${proxyUrl}/api/other`, { redirect: 'manual' });
    assert.equal(outside.status, 302);
    assert.equal(outside.headers.get('location'), '/elsewhere');
    assert.deepEqual(foreign.hits, []);
  });
});
