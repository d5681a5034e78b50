// Inbound access control: client address ranges and a shared-secret header. A refused caller gets
// 403 JSON that says nothing about which rule it failed, and nothing reaches the token endpoint or
// the upstream on its behalf. The secret appears nowhere: not upstream, not in bodies, not in logs.

import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { describe, test } from 'node:test';
import { startEchoUpstream } from '../../src/demo/echo-upstream.js';
import { rawRequest, withSecurityStack } from '../helpers/security.js';
import { signingKey, startScriptedTokenServer } from '../helpers/servers.js';
import { startSidecar } from '../helpers/sidecar.js';

const secret = 'shared-secret-value-7c1d9e';

describe('listen.allowedClients', () => {
  test('a client outside every range gets 403 forbidden; nothing is forwarded', async () => {
    await withSecurityStack({ listen: { allowedClients: ['10.0.0.0/8', '::1/128'] } }, async (stack) => {
      const response = await fetch(`${stack.sidecar.proxyUrl}/api/x`);
      assert.equal(response.status, 403);
      const body = (await response.json()) as Record<string, string>;
      assert.equal(body.error, 'forbidden');
      assert.equal(body.message, 'this client may not use the sidecar');
      assert.ok(body.requestId);
      // Not even a 404 for an unknown path: a refused client learns nothing about the routes.
      assert.equal((await fetch(`${stack.sidecar.proxyUrl}/api/../nowhere`)).status, 403);
      assert.equal(stack.upstream.received.length, 0);
    });
  });

  test('a client inside a range is served, on every request of a kept-alive connection', async () => {
    await withSecurityStack({ listen: { allowedClients: ['192.168.0.0/16', '127.0.0.0/8'] } }, async (stack) => {
      for (let i = 0; i < 3; i++) assert.equal((await fetch(`${stack.sidecar.proxyUrl}/api/ok`)).status, 200);
      assert.equal(stack.upstream.received.length, 3);
    });
  });

  test('a dual-stack listener sees IPv4 clients as ::ffff:127.0.0.1, and IPv4 ranges still match them', async (t) => {
    const tokens = await startScriptedTokenServer();
    const upstream = await startEchoUpstream({ signingKey });
    const auth = { tokenUrl: tokens.url, clientId: 'id', clientSecret: 'secret' };
    const start = (allowedClients: string[]) => startSidecar({ listen: { host: '::', port: 0, allowedClients }, routes: [{ name: 'r', upstream: upstream.url, auth }] });
    try {
      let allowed;
      try {
        allowed = await start(['127.0.0.1/32']);
      } catch (err) {
        t.skip(`no IPv6 on this machine (${(err as NodeJS.ErrnoException).code})`);
        return;
      }
      const port = new URL(allowed.proxyUrl).port;
      try {
        const response = await fetch(`http://127.0.0.1:${port}/x`);
        assert.equal(response.status, 200);
        assert.equal(((await response.json()) as { path: string }).path, '/x');
      } finally {
        await allowed.close();
      }
      const refused = await start(['::1/128']);
      try {
        assert.equal((await fetch(`http://127.0.0.1:${new URL(refused.proxyUrl).port}/x`)).status, 403);
      } finally {
        await refused.close();
      }
    } finally {
      await Promise.all([tokens.close(), upstream.close()]);
    }
  });
});

describe('listen.sharedSecretHeader', () => {
  test('missing or wrong: 403, identical bodies; right: forwarded without the header; the secret is never echoed or logged', async () => {
    await withSecurityStack({ listen: { sharedSecretHeader: { name: 'X-Sidecar-Key', value: secret } }, logLevel: 'debug' }, async (stack) => {
      const url = `${stack.sidecar.proxyUrl}/api/thing`;
      const refusals = [
        await fetch(url),
        await fetch(url, { headers: { 'x-sidecar-key': 'wrong' } }),
        await fetch(url, { headers: { 'x-sidecar-key': `${secret}x` } }),
        await fetch(url, { headers: { 'x-sidecar-key': secret.toUpperCase() } }),
        await fetch(url, { headers: { 'x-other-key': secret } }),
      ];
      const bodies = await Promise.all(refusals.map(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, string> })));
      for (const { status, body } of bodies) {
        assert.equal(status, 403);
        assert.deepEqual({ error: body.error, message: body.message }, { error: 'forbidden', message: 'this client may not use the sidecar' });
      }
      assert.equal(stack.upstream.received.length, 0);

      const ok = await fetch(url, { headers: { 'X-Sidecar-Key': secret, 'x-kept': 'yes' } });
      assert.equal(ok.status, 200);
      const echo = (await ok.json()) as { headers: Record<string, string> };
      assert.equal(echo.headers['x-sidecar-key'], undefined, 'stripped before forwarding');
      assert.equal(echo.headers['x-kept'], 'yes');
      assert.match(echo.headers.authorization ?? '', /^Bearer /);

      // The same header twice is refused (Node joins the values), and refusals on malformed requests say nothing either.
      const doubled = await rawRequest(stack.port, `GET /api/x HTTP/1.1\r\nHost: x\r\nX-Sidecar-Key: ${secret}\r\nX-Sidecar-Key: ${secret}\r\nConnection: close\r\n\r\n`);
      assert.equal(doubled.status, 403);
      const malformed = await rawRequest(stack.port, `GET /api/x HTTP/1.1\r\nHost: x\r\nX-Sidecar-Key: ${secret}\r\nBad Header: 1\r\n\r\n`);
      assert.equal(malformed.status, 400);
      for (const text of [doubled.text, malformed.text, JSON.stringify(bodies)]) assert.doesNotMatch(text, new RegExp(secret));

      await new Promise((resolve) => setTimeout(resolve, 50));
      const logs = stack.sidecar.logs.join('\n');
      assert.ok(logs.includes('"status":403'), 'refusals are logged');
      assert.doesNotMatch(logs, new RegExp(secret, 'i'));
      assert.doesNotMatch(logs, /ey[A-Za-z0-9_-]{10,}\.ey/, 'no token in the logs');
    });
  });

  test('both rules at once: an allowed address still needs the header', async () => {
    await withSecurityStack({ listen: { allowedClients: ['127.0.0.1'], sharedSecretHeader: { name: 'x-sidecar-key', value: secret } } }, async (stack) => {
      assert.equal((await fetch(`${stack.sidecar.proxyUrl}/x`)).status, 403);
      assert.equal((await fetch(`${stack.sidecar.proxyUrl}/x`, { headers: { 'x-sidecar-key': secret } })).status, 200);
      // node:http too, to be sure nothing depends on fetch's header handling.
      const status = await new Promise<number>((resolve, reject) => {
        httpRequest(`${stack.sidecar.proxyUrl}/x`, { headers: { 'x-sidecar-key': secret } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
          .on('error', reject)
          .end();
    });
    assert.equal(status, 200);
    });
  });
});
