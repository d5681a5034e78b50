// An outbound proxy that refuses (407, 403), is down, closes the connection or never answers:
// callers get the usual JSON error naming the proxy by host:port (never its password) within the
// route's timeouts, /readyz and `check` say the same, and a 407 is not retried. Real forward
// proxy (the `proxy` package) in a process of its own; the broken ones are raw sockets.

import assert from 'node:assert/strict';
import { connect as connectTcp, type AddressInfo } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { audit, call } from '../helpers/audit.js';
import { opensslMissing } from '../helpers/certs.js';
import { tempFiles } from '../helpers/config.js';
import { privateHost, proxyPassword, proxyUser, startBrokenProxy, startForwardProxy, type ForwardProxy, type ProxyTargets, startProxyTargets } from '../helpers/forward-proxy.js';
import { ManualClock } from '../helpers/clock.js';
import { runToEnd } from '../helpers/process.js';
import { freePort } from '../helpers/servers.js';
import { eventually, startSidecar, type TestSidecar } from '../helpers/sidecar.js';
import { refusalOf } from '../helpers/websocket.js';

const retry = { retries: 3, minDelayMs: 10, maxDelayMs: 50, maxTimeMs: 5000 };

interface Failure {
  readonly status: number;
  readonly error: string;
  readonly message: string;
}

describe('an outbound proxy that fails', { skip: opensslMissing }, () => {
  let targets: ProxyTargets;
  let proxy: ForwardProxy;
  /** The same proxy, with a wrong password. */
  let wrongPassword: string;
  const cliOutputs: string[] = [];

  before(async () => {
    [targets, proxy] = await Promise.all([startProxyTargets(), startForwardProxy({ deny: [] })]);
    wrongPassword = proxy.url.replace(encodeURIComponent(proxyPassword), 'not-the-password');
  });
  after(async () => {
    await Promise.all([targets.close(), proxy.close()]);
    audit.assertNothingLeaked(cliOutputs);
  });

  /** A route to the TLS upstream at privateHost (CONNECT) with its token endpoint there too, through `proxyUrl`. */
  function httpsRoute(proxyUrl: string, extra: Record<string, unknown> = {}, auth: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      name: 'api',
      upstream: `https://${privateHost}:${targets.httpsPort}`,
      tls: { caFile: targets.caFile },
      websocket: true,
      outboundProxy: { url: proxyUrl },
      auth: { tokenUrl: `https://${privateHost}:${targets.httpsTokensPort}/oauth2/token`, clientId: 'id', clientSecret: 'failing-client-secret', retry, tls: { caFile: targets.caFile }, ...auth },
      ...extra,
    };
  }

  async function failure(sidecar: TestSidecar, path = '/x'): Promise<Failure & { elapsedMs: number }> {
    const started = Date.now();
    const response = await call(`${sidecar.proxyUrl}${path}`);
    const body = response.json<{ error: string; message: string }>();
    return { status: response.status, error: body.error, message: body.message, elapsedMs: Date.now() - started };
  }

  async function readyz(sidecar: TestSidecar): Promise<{ state: string; lastError?: string }> {
    const body = (await call(`${sidecar.adminUrl}/readyz`)).json<{ routes: { state: string; lastError?: string }[] }>();
    return body.routes[0] as { state: string; lastError?: string };
  }

  /** The token fetch fails; /readyz says why. */
  async function tokenFailure(sidecar: TestSidecar): Promise<string> {
    let lastError = '';
    await eventually(async () => {
      lastError = (await readyz(sidecar)).lastError ?? '';
      return lastError !== '';
    }, 10_000);
    return lastError;
  }

  const proxyName = () => `127.0.0.1:${proxy.port}`;

  /** TLS in front of the forward proxy, with a certificate for 127.0.0.1 from the targets' CA: an https:// proxy. */
  async function tlsFrontFor(port: number): Promise<{ port: number; connections(): number; close(): Promise<void> }> {
    const { key, cert } = targets.pki.serverFor(['IP:127.0.0.1']);
    let connections = 0;
    const sockets = new Set<import('node:net').Socket>();
    const server = createTlsServer({ key, cert }, (socket) => {
      connections += 1;
      const behind = connectTcp(port, '127.0.0.1');
      for (const s of [socket, behind]) {
        sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => sockets.delete(s));
      }
      socket.pipe(behind).pipe(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      port: (server.address() as AddressInfo).port,
      connections: () => connections,
      async close() {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => server.close(resolve));
      },
    };
  }

  test('407 (wrong password) to the token endpoint\'s CONNECT: not retried; /readyz and the callers\' 503 say why, naming the proxy', async () => {
    const start = (await proxy.requests()).length;
    const tokenConnects = async () => (await proxy.requests()).slice(start).filter((r) => r.url === `${privateHost}:${targets.httpsTokensPort}`);
    // The clock moves only by hand: the next fetch cycle (after the backoff) comes only when the test says so.
    const clock = new ManualClock();
    const sidecar = await startSidecar({ routes: [httpsRoute(wrongPassword)] }, { clock });
    try {
      const lastError = await tokenFailure(sidecar);
      assert.match(lastError, new RegExp(`the outbound proxy ${proxyName().replace(/\./g, '\\.')} refused the connection to ${privateHost}:${targets.httpsTokensPort}: 407 Proxy Authentication Required; check the user and password in the proxy URL; not retrying`));
      const refused = await failure(sidecar);
      assert.equal(refused.status, 503, 'no token: 503, with the reason');
      assert.equal(refused.error, 'token_unavailable');
      assert.match(refused.message, /407 Proxy Authentication Required/);
      const first = await tokenConnects();
      assert.equal(first.length, 1, 'one attempt: retries: 3 would have made four');
      assert.ok(first.every((r) => r.withAuthorization && !r.authorized));
      const attempts = sidecar.logs.filter((line) => line.includes('"token request failed"'));
      assert.equal(attempts.length, 1);
      assert.match(attempts[0] as string, /"attempt":1,.*"retriesLeft":0,.*"code":"BSC_OUTBOUND_PROXY_REFUSED"/);
      // After the backoff, one more fetch, again a single attempt.
      clock.advance(60_000);
      await eventually(async () => (await tokenConnects()).length === 2);
      await eventually(() => sidecar.logs.filter((line) => line.includes('"could not get a token"')).length === 2);
      assert.equal((await tokenConnects()).length, 2);
    } finally {
      await sidecar.close();
    }
  });

  test('407 while fetching the discovery document (auth.issuer): /readyz names the document and the proxy', async () => {
    const issuer = `https://${privateHost}:${targets.httpsTokensPort}`;
    const sidecar = await startSidecar({ routes: [httpsRoute(wrongPassword, {}, { tokenUrl: undefined, issuer })] }, { clock: new ManualClock() });
    try {
      assert.match(
        await tokenFailure(sidecar),
        new RegExp(`^discovery document ${issuer.replace(/\./g, '\\.')}/\\.well-known/openid-configuration unreachable: the outbound proxy ${proxyName().replace(/\./g, '\\.')} refused the connection to ${privateHost.replace(/\./g, '\\.')}:${targets.httpsTokensPort}: 407 Proxy Authentication Required`),
      );
    } finally {
      await sidecar.close();
    }
  });

  test('407 on the upstream tunnel, and on an absolute-form request: 502 outbound_proxy_refused naming host:port; a WebSocket dial too', async () => {
    const port = Number(new URL(targets.upstream.url).port);
    const routes = [
      // The token endpoint is reached directly; only the upstream goes through the proxy.
      { ...httpsRoute(wrongPassword), outboundProxy: { url: wrongPassword, noProxy: '127.0.0.1' }, auth: { tokenUrl: targets.tokens.url, clientId: 'id', clientSecret: 'failing-client-secret', retry } },
      { name: 'plain', prefix: '/plain', upstream: `http://${privateHost}:${port}`, outboundProxy: { url: wrongPassword, noProxy: '127.0.0.1' }, auth: { tokenUrl: targets.tokens.url, clientId: 'id', clientSecret: 'failing-client-secret', retry } },
      // No credentials at all: the message says to give some.
      { name: 'anonymous', prefix: '/anonymous', upstream: `http://${privateHost}:${port}`, outboundProxy: { url: proxy.origin, noProxy: '127.0.0.1' }, auth: { tokenUrl: targets.tokens.url, clientId: 'id', clientSecret: 'failing-client-secret', retry } },
    ];
    const sidecar = await startSidecar({ routes });
    try {
      for (const [path, target] of [['/x', `${privateHost}:${targets.httpsPort}`], ['/plain/x', `${privateHost}:${port}`]] as const) {
        const refused = await failure(sidecar, path);
        assert.equal(refused.status, 502, path);
        assert.equal(refused.error, 'outbound_proxy_refused', path);
        assert.match(refused.message, new RegExp(`^the outbound proxy 127\\.0\\.0\\.1:${proxy.port} refused the connection to ${target.replace(/\./g, '\\.')}: 407 Proxy Authentication Required; check the user and password in the proxy URL`));
      }
      const anonymous = await failure(sidecar, '/anonymous/x');
      assert.match(anonymous.message, /the proxy wants credentials: give them in the proxy URL/);
      const ws = await refusalOf(`${sidecar.proxyUrl.replace(/^http/, 'ws')}/ws`);
      assert.equal(ws.status, 502);
      assert.equal(JSON.parse(ws.body).error, 'outbound_proxy_refused');
      assert.ok(sidecar.logs.some((line) => line.includes('BSC_OUTBOUND_PROXY_REFUSED')), 'the failure is logged with its code');
    } finally {
      await sidecar.close();
    }
  });

  test('403 to CONNECT (the proxy does not allow the destination): 502 outbound_proxy_refused', async () => {
    const denying = await startForwardProxy({ deny: [`${privateHost}:${targets.httpsPort}`] });
    const route = { ...httpsRoute(denying.url), outboundProxy: { url: denying.url, noProxy: '127.0.0.1' }, auth: { tokenUrl: targets.tokens.url, clientId: 'id', clientSecret: 'failing-client-secret', retry } };
    const sidecar = await startSidecar({ routes: [route] });
    try {
      const refused = await failure(sidecar);
      assert.deepEqual([refused.status, refused.error], [502, 'outbound_proxy_refused']);
      assert.match(refused.message, new RegExp(`127\\.0\\.0\\.1:${denying.port} refused the connection to ${privateHost.replace(/\./g, '\\.')}:${targets.httpsPort}: 403 Forbidden; the proxy does not allow this destination`));
    } finally {
      await sidecar.close();
      await denying.close();
    }
  });

  test('a proxy that is down: 502 outbound_proxy_unreachable; /readyz names it', async () => {
    const down = `http://${proxyUser}:${encodeURIComponent(proxyPassword)}@127.0.0.1:${await freePort()}`;
    const sidecar = await startSidecar({ routes: [httpsRoute(down, {}, { retry: { retries: 0, minDelayMs: 10, maxDelayMs: 50, maxTimeMs: 2000 } })] });
    try {
      const name = new URL(down).host;
      assert.match(await tokenFailure(sidecar), new RegExp(`token endpoint unreachable: cannot connect to the outbound proxy ${name.replace(/\./g, '\\.')} \\(ECONNREFUSED\\)`));
    } finally {
      await sidecar.close();
    }
    // The upstream side on its own: the token endpoint reached directly.
    const direct = await startSidecar({ routes: [{ ...httpsRoute(down), outboundProxy: { url: down, noProxy: '127.0.0.1' }, auth: { tokenUrl: targets.tokens.url, clientId: 'id', clientSecret: 'failing-client-secret', retry } }] });
    try {
      const refused = await failure(direct);
      assert.deepEqual([refused.status, refused.error], [502, 'outbound_proxy_unreachable']);
      assert.match(refused.message, /^cannot connect to the outbound proxy 127\.0\.0\.1:\d+ \(ECONNREFUSED\) \(route "api"\)$/);
    } finally {
      await direct.close();
    }
  });

  test('a proxy that closes the connection: 502 at once, without a reconnect loop', async () => {
    const closing = await startBrokenProxy('close');
    const auth = { tokenUrl: targets.tokens.url, clientId: 'id', clientSecret: 'failing-client-secret', retry };
    const port = Number(new URL(targets.upstream.url).port);
    const routes = [
      { ...httpsRoute(closing.origin), outboundProxy: { url: closing.origin, noProxy: '127.0.0.1' }, auth },
      { name: 'plain', prefix: '/plain', upstream: `http://${privateHost}:${port}`, outboundProxy: { url: closing.origin, noProxy: '127.0.0.1' }, auth },
    ];
    const sidecar = await startSidecar({ routes });
    try {
      const closed = await failure(sidecar);
      assert.deepEqual([closed.status, closed.error], [502, 'outbound_proxy_unreachable']);
      assert.match(closed.message, new RegExp(`^the outbound proxy ${new URL(closing.origin).host.replace(/\./g, '\\.')} closed the connection before answering \\(on the way to ${privateHost.replace(/\./g, '\\.')}:${targets.httpsPort}\\)`));
      const plain = await failure(sidecar, '/plain/x');
      assert.equal(plain.status, 502, 'absolute form: the proxy closed mid-request');
      assert.ok(closing.connections <= 4, `${closing.connections} connections to the proxy for two requests`);
    } finally {
      await sidecar.close();
      await closing.close();
    }
  });

  test('a proxy that never answers: 504 within connectTimeoutMs (upstream) and a token error naming it within auth.timeoutMs', async () => {
    const hanging = await startBrokenProxy('hang');
    const name = new URL(hanging.origin).host;
    const sidecar = await startSidecar({
      routes: [
        httpsRoute(hanging.origin, { connectTimeoutMs: 300 }, { timeoutMs: 400, retry: { retries: 0, minDelayMs: 10, maxDelayMs: 50, maxTimeMs: 2000 } }),
        { ...httpsRoute(hanging.origin, { connectTimeoutMs: 300 }), name: 'direct-token', prefix: '/direct-token', outboundProxy: { url: hanging.origin, noProxy: '127.0.0.1' }, auth: { tokenUrl: targets.tokens.url, clientId: 'id', clientSecret: 'failing-client-secret', retry } },
      ],
    });
    try {
      // Whichever bound fires first (the tunnel's or the whole request's, both 400 ms), the proxy is named.
      assert.match(await tokenFailure(sidecar), new RegExp(`(the outbound proxy ${name.replace(/\./g, '\\.')} did not answer within 400 ms|token endpoint did not answer within 400 ms through the outbound proxy ${name.replace(/\./g, '\\.')})`));
      const timedOut = await failure(sidecar, '/direct-token/x');
      assert.deepEqual([timedOut.status, timedOut.error], [504, 'outbound_proxy_timeout']);
      assert.match(timedOut.message, new RegExp(`^the outbound proxy ${name.replace(/\./g, '\\.')} did not answer within 300 ms \\(on the way to ${privateHost.replace(/\./g, '\\.')}:${targets.httpsPort}\\)`));
      assert.ok(timedOut.elapsedMs < 5000, `answered after ${timedOut.elapsedMs} ms`);
      const ws = await refusalOf(`${sidecar.proxyUrl.replace(/^http/, 'ws')}/direct-token/ws`);
      assert.equal(ws.status, 504);
      assert.equal(JSON.parse(ws.body).error, 'outbound_proxy_timeout');
    } finally {
      await sidecar.close();
      await hanging.close();
    }
  });

  test('`bearer-sidecar check` prints the same reasons, and names the proxy when it works', async () => {
    const files = tempFiles('bsc-proxy-check-');
    const config = (auth: Record<string, unknown> = {}) =>
      files.file(
        `config-${Math.random().toString(36).slice(2)}.yaml`,
        JSON.stringify({ routes: [{ name: 'api', upstream: `https://${privateHost}:${targets.httpsPort}`, auth: { tokenUrl: `https://${privateHost}:${targets.httpsTokensPort}/oauth2/token`, clientId: 'id', clientSecret: 'failing-client-secret', tls: { caFile: targets.caFile }, ...auth } }] }),
      );
    // The environment's proxy, as a user would set it.
    const ok = await runToEnd(['check', '--config', config()], { HTTPS_PROXY: proxy.url });
    cliOutputs.push(ok.output);
    assert.equal(ok.code, 0, ok.output);
    assert.match(ok.output, new RegExp(`^ok {6}api: token valid for \\d+ s .* through the outbound proxy 127\\.0\\.0\\.1:${proxy.port}$`, 'm'));
    const refused = await runToEnd(['check', '--config', config()], { https_proxy: wrongPassword, HTTPS_PROXY: proxy.url });
    cliOutputs.push(refused.output);
    assert.equal(refused.code, 1, refused.output);
    assert.match(refused.output, new RegExp(`^FAILED {2}api: token endpoint unreachable: the outbound proxy 127\\.0\\.0\\.1:${proxy.port} refused the connection to ${privateHost.replace(/\./g, '\\.')}:${targets.httpsTokensPort}: 407 Proxy Authentication Required; check the user and password in the proxy URL; not retrying \\(BSC_OUTBOUND_PROXY_REFUSED\\)$`, 'm'));
    // An https:// proxy: TLS to the proxy (its CA from NODE_EXTRA_CA_CERTS), and TLS to the target inside that.
    const tlsFront = await tlsFrontFor(proxy.port);
    try {
      const tlsProxy = `https://${proxyUser}:${encodeURIComponent(proxyPassword)}@127.0.0.1:${tlsFront.port}`;
      // CONNECT to an https:// token endpoint, then absolute form to an http:// one.
      const httpTokenUrl = `http://${privateHost}:${new URL(targets.tokens.url).port}/oauth2/token`;
      for (const [env, auth] of [[{ HTTPS_PROXY: tlsProxy }, {}], [{ HTTP_PROXY: tlsProxy }, { tokenUrl: httpTokenUrl, allowInsecureTokenUrl: true }]] as const) {
        const overTls = await runToEnd(['check', '--config', config(auth)], { ...env, NODE_EXTRA_CA_CERTS: targets.caFile });
        cliOutputs.push(overTls.output);
        assert.equal(overTls.code, 0, overTls.output);
        assert.match(overTls.output, new RegExp(`^ok {6}api: .* through the outbound proxy 127\\.0\\.0\\.1:${tlsFront.port}$`, 'm'));
      }
      assert.equal(tlsFront.connections(), 2);
    } finally {
      await tlsFront.close();
    }
    const bad = await runToEnd(['check', '--config', config()], { HTTPS_PROXY: `socks5://${proxyUser}:${encodeURIComponent(proxyPassword)}@127.0.0.1:1080` });
    cliOutputs.push(bad.output);
    assert.equal(bad.code, 2, bad.output);
    assert.match(bad.output, /HTTPS_PROXY: must be an http:\/\/ or https:\/\/ proxy URL \(socks5 proxies are not supported\)/);
  });
});
