// Reloading the config (issue 13): routes added, removed and changed take effect for new requests;
// a route whose auth is unchanged keeps its token source and its token (no new grant); changed auth
// gets a new source and the old token is never sent again; a config that does not load changes
// nothing; settings that need a new socket are refused; the shared secret, allowedClients and the
// log level reload; /readyz, the log and /metrics say which config is in force.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { after, describe, test } from 'node:test';
import { loadConfigFile } from '../../src/config/load.js';
import { audit, call } from '../helpers/audit.js';
import { tempFiles } from '../helpers/config.js';
import { issue, startScriptedTokenServer } from '../helpers/servers.js';
import { eventually } from '../helpers/sidecar.js';
import { apiRoute, connections, oneRoute, startRig, withRig } from './rig.js';

after(() => audit.assertNothingLeaked());

const json = <T = Record<string, unknown>>(answer: { json<U>(): U }) => answer.json<T>();

describe('reload: routes', () => {
  test('a route added serves its prefix at once; the existing route keeps its token source and its token', () =>
    withRig(oneRoute, async (r) => {
      assert.equal((await r.get('/x')).status, 200);
      const source = r.sidecar.sidecar.tokenSources.get('api');
      const result = await r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.a.url), apiRoute('other', r.tokens.url, r.b.url, { prefix: '/other' })] });
      assert.equal(result.outcome, 'success');
      const other = await r.get('/other/y?q=1');
      assert.equal(other.status, 200);
      assert.equal(json(other).path, '/y');
      assert.equal(r.b.received.length, 1);
      assert.equal((await r.get('/x')).status, 200);
      assert.equal(r.sidecar.sidecar.tokenSources.get('api'), source, 'the same token source');
      assert.equal(r.tokens.requests.length, 2, 'one grant for the new route, none for the old one');
      assert.deepEqual(new Set(r.tokensSeen(r.a)).size, 1, 'the old route still sends its first token');
      const line = r.lines('config reloaded')[0];
      assert.deepEqual(line?.added, ['other']);
      assert.deepEqual(line?.newTokenSources, ['other']);
    }));

  test('a route removed answers 404 no_route; its token source is closed and its upstream connections go', () =>
    withRig(({ tokenUrl, a, b }) => ({ routes: [apiRoute('api', tokenUrl, a, { prefix: '/a' }), apiRoute('gone', tokenUrl, b, { prefix: '/b' })] }), async (r) => {
      assert.equal((await r.get('/b/x')).status, 200);
      assert.equal(await connections(r.b.server), 1, 'a keep-alive connection to B');
      const gone = r.sidecar.sidecar.tokenSources.get('gone');
      await r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.a.url, { prefix: '/a' })] });
      const answer = await r.get('/b/x');
      assert.equal(answer.status, 404);
      assert.equal(json(answer).error, 'no_route');
      assert.equal(gone?.status().state, 'closed');
      assert.equal(gone?.peek(), undefined, 'its token is dropped');
      await eventually(async () => (await connections(r.b.server)) === 0);
      assert.equal((await r.get('/a/x')).status, 200);
      assert.deepEqual(r.lines('config reloaded')[0]?.removed, ['gone']);
      assert.ok(!(await call(`${r.sidecar.adminUrl}/readyz`)).text.includes('"gone"'), '/readyz shows the routes in force');
      assert.ok(!(await r.sidecar.sidecar.metrics.registry.metrics()).includes('bearer_sidecar_token_expiry_seconds{route="gone"}'));
    }));

  test('a route removed while requests wait for its token: they finish with the generation they started in (its token, its upstream); then its source closes', () =>
    withRig(({ tokenUrl, a, b }) => ({ routes: [apiRoute('api', tokenUrl, a, { prefix: '/a' }), apiRoute('gone', tokenUrl, b, { prefix: '/b' })] }), async (r) => {
      assert.equal((await r.get('/a/warm')).status, 200);
      assert.equal((await r.get('/b/warm')).status, 200);
      const gone = r.sidecar.sidecar.tokenSources.get('gone');
      // Its token is dropped and the refresh (the third grant) held at the endpoint while requests wait for it.
      const { release } = r.holdGrant(3);
      void gone?.invalidate(r.tokensSeen(r.b)[0] as string);
      await eventually(() => r.tokens.requests.length === 3);
      const waiting = [r.get('/b/1'), r.get('/b/2'), r.get('/b/3')];
      await eventually(() => r.sidecar.sidecar.proxy.inFlightRequests === 3);
      await r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.a.url, { prefix: '/a' })] });
      assert.equal((await r.get('/b/late')).status, 404, 'new requests: the route is gone');
      assert.notEqual(gone?.status().state, 'closed', 'kept while its requests wait');
      release();
      const answers = await Promise.all(waiting);
      assert.deepEqual(answers.map((answer) => answer.status), [200, 200, 200]);
      assert.deepEqual(r.tokensSeen(r.b, 1), [r.tokenOf(3), r.tokenOf(3), r.tokenOf(3)], 'with the token they waited for, on the upstream they arrived for');
      await eventually(() => gone?.status().state === 'closed');
      assert.equal(gone?.peek(), undefined, 'then dropped');
    }));

  test('a changed upstream, prefix, header policy and body limit apply to new requests; same auth, same token', () =>
    withRig(({ tokenUrl, a }) => ({ routes: [apiRoute('api', tokenUrl, a, { prefix: '/api' })] }), async (r) => {
      const before = await r.get('/api/x', { headers: { cookie: 'c=1' } });
      assert.equal(json<{ headers: Record<string, string> }>(before).headers.cookie, 'c=1');
      await r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, `${r.b.url}/base`, { prefix: '/v2api', forwardCookies: false, maxBodyBytes: 10 })] });
      assert.equal((await r.get('/api/x')).status, 404, 'the old prefix is gone');
      const after = await r.get('/v2api/x', { headers: { cookie: 'c=1' } });
      assert.equal(after.status, 200);
      const echo = json<{ path: string; headers: Record<string, string> }>(after);
      assert.equal(echo.path, '/base/x', 'to the new upstream and base path');
      assert.equal(echo.headers.cookie, undefined, 'the new header policy');
      assert.equal((await r.get('/v2api/upload', { method: 'POST', body: 'more than ten bytes' })).status, 413, 'the new body limit');
      assert.equal(r.a.received.length, 1);
      assert.equal(r.tokens.requests.length, 1, 'no new grant');
      assert.deepEqual(r.tokensSeen(r.b), [r.tokens.issued[0]], 'the same token');
      assert.deepEqual([...(r.lines('config reloaded')[0]?.changed as Record<string, string[]>).api!].sort(), ['forwardCookies', 'maxBodyBytes', 'prefix', 'upstreamBasePath', 'upstreamOrigin']);
    }));

  test('changed credentials, scope, method or token URL: a new token source and a new grant each time; an older token is never sent again', async () => {
    const second = await startScriptedTokenServer(() => ({ status: 200, body: issue(3600, { grant: 'second' }) }));
    const r = await startRig(oneRoute);
    try {
      assert.equal((await r.get('/x')).status, 200);
      const changes: Record<string, unknown>[] = [{ clientSecret: 'reload-secret-2' }, { clientSecret: 'reload-secret-2', scope: 'ports:read' }, { clientSecret: 'reload-secret-2', scope: 'ports:read', method: 'client_secret_post' }];
      for (const [i, auth] of changes.entries()) {
        const source = r.sidecar.sidecar.tokenSources.get('api');
        const seen = r.a.received.length;
        await r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.a.url, {}, auth)] });
        assert.notEqual(r.sidecar.sidecar.tokenSources.get('api'), source, `change ${i}: a new source`);
        assert.equal(source?.status().state, 'closed');
        for (let n = 0; n < 3; n++) assert.equal((await r.get(`/after/${i}/${n}`)).status, 200);
        assert.equal(r.tokens.requests.length, i + 2, `change ${i}: one new grant`);
        assert.deepEqual(new Set(r.tokensSeen(r.a, seen)), new Set([r.tokens.issued[i + 1]]), `change ${i}: only the newest token after the reload`);
      }
      const last = r.tokens.requests.at(-1);
      assert.equal(last?.form.scope, 'ports:read');
      assert.equal(last?.form.client_secret, 'reload-secret-2', 'client_secret_post sends the new secret in the form');
      const seen = r.a.received.length;
      await r.sidecar.reload({ routes: [apiRoute('api', second.url, r.a.url, {}, changes.at(-1))] });
      assert.equal((await r.get('/after/url')).status, 200);
      assert.equal(second.requests.length, 1, 'the new token URL is asked');
      assert.deepEqual(r.tokensSeen(r.a, seen), [second.issued[0]]);
    } finally {
      await r.close();
      await second.close();
    }
  });

  test('the same config again: outcome unchanged, nothing rebuilt, counted', () =>
    withRig(oneRoute, async (r) => {
      const { hash, loadedAt } = r.sidecar.sidecar.live;
      const source = r.sidecar.sidecar.tokenSources.get('api');
      const result = await r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.a.url)] });
      assert.deepEqual(result, { outcome: 'unchanged', hash, restartNeeded: [] });
      assert.equal(r.sidecar.sidecar.live.loadedAt, loadedAt);
      assert.equal(r.sidecar.sidecar.tokenSources.get('api'), source);
      assert.equal(await r.metric('bearer_sidecar_config_reloads_total{outcome="unchanged"}'), 1);
      assert.equal(await r.metric('bearer_sidecar_config_reloads_total{outcome="success"}'), 0);
    }));
});

describe('reload: a config that does not load', () => {
  test('problems in the schema: the old config keeps serving, one error line names every problem by its field path', () =>
    withRig(oneRoute, async (r) => {
      const hash = r.sidecar.sidecar.live.hash;
      const errorsBefore = r.sidecar.logs.filter((line) => line.includes('"level":"error"')).length;
      const result = await r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, 'not a url'), apiRoute('b', r.tokens.url, r.b.url, { maxBodyBytes: -1 })], logLevel: 'loud' });
      assert.equal(result.outcome, 'failure');
      assert.equal(result.hash, hash);
      const errors = r.sidecar.logs.filter((line) => line.includes('"level":"error"')).slice(errorsBefore);
      assert.equal(errors.length, 1, 'one line');
      const line = JSON.parse(errors[0] as string) as { msg: string; problems: string[]; config: string };
      assert.equal(line.msg, 'config reload failed; the previous config stays in force');
      assert.equal(line.config, hash);
      for (const field of ['routes[0].upstream', 'routes[1].maxBodyBytes', 'logLevel']) assert.ok(line.problems.some((p) => p.startsWith(`${field}:`)), `names ${field}: ${line.problems.join(' | ')}`);
      assert.equal((await r.get('/x')).status, 200, 'the old config serves');
      assert.equal(r.sidecar.sidecar.live.hash, hash);
      assert.equal(await r.metric('bearer_sidecar_config_reloads_total{outcome="failure"}'), 1);
    }));

  test('a file that does not parse, or is gone: the same, naming the file', async () => {
    const r = await startRig(oneRoute);
    const files = tempFiles('bsc-reload-bad-');
    try {
      const broken = files.file('config.yaml', 'routes: [ { name: api\n');
      const parse = await r.sidecar.sidecar.reload(() => loadConfigFile(broken));
      assert.equal(parse.outcome, 'failure');
      assert.match(parse.problems?.[0] ?? '', /config\.yaml: not valid YAML/);
      const missing = await r.sidecar.sidecar.reload(() => loadConfigFile(`${files.dir}/nope.yaml`));
      assert.match(missing.problems?.[0] ?? '', /nope\.yaml: cannot read \(ENOENT\)/);
      assert.equal(r.lines('config reload failed').length, 2);
      assert.equal((await r.get('/x')).status, 200);
    } finally {
      await r.close();
    }
  });
});

describe('reload: settings beyond the routes', () => {
  test('listen and admin changes are refused with a line saying a restart is needed; the rest applies', () =>
    withRig(oneRoute, async (r) => {
      const result = await r.sidecar.reload({ listen: { port: 1, maxHeaderBytes: 4096 }, admin: { host: '127.0.0.2', port: 2 }, routes: [apiRoute('api', r.tokens.url, r.b.url)] });
      assert.equal(result.outcome, 'success');
      assert.deepEqual(result.restartNeeded, ['listen.port', 'listen.maxHeaderBytes', 'admin.host', 'admin.port']);
      const warning = r.lines('these settings need a new socket')[0];
      assert.deepEqual(warning?.fields, result.restartNeeded);
      assert.match(String(warning?.msg), /restart the sidecar/);
      assert.equal(json(await r.get('/x')).path, '/x');
      assert.equal(r.b.received.length, 1, 'the route change applied');
      const live = r.sidecar.sidecar.live.config;
      assert.equal(live.listen.port, 0, 'the listener as it was');
      assert.equal(live.inbound.maxHeaderBytes, 16_384);
      assert.deepEqual(live.admin, { host: '127.0.0.1', port: 0 });
      assert.equal((await call(`${r.sidecar.adminUrl}/livez`)).status, 200);
    }));

  test('the shared-secret header: a new value applies at the next request; its file is read again at every reload', async () => {
    const files = tempFiles('bsc-reload-secret-');
    const values = ['shared-value-0001-abcdef', 'shared-value-0002-abcdef', 'shared-value-0003-abcdef'];
    for (const value of values) audit.addSecret(value);
    const secretFile = files.file('shared', `${values[0]}\n`);
    const config = (tokenUrl: string, a: string, header: Record<string, unknown>) => ({ listen: { port: 0, sharedSecretHeader: header }, routes: [apiRoute('api', tokenUrl, a)] });
    const r = await startRig(({ tokenUrl, a }) => config(tokenUrl, a, { name: 'x-sidecar-key', valueFile: secretFile }));
    const withKey = (name: string, value: string) => r.get('/x', { headers: { [name]: value } });
    try {
      assert.equal((await withKey('x-sidecar-key', values[0]!)).status, 200);
      writeFileSync(secretFile, `${values[1]}\n`);
      assert.equal((await withKey('x-sidecar-key', values[0]!)).status, 200, 'read once, not at every request');
      const same = await r.sidecar.reload(config(r.tokens.url, r.a.url, { name: 'x-sidecar-key', valueFile: secretFile }));
      assert.equal(same.outcome, 'unchanged', 'the config is the same...');
      assert.equal((await withKey('x-sidecar-key', values[0]!)).status, 403, '...but the file was read again');
      assert.equal((await withKey('x-sidecar-key', values[1]!)).status, 200);
      await r.sidecar.reload(config(r.tokens.url, r.a.url, { name: 'x-other-key', value: values[2] }));
      assert.equal((await withKey('x-sidecar-key', values[1]!)).status, 403);
      const answer = await withKey('x-other-key', values[2]!);
      assert.equal(answer.status, 200);
      assert.equal(json<{ headers: Record<string, string> }>(answer).headers['x-other-key'], undefined, 'the new header is not forwarded');
      await r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.a.url)] });
      assert.equal((await r.get('/x')).status, 200, 'no shared secret any more');
    } finally {
      await r.close();
    }
  });

  test('allowedClients, maxInFlight, logLevel and drainTimeoutMs reload too', () =>
    withRig(oneRoute, async (r) => {
      // One keep-alive connection: allowedClients is checked once per connection, and again after a reload.
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const get = () =>
        new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
          const req = request(`${r.sidecar.proxyUrl}/x`, { agent }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
          });
          req.on('error', reject);
          req.end();
        });
      assert.deepEqual(await get(), { status: 200, reused: false });
      await r.sidecar.reload({ listen: { port: 0, allowedClients: ['10.0.0.0/8'], maxInFlight: 7 }, logLevel: 'debug', drainTimeoutMs: 1234, routes: [apiRoute('api', r.tokens.url, r.a.url)] });
      assert.deepEqual(await get(), { status: 403, reused: true }, 'an open connection is checked again');
      agent.destroy();
      assert.equal((await r.get('/x')).status, 403, 'loopback is no longer allowed');
      assert.equal(r.sidecar.sidecar.logger.level, 'debug');
      assert.equal(r.sidecar.sidecar.live.config.drainTimeoutMs, 1234);
      assert.equal(r.sidecar.sidecar.live.config.inbound.maxInFlight, 7);
      await r.sidecar.reload({ listen: { port: 0, maxInFlight: 0 }, logLevel: 'info', routes: [apiRoute('api', r.tokens.url, r.a.url)] });
      assert.equal((await r.get('/x')).status, 200);
      assert.equal(r.sidecar.sidecar.logger.level, 'info');
      assert.equal(r.sidecar.sidecar.proxy.inFlightRequests, 0);
    }, { logLevel: 'info' }));

  test('/readyz, the log and /metrics show which config is in force: its hash and when it was loaded', () =>
    withRig(oneRoute, async (r) => {
      await eventually(async () => (await call(`${r.sidecar.adminUrl}/readyz`)).status === 200);
      const first = json<{ config: { hash: string; loadedAt: string } }>(await call(`${r.sidecar.adminUrl}/readyz`)).config;
      assert.match(first.hash, /^[0-9a-f]{12}$/);
      assert.equal(first.hash, r.sidecar.sidecar.live.hash);
      assert.equal(first.loadedAt, r.sidecar.sidecar.live.loadedAt.toISOString());
      assert.equal(r.lines('listening')[0]?.config, first.hash);
      assert.equal(r.lines('listening')[0]?.loadedAt, first.loadedAt, 'the start-up line says when it was loaded, as a reload line does');
      await new Promise((resolve) => setTimeout(resolve, 5));
      await r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.b.url)] });
      const second = json<{ config: { hash: string; loadedAt: string } }>(await call(`${r.sidecar.adminUrl}/readyz`)).config;
      assert.notEqual(second.hash, first.hash);
      assert.ok(Date.parse(second.loadedAt) > Date.parse(first.loadedAt));
      const line = r.lines('config reloaded')[0];
      assert.equal(line?.config, second.hash);
      assert.equal(line?.loadedAt, second.loadedAt);
      await r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.b.url)] });
      await r.sidecar.reload({ routes: [] });
      assert.equal(await r.metric('bearer_sidecar_config_reloads_total{outcome="success"}'), 1);
      assert.equal(await r.metric('bearer_sidecar_config_reloads_total{outcome="unchanged"}'), 1);
      assert.equal(await r.metric('bearer_sidecar_config_reloads_total{outcome="failure"}'), 1);
    }));
});
