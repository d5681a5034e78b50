// The in-process library and HTTPS_PROXY / NO_PROXY: createTokenSource and the Fastify plugin go
// through the outbound proxy the environment names, as the sidecar does (the test's private host
// name resolves only inside the proxy, so a request that arrives proves it went through), skip it
// for NO_PROXY's hosts, and take the same opt-out (`outboundProxy: false`) and the same explicit form.

import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import { bearerProxy } from '../../src/fastify/index.js';
import { createTokenSource } from '../../src/index.js';
import { audit, call } from '../helpers/audit.js';
import { privateHost, startForwardProxy, startProxyTargets, type ForwardProxy, type ProxyTargets } from '../helpers/forward-proxy.js';
import { echo, openSocket } from '../helpers/websocket.js';

const retry = { retries: 0, minDelayMs: 10, maxDelayMs: 10, maxTimeMs: 2000 };

describe('the in-process library and outbound proxies', () => {
  let targets: ProxyTargets;
  let proxy: ForwardProxy;
  const saved = { ...process.env };

  before(async () => {
    [targets, proxy] = await Promise.all([startProxyTargets(), startForwardProxy()]);
  });
  after(async () => {
    restoreEnvironment();
    await Promise.all([targets.close(), proxy.close()]);
    audit.assertNothingLeaked();
  });

  function setEnvironment(values: Record<string, string>): void {
    restoreEnvironment();
    Object.assign(process.env, values);
  }
  function restoreEnvironment(): void {
    for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy']) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  }
  const connectsTo = async (start: number, port: number) => (await proxy.requests()).slice(start).filter((r) => r.method === 'CONNECT' && r.url === `${privateHost}:${port}`).length;
  const auth = () => ({ tokenUrl: `https://${privateHost}:${targets.httpsTokensPort}/oauth2/token`, clientId: 'id', clientSecret: 'library-proxy-secret', retry, tokenWaitMs: 3000, tls: { caFile: targets.caFile } });

  test('createTokenSource: HTTPS_PROXY carries the token request; NO_PROXY and outboundProxy: false go direct; an explicit outboundProxy wins', async () => {
    audit.addSecret('library-proxy-secret');
    setEnvironment({ HTTPS_PROXY: proxy.url });
    const start = (await proxy.requests()).length;
    const viaEnvironment = createTokenSource(auth());
    try {
      assert.equal(await viaEnvironment.getToken(), targets.tokens.issued.at(-1));
      assert.equal(await connectsTo(start, targets.httpsTokensPort), 1);
    } finally {
      await viaEnvironment.close();
    }
    // Direct, the private name does not resolve: the request fails, and the proxy was not asked.
    for (const [why, env, options] of [
      ['NO_PROXY', { HTTPS_PROXY: proxy.url, NO_PROXY: `.internal.test` }, {}],
      ['outboundProxy: false', { HTTPS_PROXY: proxy.url }, { outboundProxy: false as const }],
    ] as const) {
      setEnvironment(env);
      const before = (await proxy.requests()).length;
      const direct = createTokenSource(auth(), options);
      try {
        await assert.rejects(direct.getToken(), (err: unknown) => (err as { code?: string }).code === 'BSC_TOKEN_UNAVAILABLE', why);
        assert.equal(await connectsTo(before, targets.httpsTokensPort), 0, `${why}: not through the proxy`);
      } finally {
        await direct.close();
      }
    }
    // No variable, the proxy named in code.
    restoreEnvironment();
    const before = (await proxy.requests()).length;
    const explicit = createTokenSource(auth(), { outboundProxy: { url: proxy.url } });
    try {
      await explicit.getToken();
      assert.equal(await connectsTo(before, targets.httpsTokensPort), 1);
    } finally {
      await explicit.close();
    }
  });

  test('createTokenSource: a bad HTTPS_PROXY or outboundProxy is a ConfigError naming it', () => {
    setEnvironment({ HTTPS_PROXY: 'socks5://127.0.0.1:1080' });
    assert.throws(() => createTokenSource(auth()), (err: unknown) => (err as { code?: string }).code === 'BSC_CONFIG_INVALID' && /HTTPS_PROXY: /.test((err as Error).message));
    restoreEnvironment();
    assert.throws(() => createTokenSource(auth(), { outboundProxy: { noProxy: 'x' } as never }), /outboundProxy\.url: set url or urlFile/);
  });

  test('the Fastify plugin: token requests, upstream requests and WebSocket dials through HTTPS_PROXY; outboundProxy: false opts out', async () => {
    setEnvironment({ HTTPS_PROXY: proxy.url });
    const start = (await proxy.requests()).length;
    const app = Fastify();
    await app.register(bearerProxy, { prefix: '/api', upstream: `https://${privateHost}:${targets.httpsPort}/v1`, websocket: true, tls: { caFile: targets.caFile }, auth: auth() });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/api`;
    try {
      const answer = await call(`${base}/things`);
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.json<{ path: string }>().path, '/v1/things');
      assert.equal(await connectsTo(start, targets.httpsTokensPort), 1, 'the token request');
      assert.ok((await connectsTo(start, targets.httpsPort)) >= 1, 'the upstream request');
      const before = await connectsTo(start, targets.httpsPort);
      const socket = await openSocket(`${base.replace(/^http/, 'ws')}/stream`);
      try {
        assert.equal((await echo(socket, 'through the tunnel')).data.toString(), 'through the tunnel');
      } finally {
        socket.close();
      }
      assert.equal(await connectsTo(start, targets.httpsPort), before + 1, 'the WebSocket dial');
    } finally {
      await app.close();
    }

    const direct = Fastify();
    await direct.register(bearerProxy, { prefix: '/api', upstream: `https://${privateHost}:${targets.httpsPort}`, tls: { caFile: targets.caFile }, auth: auth(), outboundProxy: false });
    await direct.listen({ host: '127.0.0.1', port: 0 });
    const before = (await proxy.requests()).length;
    try {
      const answer = await call(`http://127.0.0.1:${(direct.server.address() as AddressInfo).port}/api/things`);
      assert.equal(answer.status, 503, 'no token: the private name does not resolve without the proxy');
      assert.equal((await proxy.requests()).length, before);
    } finally {
      await direct.close();
      restoreEnvironment();
    }
  });
});
