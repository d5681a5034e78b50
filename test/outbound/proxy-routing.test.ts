// Outbound proxies end to end, with a real forward proxy (the `proxy` package, Basic
// authentication on) in a process of its own. The targets are named api.internal.test, a name
// only the proxy can resolve: a request that reaches them went through the proxy. https://
// targets go through CONNECT with TLS end to end (a test CA made here); http:// targets in
// absolute form; WebSocket dials through CONNECT. Then which targets bypass the proxy, and which
// settings win.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { audit, call } from '../helpers/audit.js';
import { opensslMissing } from '../helpers/certs.js';
import { privateHost, proxyPassword, startForwardProxy, startProxyTargets, type ForwardProxy, type ProxyTargets } from '../helpers/forward-proxy.js';
import { freePort } from '../helpers/servers.js';
import { startSidecar, type TestSidecar } from '../helpers/sidecar.js';
import { echo, openSocket } from '../helpers/websocket.js';

const retry = { retries: 1, minDelayMs: 10, maxDelayMs: 50, maxTimeMs: 5000 };

describe('requests through an outbound proxy', { skip: opensslMissing }, () => {
  let targets: ProxyTargets;
  let proxy: ForwardProxy;
  let deadProxy: string;

  before(async () => {
    [targets, proxy] = await Promise.all([startProxyTargets(), startForwardProxy()]);
    deadProxy = `http://127.0.0.1:${await freePort()}`;
  });
  after(async () => {
    await Promise.all([targets.close(), proxy.close()]);
    audit.assertNothingLeaked();
  });

  /** The requests the proxy was asked since `before` (a count taken earlier). */
  const asked = async (before: number) => (await proxy.requests()).slice(before);

  async function withSidecar(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, check: (sidecar: TestSidecar) => Promise<void>): Promise<void> {
    const sidecar = await startSidecar(raw, { env });
    try {
      await check(sidecar);
    } finally {
      await sidecar.close();
    }
  }

  test('https:// (CONNECT, TLS end to end): token requests, upstream requests and WebSocket dials all go through the proxy, with Proxy-Authorization', async () => {
    const start = (await proxy.requests()).length;
    const route = {
      name: 'api',
      upstream: `https://${privateHost}:${targets.httpsPort}/v1`,
      websocket: true,
      tls: { caFile: targets.caFile },
      auth: { tokenUrl: `https://${privateHost}:${targets.httpsTokensPort}/oauth2/token`, clientId: 'id', clientSecret: 'proxied-client-secret', retry, tls: { caFile: targets.caFile } },
    };
    await withSidecar({ routes: [route] }, { HTTPS_PROXY: proxy.url }, async (sidecar) => {
      const response = await call(`${sidecar.proxyUrl}/things?a=1`);
      assert.equal(response.status, 200, response.text);
      const echoed = response.json<{ path: string; query: string; headers: Record<string, string> }>();
      assert.deepEqual([echoed.path, echoed.query], ['/v1/things', '?a=1']);
      assert.match(echoed.headers.authorization ?? '', /^Bearer ey/);
      assert.equal(echoed.headers.host, `${privateHost}:${targets.httpsPort}`, 'Host is the target, as without a proxy');
      assert.equal(echoed.headers['proxy-authorization'], undefined, 'the proxy credentials stop at the proxy');

      const socket = await openSocket(`${sidecar.proxyUrl.replace(/^http/, 'ws')}/stream`);
      try {
        assert.equal((await echo(socket, 'through the tunnel')).data.toString(), 'through the tunnel');
      } finally {
        socket.close();
      }
      // Keep-alive: more requests reuse the tunnel rather than opening one each.
      for (let i = 0; i < 5; i++) assert.equal((await call(`${sidecar.proxyUrl}/again`)).status, 200);

      const seen = await asked(start);
      assert.ok(seen.every((r) => r.method === 'CONNECT' && r.authorized && r.withAuthorization), JSON.stringify(seen));
      const connects = (port: number) => seen.filter((r) => r.url === `${privateHost}:${port}`).length;
      assert.equal(connects(targets.httpsTokensPort), 1, 'the token request');
      assert.equal(connects(targets.httpsPort), 2, 'one tunnel for the plain requests, one for the WebSocket');
      assert.equal((await call(`${sidecar.adminUrl}/readyz`)).status, 200);
    });
  });

  test('http:// (absolute form): token requests and upstream requests go to the proxy as GET http://host/path; WebSocket dials through CONNECT', async () => {
    const start = (await proxy.requests()).length;
    const upstreamPort = Number(new URL(targets.upstream.url).port);
    const tokenPort = Number(new URL(targets.tokens.url).port);
    const route = {
      name: 'api',
      upstream: `http://${privateHost}:${upstreamPort}/v1`,
      websocket: true,
      auth: { tokenUrl: `http://${privateHost}:${tokenPort}/oauth2/token`, allowInsecureTokenUrl: true, clientId: 'id', clientSecret: 'proxied-client-secret', retry },
    };
    await withSidecar({ routes: [route] }, { HTTP_PROXY: proxy.url }, async (sidecar) => {
      const posted = await call(`${sidecar.proxyUrl}/items?q=x%20y`, { method: 'POST', body: 'hello', headers: { 'content-type': 'text/plain' } });
      assert.equal(posted.status, 200, posted.text);
      const echoed = posted.json<{ method: string; path: string; query: string; headers: Record<string, string>; body: { bytes: number } }>();
      assert.deepEqual([echoed.method, echoed.path, echoed.query, echoed.body.bytes], ['POST', '/v1/items', '?q=x%20y', 5]);
      assert.equal(echoed.headers.host, `${privateHost}:${upstreamPort}`);
      assert.equal(echoed.headers['proxy-authorization'], undefined);
      assert.match(echoed.headers.via ?? '', /proxy/, 'the proxy relayed it');

      const socket = await openSocket(`${sidecar.proxyUrl.replace(/^http/, 'ws')}/stream`);
      socket.close();

      const seen = await asked(start);
      assert.ok(seen.every((r) => r.authorized && r.withAuthorization), JSON.stringify(seen));
      assert.deepEqual(
        seen.map((r) => `${r.method} ${r.url}`),
        [`POST http://${privateHost}:${tokenPort}/oauth2/token`, `POST http://${privateHost}:${upstreamPort}/v1/items?q=x%20y`, `CONNECT ${privateHost}:${upstreamPort}`],
      );
    });
  });

  test('auth.issuer: the discovery document and the token request both go through the proxy', async () => {
    const start = (await proxy.requests()).length;
    const issuer = `https://${privateHost}:${targets.httpsTokensPort}`;
    const route = { name: 'api', upstream: `https://${privateHost}:${targets.httpsPort}`, tls: { caFile: targets.caFile }, auth: { issuer, clientId: 'id', clientSecret: 'proxied-client-secret', retry, tls: { caFile: targets.caFile } } };
    const before = targets.tokens.requests.length;
    await withSidecar({ routes: [route] }, { HTTPS_PROXY: proxy.url }, async (sidecar) => {
      assert.equal((await call(`${sidecar.proxyUrl}/x`)).status, 200);
      assert.equal(targets.tokens.requests.length, before + 1, 'the token came from the discovered endpoint');
      const seen = await asked(start);
      assert.ok(seen.length >= 2 && seen.every((r) => r.method === 'CONNECT' && r.authorized), JSON.stringify(seen));
      assert.ok(seen.some((r) => r.url === `${privateHost}:${targets.httpsTokensPort}`), 'discovery and the token request');
    });
  });

  test('a client certificate (mutual TLS) is presented inside the tunnel', async () => {
    const client = targets.pki.client('sidecar-through-proxy');
    const auth = { tokenUrl: targets.tokens.url, clientId: 'id', clientSecret: 'proxied-client-secret', retry };
    const upstream = `https://${privateHost}:${targets.mutualTlsPort}`;
    const routes = [
      { name: 'with-cert', prefix: '/with', upstream, tls: { caFile: targets.caFile, certFile: client.certFile, keyFile: client.keyFile }, auth },
      { name: 'without', prefix: '/without', upstream, tls: { caFile: targets.caFile }, auth },
    ];
    const start = (await proxy.requests()).length;
    await withSidecar({ outboundProxy: { url: proxy.url, noProxy: '127.0.0.1' }, routes }, {}, async (sidecar) => {
      const answered = await call(`${sidecar.proxyUrl}/with/x`);
      assert.equal(answered.status, 200, answered.text);
      assert.equal((await call(`${sidecar.proxyUrl}/without/x`)).status, 502, 'the upstream wants a certificate');
      assert.ok((await asked(start)).every((r) => r.method === 'CONNECT' && r.url === `${privateHost}:${targets.mutualTlsPort}`));
    });
  });

  test('a reload applies a new proxy URL, a changed password included; an unchanged proxy keeps the token source', async () => {
    const wrong = proxy.url.replace(encodeURIComponent(proxyPassword), 'wrong-password');
    const config = (url: string, responseTimeoutMs = 60_000) => ({
      outboundProxy: { url, noProxy: '127.0.0.1' },
      routes: [{ name: 'api', upstream: `https://${privateHost}:${targets.httpsPort}`, responseTimeoutMs, tls: { caFile: targets.caFile }, auth: { tokenUrl: targets.tokens.url, clientId: 'id', clientSecret: 'proxied-client-secret', retry } }],
    });
    const sidecar = await startSidecar(config(wrong), { env: {} });
    try {
      const refused = await call(`${sidecar.proxyUrl}/x`);
      assert.deepEqual([refused.status, refused.json().error], [502, 'outbound_proxy_refused']);
      const tokensBefore = targets.tokens.requests.length;
      // Only the password differs: a change all the same.
      assert.equal((await sidecar.reload(config(proxy.url))).outcome, 'success');
      assert.equal((await call(`${sidecar.proxyUrl}/x`)).status, 200, 'the same proxy with the right password');
      assert.equal(targets.tokens.requests.length, tokensBefore + 1, 'another proxy: another token source');
      // Another setting changes, the proxy does not: the token source (and its token) stay.
      assert.equal((await sidecar.reload(config(proxy.url, 30_000))).outcome, 'success');
      assert.equal((await call(`${sidecar.proxyUrl}/x`)).status, 200);
      assert.equal(targets.tokens.requests.length, tokensBefore + 1, 'the same proxy: the token source is kept');
    } finally {
      await sidecar.close();
    }
  });

  test('the certificate is checked against the target name through the tunnel, with the route\u2019s TLS settings', async () => {
    const start = (await proxy.requests()).length;
    const auth = { tokenUrl: targets.tokens.url, clientId: 'id', clientSecret: 'proxied-client-secret', retry };
    // The certificate names api.internal.test only; and without the route's caFile its CA is unknown.
    const routes = [
      { name: 'by-ip', prefix: '/by-ip', upstream: `https://127.0.0.1:${targets.httpsPort}`, tls: { caFile: targets.caFile }, auth },
      { name: 'no-ca', prefix: '/no-ca', upstream: `https://${privateHost}:${targets.httpsPort}`, auth },
    ];
    await withSidecar({ outboundProxy: { url: proxy.url, noProxy: '127.0.0.1:' + new URL(targets.tokens.url).port }, routes }, {}, async (sidecar) => {
      const before = targets.upstream.received.length;
      for (const prefix of ['/by-ip', '/no-ca']) {
        const response = await call(`${sidecar.proxyUrl}${prefix}/x`);
        assert.equal(response.status, 502, response.text);
        assert.equal(response.json().error, 'upstream_unreachable');
      }
      assert.equal(targets.upstream.received.length, before, 'nothing was sent over an unverified connection');
      assert.deepEqual((await asked(start)).map((r) => r.url), [`127.0.0.1:${targets.httpsPort}`, `${privateHost}:${targets.httpsPort}`]);
    });
  });

  test('NO_PROXY: each form bypasses the proxy (host, .suffix, *.suffix, IP, host:port, CIDR, *), and what it does not list does not', async () => {
    const start = (await proxy.requests()).length;
    const port = Number(new URL(targets.upstream.url).port);
    const auth = { tokenUrl: targets.tokens.url, clientId: 'id', clientSecret: 'proxied-client-secret', retry };
    const bypassing: [string, string, string | string[]][] = [
      ['host', 'localhost', 'localhost'],
      ['dot-suffix', 'localhost', '.localhost'],
      ['star-suffix', 'localhost', ['other.example', '*.localhost']],
      ['ip', '127.0.0.1', '127.0.0.1'],
      ['host-port', 'localhost', `localhost:${port}`],
      ['ip-port', '127.0.0.1', `127.0.0.1:${port}`],
      ['cidr', '127.0.0.1', '127.0.0.0/8'],
      ['star', '127.0.0.1', '*'],
    ];
    const proxied: [string, string, string | string[]][] = [
      ['other-port', 'localhost', `localhost:${port + 1 === 65_536 ? 1 : port + 1}`],
      ['other-range', '127.0.0.1', ['10.0.0.0/8', '::1']],
      ['name-not-ip', '127.0.0.1', 'localhost'],
      ['empty', 'localhost', []],
    ];
    const routes = [...bypassing, ...proxied].map(([name, host, noProxy]) => ({
      name,
      prefix: `/${name}`,
      upstream: `http://${host}:${port}`,
      outboundProxy: { url: proxy.url, noProxy },
      auth: { ...auth, tokenUrl: targets.tokens.url },
    }));
    // The token endpoint is reached directly by every route: 127.0.0.1 is listed for it.
    for (const route of routes) route.outboundProxy.noProxy = ([] as string[]).concat(route.outboundProxy.noProxy, `127.0.0.1:${new URL(targets.tokens.url).port}`);
    await withSidecar({ routes }, { HTTP_PROXY: deadProxy }, async (sidecar) => {
      for (const [name] of [...bypassing, ...proxied]) {
        const response = await call(`${sidecar.proxyUrl}/${name}/x`);
        assert.equal(response.status, 200, `${name}: ${response.text}`);
      }
      const seen = await asked(start);
      assert.deepEqual(
        seen.map((r) => `${r.method} ${new URL(r.url).pathname}`),
        proxied.map(() => 'GET /x'),
        'only the routes whose target is not listed went through the proxy',
      );
      assert.deepEqual(
        seen.map((r) => new URL(r.url).host),
        proxied.map(([, host]) => `${host}:${port}`),
      );
    });
  });

  test('environment: the lower-case variable wins; NO_PROXY applies; config overrides both; outboundProxy: false ignores them', async () => {
    const port = Number(new URL(targets.upstream.url).port);
    const auth = { tokenUrl: targets.tokens.url, clientId: 'id', clientSecret: 'proxied-client-secret', retry };
    const routes = [
      { name: 'from-env', prefix: '/env', upstream: `http://localhost:${port}`, auth },
      { name: 'off', prefix: '/off', upstream: `http://localhost:${port}`, auth, outboundProxy: false },
      { name: 'own', prefix: '/own', upstream: `http://localhost:${port}`, auth, outboundProxy: { url: proxy.url, noProxy: '127.0.0.1' } },
    ];
    // HTTP_PROXY (upper case) names a dead proxy: the lower-case one must be used; the token endpoint is in no_proxy.
    const env = { HTTP_PROXY: deadProxy, http_proxy: proxy.url, NO_PROXY: 'localhost', no_proxy: `127.0.0.1` };
    const start = (await proxy.requests()).length;
    await withSidecar({ routes }, env, async (sidecar) => {
      for (const prefix of ['/env', '/off', '/own']) assert.equal((await call(`${sidecar.proxyUrl}${prefix}/x`)).status, 200, prefix);
      assert.deepEqual(
        (await asked(start)).map((r) => new URL(r.url).pathname + ' ' + new URL(r.url).host),
        ['/x localhost:' + port, '/x localhost:' + port],
        'from-env (lower-case http_proxy; no_proxy does not list localhost) and own went through the proxy, off did not',
      );
    });
    // A top-level outboundProxy replaces the environment for every route that does not set its own.
    const start2 = (await proxy.requests()).length;
    await withSidecar({ outboundProxy: { url: proxy.url, noProxy: '127.0.0.1' }, routes: routes.slice(0, 2) }, { HTTP_PROXY: deadProxy, NO_PROXY: '*' }, async (sidecar) => {
      for (const prefix of ['/env', '/off']) assert.equal((await call(`${sidecar.proxyUrl}${prefix}/x`)).status, 200, prefix);
      assert.equal((await asked(start2)).length, 1, 'the top-level proxy for from-env; none for off');
    });
  });

  test('outboundProxy.urlFile: the proxy URL, credentials included, from a file', async () => {
    const { tempFiles } = await import('../helpers/config.js');
    const file = tempFiles('bsc-proxy-url-').file('proxy-url', `${proxy.url}\n`);
    const port = Number(new URL(targets.upstream.url).port);
    const start = (await proxy.requests()).length;
    const route = { name: 'api', upstream: `http://${privateHost}:${port}`, outboundProxy: { urlFile: file, noProxy: '127.0.0.1' }, auth: { tokenUrl: targets.tokens.url, clientId: 'id', clientSecret: 'proxied-client-secret', retry } };
    await withSidecar({ routes: [route] }, {}, async (sidecar) => {
      assert.equal((await call(`${sidecar.proxyUrl}/x`)).status, 200);
      const seen = await asked(start);
      assert.equal(seen.length, 1);
      assert.ok(seen[0]?.authorized);
      const listening = sidecar.logs.find((line) => line.includes('"listening"')) ?? '';
      assert.match(listening, new RegExp(`"outboundProxy":"127\\.0\\.0\\.1:${proxy.port}"`), 'the log names the proxy by host:port');
    });
  });
});
