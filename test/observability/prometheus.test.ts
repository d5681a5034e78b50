// A real Prometheus (the Debian package's binary) scrapes two real sidecars with the shipped rule
// file loaded: one process that has served requests, replayed a 401, failed upstream, been refused
// a token (invalid_client) and a reload; and a `workers: 2` tree. Then: promtool check metrics is
// clean on both scrapes; both targets are up; every rule evaluates with health ok; the alerts that
// should be pending for that sidecar are; and every query of the dashboard and of the rules parses
// (Prometheus's query API, Grafana's variables filled in) and reads only metrics the sidecars export.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { signJwt } from '../../src/demo/jwt-hs256.js';
import { cacheMetrics } from '../../src/token/shared-cache/metrics.js';
import { root } from '../deploy/files.js';
import { tempFiles } from '../helpers/config.js';
import { freePort, signingKey, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';
import { startSidecar, type TestSidecar } from '../helpers/sidecar.js';
import { skipUnlessTools } from '../helpers/system-tools.js';
import { startTree, type Tree } from '../workers/rig.js';
import { dashboardQueries, metricNames, ruleGroups, ruleQueries, rulesFile } from './queries.js';

/**
 * The shared token cache's metrics, read by the rules and the dashboard: exported only by a sidecar
 * with a `tokenCache` (test/token/shared-cache*.test.ts scrape them from sidecars on a real
 * redis-server). Here their names come from the cache's own registrations, so a query that names
 * a cache metric the sidecar does not register still fails; their panels are not asked for data.
 */
const cacheRegistry = new Registry();
cacheMetrics(cacheRegistry);
const exportedWithATokenCache = new Set(cacheRegistry.getMetricsAsArray().map((metric) => metric.name));

const skip = skipUnlessTools('prometheus', 'promtool');
const secret = 'prometheus-test-secret-7d1e';

/** Polls `check` until it returns a value (not undefined); fails after `timeoutMs` naming `what`. */
async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

interface ApiAnswer<T> {
  status: 'success' | 'error';
  data: T;
  errorType?: string;
  error?: string;
}

describe('a real Prometheus scraping real sidecars, with the shipped rules', { skip }, () => {
  const files = tempFiles('bsc-prometheus-');
  let tokens: ScriptedTokenServer;
  let upstream: EchoUpstream;
  let sidecar: TestSidecar;
  let tree: Tree;
  let prometheus: ChildProcess | undefined;
  let prometheusLog = '';
  let prometheusUrl = '';
  const revoked = new Set<string>();

  async function api<T>(path: string): Promise<ApiAnswer<T>> {
    const response = await fetch(`${prometheusUrl}${path}`);
    return (await response.json()) as ApiAnswer<T>;
  }

  before(async () => {
    // Tokens for every client but "rejected", which gets invalid_client; each token unique.
    tokens = await startScriptedTokenServer((request) => {
      const basic = Buffer.from(String(request.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString();
      if (basic.startsWith('rejected:')) return { status: 401, body: { error: 'invalid_client', error_description: 'unknown client' } };
      const now = Math.floor(Date.now() / 1000);
      return { status: 200, body: { access_token: signJwt({ sub: 'c', iat: now, exp: now + 3600, jti: randomUUID() }, signingKey), token_type: 'Bearer', expires_in: 3600 } };
    });
    upstream = await startEchoUpstream({ signingKey, isRevoked: (token) => revoked.has(token) });
    const deadPort = await freePort();
    const auth = (clientId: string) => ({ tokenUrl: tokens.url, clientId, clientSecret: secret, retry: { retries: 0, minDelayMs: 10, maxDelayMs: 50, maxTimeMs: 1000 } });
    const routes = [
      { name: 'api', prefix: '/', upstream: upstream.url, auth: auth('api') },
      { name: 'dead', prefix: '/dead', upstream: `http://127.0.0.1:${deadPort}`, auth: auth('api') },
      { name: 'rejected', prefix: '/rejected', upstream: upstream.url, auth: auth('rejected') },
    ];
    sidecar = await startSidecar({ routes }, { logLevel: 'warn' });
    const proxy = sidecar.proxyUrl;
    for (let i = 0; i < 5; i++) assert.equal((await fetch(`${proxy}/ok/${i}`)).status, 200);
    revoked.add(tokens.issued[0] as string);
    assert.equal((await fetch(`${proxy}/replayed`)).status, 200, 'a 401 replayed with a new token');
    assert.equal((await fetch(`${proxy}/dead/x`)).status, 502);
    assert.equal((await fetch(`${proxy}/rejected/x`)).status, 503);
    assert.equal((await sidecar.reload({ routes, listen: { port: 'not a port' } })).outcome, 'failure');

    tree = await startTree({ upstream: upstream.url, tokenUrl: tokens.url });
    for (let i = 0; i < 4; i++) assert.equal((await fetch(`http://127.0.0.1:${tree.proxyPort}/w/${i}`)).status, 200);

    const port = await freePort();
    prometheusUrl = `http://127.0.0.1:${port}`;
    const target = (url: string) => url.replace(/^http:\/\//, '');
    const config = files.file(
      'prometheus.yml',
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 1s }',
        `rule_files: [${JSON.stringify(join(root, rulesFile))}]`,
        'scrape_configs:',
        `  - { job_name: sidecar, static_configs: [{ targets: [${JSON.stringify(target(sidecar.adminUrl))}] }] }`,
        // The primary waits up to 2 s for its workers' answers (workers/metrics.ts): room for that under load.
        `  - { job_name: workers, scrape_interval: 3s, scrape_timeout: 3s, static_configs: [{ targets: [${JSON.stringify(target(tree.adminUrl))}] }] }`,
        '',
      ].join('\n'),
    );
    prometheus = spawn('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(files.dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    prometheus.stdout?.on('data', (d: Buffer) => (prometheusLog += d.toString()));
    prometheus.stderr?.on('data', (d: Buffer) => (prometheusLog += d.toString()));
    const started = Date.now();
    await until('Prometheus to be ready', async () => {
      if (prometheus?.exitCode !== null) throw new Error(`prometheus exited: ${prometheusLog}`);
      return (await fetch(`${prometheusUrl}/-/ready`)).ok || undefined;
    });
    process.stdout.write(`# prometheus ready in ${Date.now() - started} ms\n`);
    // Three scrapes of each target at least: rate() has two samples in every window.
    await until('three scrapes of each target', async () => {
      const { data } = await api<{ result: unknown[] }>(`/api/v1/query?query=${encodeURIComponent('count_over_time(up[1m]) >= 3')}`);
      return data.result.length === 2 || undefined;
    });
  });

  after(async () => {
    if (prometheus && prometheus.exitCode === null) {
      const exited = new Promise((resolve) => prometheus?.once('exit', resolve));
      prometheus.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      if (prometheus.exitCode === null) prometheus.kill('SIGKILL');
    }
    await Promise.all([sidecar?.close(), tree?.stop()]);
    await Promise.all([tokens?.close(), upstream?.close()]);
    rmSync(files.dir, { recursive: true, force: true });
  });

  test('promtool check metrics finds nothing to say about either scrape', async () => {
    for (const url of [sidecar.adminUrl, tree.adminUrl]) {
      const text = await (await fetch(`${url}/metrics`)).text();
      const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
      assert.equal(`${result.stdout}${result.stderr}`, '', `promtool check metrics on ${url}/metrics`);
      assert.equal(result.status, 0);
    }
  });

  test('both targets are up, and every rule of every group evaluates with health ok', async () => {
    type Target = { labels: { job: string }; health: string; lastError: string };
    // Up at their last scrape (a scrape that a loaded machine made late is tried again at the next one).
    const targets = await until('both targets up', async () => {
      const { data } = await api<{ activeTargets: Target[] }>('/api/v1/targets');
      return data.activeTargets.length === 2 && data.activeTargets.every((t) => t.health === 'up') ? data.activeTargets : undefined;
    });
    assert.deepEqual(targets.map((t) => [t.labels.job, t.health, t.lastError]).sort(), [['sidecar', 'up', ''], ['workers', 'up', '']]);

    type Group = { name: string; lastEvaluation: string; rules: { name: string; health: string; lastError?: string }[] };
    const groups = await until('every rule evaluated', async () => {
      const { data } = await api<{ groups: Group[] }>('/api/v1/rules');
      const evaluated = data.groups.every((g) => !g.lastEvaluation.startsWith('0001') && g.rules.every((r) => r.health !== 'unknown'));
      return evaluated ? data.groups : undefined;
    });
    assert.deepEqual(
      groups.map((g) => g.name),
      ruleGroups().map((g) => g.name),
    );
    const rules = groups.flatMap((g) => g.rules);
    assert.equal(rules.length, ruleQueries().length);
    for (const rule of rules) assert.deepEqual([rule.name, rule.health, rule.lastError ?? ''], [rule.name, 'ok', '']);
  });

  test('the alerts this sidecar should raise are pending: no token and credentials rejected for route "rejected", the refused reload', async () => {
    const wanted = [
      ['BearerSidecarCredentialsRejected', 'sidecar', 'rejected'],
      ['BearerSidecarRouteWithoutToken', 'sidecar', 'rejected'],
      ['BearerSidecarConfigReloadFailed', 'sidecar', undefined],
    ];
    const alerts = await until('the alerts', async () => {
      const { data } = await api<{ alerts: { labels: Record<string, string>; state: string }[] }>('/api/v1/alerts');
      const seen = data.alerts.map((a) => [a.labels.alertname, a.labels.job, a.labels.route]);
      return wanted.every((w) => seen.some((s) => s.join() === w.join())) ? data.alerts : undefined;
    });
    for (const alert of alerts) assert.ok(['pending', 'firing'].includes(alert.state));
    // Nothing about the healthy route, nor about the workers tree.
    assert.deepEqual(
      alerts.filter((a) => a.labels.route === 'api' || a.labels.job === 'workers').map((a) => a.labels.alertname),
      [],
    );
  });

  test('every query of the dashboard and of the rules parses and reads only metrics the sidecars export; every panel query has data', async () => {
    const { data: names } = await api<string[]>('/api/v1/label/__name__/values');
    const exported = new Set(names.filter((name) => name.startsWith('bearer_sidecar_')));
    for (const name of ['bearer_sidecar_upstream_401_total', 'bearer_sidecar_upstream_errors_total', 'bearer_sidecar_token_fetch_failing', 'bearer_sidecar_worker_up']) {
      assert.ok(exported.has(name), `${name} exported: the sidecars exercised it`);
    }
    const dashboard = dashboardQueries();
    assert.ok(dashboard.length >= 20);
    const problems: string[] = [];
    for (const { from, expr } of [...dashboard, ...ruleQueries()]) {
      const answer = await api<{ result: unknown[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
      if (answer.status !== 'success') {
        problems.push(`${from}: ${answer.errorType}: ${answer.error}`);
        continue;
      }
      const names = metricNames(expr);
      if (names.length === 0) problems.push(`${from}: reads no bearer_sidecar_ metric`);
      for (const name of names) if (!exported.has(name) && !exportedWithATokenCache.has(name)) problems.push(`${from}: ${name} is not exported`);
      const waiting = names.some((name) => exportedWithATokenCache.has(name));
      if (from.startsWith('panel') && !waiting && answer.data.result.length === 0) problems.push(`${from}: no data`);
    }
    assert.deepEqual(problems, []);
    // And a query that does not parse is told apart (so the loop above can see one).
    const bad = await api(`/api/v1/query?query=${encodeURIComponent('rate(bearer_sidecar_requests_total[')}`);
    assert.deepEqual([bad.status, bad.errorType], ['error', 'bad_data']);
  });
});
