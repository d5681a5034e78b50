import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { startTokenServer, type TokenServer } from '../../src/demo/token-server.js';
import { createMetrics } from '../../src/metrics.js';
import type { TokenStatus } from '../../src/token/token-source.js';
import { freePort, signingKey } from '../helpers/servers.js';
import { eventually, startSidecar, type TestSidecar } from '../helpers/sidecar.js';

const secret = 'metrics-secret-4b2a';

async function metricsText(sidecar: TestSidecar): Promise<string> {
  const response = await fetch(`${sidecar.adminUrl}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /text\/plain/);
  return response.text();
}

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : NaN;
}

describe('metrics, request ids and the log level', () => {
  let tokens: TokenServer;
  let upstream: EchoUpstream;
  let sidecar: TestSidecar;
  before(async () => {
    tokens = await startTokenServer({ clients: [{ id: 'm', secret }], signingKey, expiresInSeconds: 3600 });
    upstream = await startEchoUpstream({ signingKey });
    const deadPort = await freePort();
    sidecar = await startSidecar(
      {
        routes: [
          { name: 'echo', prefix: '/', upstream: upstream.url, auth: { tokenUrl: tokens.url, clientId: 'm', clientSecret: secret } },
          { name: 'dead', prefix: '/dead', upstream: `http://127.0.0.1:${deadPort}`, auth: { tokenUrl: tokens.url, clientId: 'm', clientSecret: secret } },
        ],
      },
      { logLevel: 'info' },
    );
  });
  after(async () => {
    await sidecar.close();
    await Promise.all([tokens.close(), upstream.close()]);
  });

  test('requests, durations, upstream errors, token fetches, expiry and in-flight, with bounded labels', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await fetch(`${sidecar.proxyUrl}/users/${1000 + i}/orders?x=${i}`)).status, 200);
    assert.equal((await fetch(`${sidecar.proxyUrl}/users/1`, { method: 'POST', body: 'x' })).status, 200);
    assert.equal((await fetch(`${sidecar.proxyUrl}/users/1`, { method: 'PROPFIND' })).status, 404);
    assert.equal((await fetch(`${sidecar.proxyUrl}/dead/x`)).status, 502);
    const text = await metricsText(sidecar);
    assert.equal(value(text, 'bearer_sidecar_requests_total{route="echo",method="GET",status_class="2xx"}'), 3);
    assert.equal(value(text, 'bearer_sidecar_requests_total{route="echo",method="POST",status_class="2xx"}'), 1);
    assert.equal(value(text, 'bearer_sidecar_requests_total{route="dead",method="GET",status_class="5xx"}'), 1);
    assert.equal(value(text, 'bearer_sidecar_upstream_errors_total{route="dead",kind="connect"}'), 1);
    assert.equal(value(text, 'bearer_sidecar_token_fetches_total{route="echo",outcome="success"}'), 1);
    assert.ok(value(text, 'bearer_sidecar_token_expiry_seconds{route="echo"}') > 3500);
    assert.equal(value(text, 'bearer_sidecar_requests_in_flight'), 0);
    assert.equal(value(text, 'bearer_sidecar_request_duration_seconds_count{route="echo"}'), 4);
    assert.match(text, /bearer_sidecar_process_resident_memory_bytes \d+/);
    // Bounded labels: no path, id or query string; no secret; no token.
    assert.doesNotMatch(text, /users|\b1000\b|orders|x=/); // \b: a heap size such as 1591000 is no label
    assert.doesNotMatch(text, new RegExp(secret));
    assert.doesNotMatch(text, /ey[A-Za-z0-9_-]{10,}\./);
  });

  test('a caller that goes away mid-download is counted as aborted and leaves nothing in flight', async () => {
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${sidecar.proxyUrl}/bytes/50000000`, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => {});
      req.on('close', resolve);
      req.end();
      setTimeout(() => reject(new Error('no data')), 5000).unref();
    });
    await eventually(async () => value(await metricsText(sidecar), 'bearer_sidecar_requests_total{route="echo",method="GET",status_class="aborted"}') === 1);
    assert.equal(value(await metricsText(sidecar), 'bearer_sidecar_requests_in_flight'), 0);
    await eventually(() => sidecar.logs.some((l) => l.includes('"aborted":true') && l.includes('/bytes/50000000')));
  });

  test("the caller's X-Request-Id is forwarded upstream, returned, logged and put in error bodies", async () => {
    const response = await fetch(`${sidecar.proxyUrl}/traced`, { headers: { 'x-request-id': 'trace-abc-123' } });
    const echo = (await response.json()) as { headers: Record<string, string> };
    assert.equal(echo.headers['x-request-id'], 'trace-abc-123');
    assert.equal(response.headers.get('x-request-id'), 'trace-abc-123');
    await eventually(() => sidecar.logs.some((l) => l.includes('"path":"/traced"')));
    const line = JSON.parse(sidecar.logs.find((l) => l.includes('"path":"/traced"')) as string) as { requestId: string };
    assert.equal(line.requestId, 'trace-abc-123');

    const failed = await fetch(`${sidecar.proxyUrl}/dead/y`, { headers: { 'x-request-id': 'trace-err-9' } });
    assert.equal(((await failed.json()) as { requestId: string }).requestId, 'trace-err-9');
    assert.equal(failed.headers.get('x-request-id'), 'trace-err-9');
  });

  test('without a usable X-Request-Id one is made (a UUID) and forwarded', async () => {
    for (const headers of [{}, { 'x-request-id': 'has spaces and "quotes"' }, { 'x-request-id': 'x'.repeat(200) }] as Record<string, string>[]) {
      const response = await fetch(`${sidecar.proxyUrl}/anon`, { headers });
      const id = response.headers.get('x-request-id') ?? '';
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      assert.equal(((await response.json()) as { headers: Record<string, string> }).headers['x-request-id'], id);
    }
  });

  test('the log level can be read and changed at runtime from loopback', async () => {
    assert.deepEqual(await (await fetch(`${sidecar.adminUrl}/loglevel`)).json(), { level: 'info' });
    const before = sidecar.logs.length;
    const set = await fetch(`${sidecar.adminUrl}/loglevel`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ level: 'debug' }) });
    assert.deepEqual([set.status, await set.json()], [200, { level: 'debug' }]);
    assert.equal(sidecar.sidecar.logger.level, 'debug');
    assert.ok(sidecar.logs.slice(before).some((l) => l.includes('log level changed')));
    const bad = await fetch(`${sidecar.adminUrl}/loglevel`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ level: 'loud' }) });
    assert.equal(bad.status, 400);
    await fetch(`${sidecar.adminUrl}/loglevel`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ level: 'info' }) });
  });
});

describe('request counts and durations, kept as plain numbers and exposed at scrape time', () => {
  const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
  /** The blocks (HELP, TYPE and series) of the given metrics in a /metrics text. */
  function blocks(text: string, ...names: string[]): string {
    return text.trimEnd().split('\n\n').filter((block) => names.some((name) => block.startsWith(`# HELP ${name} `))).join('\n\n');
  }

  test('buckets are cumulative, a duration on a bound counts in that bucket, +Inf and _count are all, _sum is in seconds', async () => {
    const metrics = createMetrics(() => []);
    const durationsMs = [0.5, 1, 3, 30_000, 61_000, 120];
    for (const ms of durationsMs) {
      metrics.requestStarted();
      metrics.requestFinished('r', 'GET', 200, ms);
    }
    metrics.requestStarted();
    const text = await metrics.registry.metrics();
    const bucket = (le: string) => value(text, `bearer_sidecar_request_duration_seconds_bucket{le="${le}",route="r"}`);
    assert.deepEqual(
      buckets.map((le) => bucket(String(le))),
      [1, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 5, 5],
    );
    assert.equal(bucket('+Inf'), 6);
    assert.equal(value(text, 'bearer_sidecar_request_duration_seconds_count{route="r"}'), 6);
    assert.equal(value(text, 'bearer_sidecar_request_duration_seconds_sum{route="r"}'), durationsMs.reduce((sum, ms) => sum + ms / 1000, 0));
    assert.equal(value(text, 'bearer_sidecar_requests_in_flight'), 1);
  });

  test("the /metrics text is byte for byte what prom-client's own Counter and Histogram print for the same requests", async () => {
    const metrics = createMetrics(() => []);
    const reference = new Registry();
    const requests = new Counter({ name: 'bearer_sidecar_requests_total', help: 'Proxied requests by route, method class and status class.', labelNames: ['route', 'method', 'status_class'], registers: [reference] });
    const duration = new Histogram({ name: 'bearer_sidecar_request_duration_seconds', help: 'Time from request received to response sent, by route.', labelNames: ['route'], buckets, registers: [reference] });
    const calls: [string, string, number | undefined, number][] = [
      ['echo', 'GET', 200, 0.37],
      ['dead', 'POST', 502, 2.5],
      ['echo', 'GET', 204, 1000],
      ['echo', 'PROPFIND', 404, 7.25],
      ['none', 'MKCOL', undefined, 45_000],
      ['echo', 'GET', undefined, 12.5],
      ['dead', 'DELETE', 101, 0],
      ['echo', 'HEAD', 304, 250.01],
      ['dead', 'POST', 503, 30_000],
    ];
    for (const [route, method, status, ms] of [...calls, ...calls.slice(2)]) {
      metrics.requestStarted();
      metrics.requestFinished(route, method, status, ms);
      const methodClass = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'].includes(method) ? method : 'OTHER';
      requests.inc({ route, method: methodClass, status_class: status === undefined ? 'aborted' : `${Math.floor(status / 100)}xx` });
      duration.observe({ route }, ms / 1000);
    }
    const names = ['bearer_sidecar_requests_total', 'bearer_sidecar_request_duration_seconds'];
    const expected = blocks(await reference.metrics(), ...names);
    assert.equal(blocks(await metrics.registry.metrics(), ...names), expected);
    assert.match(expected, /status_class="aborted"/);
    assert.match(expected, /method="OTHER"/);
    // And a second scrape, after more requests, still agrees.
    metrics.requestFinished('echo', 'GET', 200, 4);
    requests.inc({ route: 'echo', method: 'GET', status_class: '2xx' });
    duration.observe({ route: 'echo' }, 0.004);
    assert.equal(blocks(await metrics.registry.metrics(), ...names), blocks(await reference.metrics(), ...names));
  });
});

describe('the metrics alerts read', () => {
  test('token fetches: both outcomes of every route in force from the start; a failing route shows its code until a fetch succeeds', async () => {
    let statuses: TokenStatus[] = [{ name: 'a', state: 'starting' }, { name: 'b', state: 'starting' }];
    const metrics = createMetrics(() => statuses);
    let text = await metrics.registry.metrics();
    for (const route of ['a', 'b']) for (const outcome of ['success', 'failure']) assert.equal(value(text, `bearer_sidecar_token_fetches_total{route="${route}",outcome="${outcome}"}`), 0);
    assert.doesNotMatch(text, /^bearer_sidecar_token_fetch_failing\{/m);

    metrics.tokenFetch('a', 'failure');
    statuses = [
      { name: 'a', state: 'unavailable', lastError: 'token endpoint answered 401 invalid_client', lastErrorCode: 'BSC_TOKEN_REJECTED' },
      { name: 'b', state: 'ready', expiresInSeconds: 60 },
    ];
    text = await metrics.registry.metrics();
    assert.equal(value(text, 'bearer_sidecar_token_fetches_total{route="a",outcome="failure"}'), 1);
    assert.equal(value(text, 'bearer_sidecar_token_fetch_failing{route="a",code="BSC_TOKEN_REJECTED"}'), 1);
    assert.equal(value(text, 'bearer_sidecar_token_expiry_seconds{route="a"}'), 0);
    assert.equal(value(text, 'bearer_sidecar_token_expiry_seconds{route="b"}'), 60);
    assert.doesNotMatch(text, /bearer_sidecar_token_fetch_failing\{route="b"/);
    assert.doesNotMatch(text, /answered 401/, 'the reason is in /readyz and the logs, not in a label');

    statuses = [{ name: 'a', state: 'ready', expiresInSeconds: 3000 }];
    text = await metrics.registry.metrics();
    assert.doesNotMatch(text, /^bearer_sidecar_token_fetch_failing\{/m, 'a success clears it');
    assert.doesNotMatch(text, /bearer_sidecar_token_expiry_seconds\{route="b"/, 'a route no longer in force leaves the gauges');
  });

  test('config_last_reload_successful: 1 from the start, 0 after a refused reload, 1 again after one that loaded', async () => {
    const metrics = createMetrics(() => []);
    const last = async () => value(await metrics.registry.metrics(), 'bearer_sidecar_config_last_reload_successful');
    assert.equal(await last(), 1);
    metrics.configReload('failure');
    assert.equal(await last(), 0);
    metrics.configReload('unchanged');
    assert.equal(await last(), 1);
    metrics.configReload('failure');
    metrics.configReload('success');
    assert.equal(await last(), 1);
  });

  test("prom-client's gauges named _total are left out (promtool check metrics rejects them); the gauges they sum stay", async () => {
    const text = await createMetrics(() => []).registry.metrics();
    assert.doesNotMatch(text, /bearer_sidecar_nodejs_active_(handles|requests|resources)_total/);
    assert.match(text, /^# TYPE bearer_sidecar_nodejs_active_handles gauge$/m);
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      if (name?.endsWith('_total')) assert.equal(type, 'counter', name);
    }
  });
});

test('SIGUSR2 cycles the log level of a running sidecar: info → debug → trace → info', async () => {
  const { run } = await import('../helpers/process.js');
  const tokens = await startTokenServer({ clients: [{ id: 'm', secret }], signingKey });
  const sidecar = run([], {
    BEARER_SIDECAR_TOKEN_URL: tokens.url,
    BEARER_SIDECAR_UPSTREAM: 'http://127.0.0.1:1',
    BEARER_SIDECAR_CLIENT_ID: 'm',
    BEARER_SIDECAR_CLIENT_SECRET: secret,
    BEARER_SIDECAR_PORT: String(await freePort()),
    BEARER_SIDECAR_ADMIN_PORT: String(await freePort()),
  });
  try {
    await sidecar.waitFor(/"msg":"listening"/);
    for (const to of ['debug', 'trace', 'info']) {
      sidecar.child.kill('SIGUSR2');
      await sidecar.waitFor(new RegExp(`"to":"${to}","msg":"log level changed"`));
    }
  } finally {
    sidecar.child.kill('SIGKILL');
    await tokens.close();
  }
});
