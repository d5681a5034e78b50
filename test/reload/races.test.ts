// Reloads while things are under way: a token refresh, a 401 replay, another reload, requests from
// 20 clients at once, a slow request and an open WebSocket on a route the reload removes. Requests
// keep the route they arrived on; nothing in flight fails because of a reload.
//
// Documented choice: when a reload changes a route's auth, its old token source is closed at
// once. Requests that already hold its token finish with it; a request still waiting for a token
// from it gets 503 token_unavailable (Retry-After), and a 401 being replayed is passed on to the
// caller as the upstream sent it. The old token is never sent again.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { closeServer } from '../../src/demo/token-server.js';
import { audit, call } from '../helpers/audit.js';
import { eventually } from '../helpers/sidecar.js';
import { closeOf, echo, openSocket, refusalOf } from '../helpers/websocket.js';
import { apiRoute, connections, gate, oneRoute, replayingOnHeldRefresh, startRig, waitingOnHeldRefresh, withRig } from './rig.js';

after(() => audit.assertNothingLeaked());

describe('reload during a token refresh', () => {
  test('unchanged auth: the refresh goes on; a request waiting for it is sent with its token on the route it arrived on; no other grant', () =>
    withRig(oneRoute, async (r) => {
      const { source, waiting, release } = await waitingOnHeldRefresh(r);
      await r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.b.url)] });
      assert.equal(r.sidecar.sidecar.tokenSources.get('api'), source, 'the same source, still fetching');
      release();
      const answer = await waiting;
      assert.equal(answer.status, 200, "sent through the replaced route's pool, open until its last request is done");
      assert.deepEqual(r.tokensSeen(r.a), [r.tokenOf(1), r.tokenOf(2)], 'on the upstream of the route it arrived on');
      assert.equal((await r.get('/y')).status, 200);
      assert.deepEqual(r.tokensSeen(r.b), [r.tokenOf(2)]);
      assert.equal(r.tokens.requests.length, 2);
    }));

  test('changed auth: the refresh is abandoned, a request waiting on it gets 503, the new source makes its own grant; the abandoned token is never sent', () =>
    withRig(oneRoute, async (r) => {
      const { source, waiting, release } = await waitingOnHeldRefresh(r);
      await r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.a.url, {}, { clientSecret: 'reload-secret-2' })] });
      assert.equal(source.status().state, 'closed');
      const refused = await waiting;
      assert.equal(refused.status, 503);
      assert.equal(refused.json().error, 'token_unavailable');
      assert.match(String(refused.json().message), /auth settings changed in a config reload; retry/);
      assert.ok(refused.headers.get('retry-after'));
      release();
      assert.equal((await r.get('/after')).status, 200);
      await eventually(() => r.tokenOf(2) !== undefined);
      const basic = Buffer.from((r.tokens.requests[2]?.headers.authorization ?? '').slice(6), 'base64').toString();
      assert.equal(basic, 'reload-client:reload-secret-2', 'the new source asks with the new secret');
      assert.deepEqual(r.tokensSeen(r.a).slice(1), [r.tokenOf(3)], 'after the first request, only the new source token');
      assert.ok(!r.tokensSeen(r.a).includes(r.tokenOf(2)!), 'the abandoned token is never sent');
    }));
});

describe('reload during a 401 replay', () => {
  test('unchanged auth: the request is replayed with the new token on the route it started on; the next one goes to the new upstream', () =>
    withRig(oneRoute, async (r) => {
      const { replaying, release } = await replayingOnHeldRefresh(r);
      await r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.b.url)] });
      release();
      const answer = await replaying;
      assert.equal(answer.status, 200);
      assert.deepEqual(r.tokensSeen(r.a), [r.tokenOf(1), r.tokenOf(1), r.tokenOf(2)], 'warm, the 401, the replay: all on A');
      assert.equal((await r.get('/next')).status, 200);
      assert.deepEqual(r.tokensSeen(r.b), [r.tokenOf(2)]);
      assert.equal(r.tokens.requests.length, 2, 'one refresh for the 401, none for the reload');
    }));

  test("changed auth: the request gets the upstream's 401 (its token source is closed); the next one carries the new source's token", () =>
    withRig(oneRoute, async (r) => {
      const { replaying, release } = await replayingOnHeldRefresh(r);
      await r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.a.url, {}, { scope: 'other' })] });
      const answer = await replaying;
      assert.equal(answer.status, 401);
      assert.match(answer.headers.get('www-authenticate') ?? '', /invalid_token/);
      release();
      assert.equal((await r.get('/next')).status, 200);
      await eventually(() => r.tokenOf(2) !== undefined);
      assert.deepEqual(r.tokensSeen(r.a), [r.tokenOf(1), r.tokenOf(1), r.tokenOf(3)]);
    }));
});

describe('reloads in quick succession and under load', () => {
  test('reloads started together apply one after the other, in order; a bad one in between changes nothing', () =>
    withRig(oneRoute, async (r) => {
      const results = await Promise.all([
        r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.b.url)] }),
        r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.b.url), apiRoute('two', r.tokens.url, r.a.url, { prefix: '/two' })] }),
        r.sidecar.reload({ routes: 'none' }),
        r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.b.url, { prefix: '/api' }), apiRoute('two', r.tokens.url, r.a.url, { prefix: '/two' })] }),
      ]);
      assert.deepEqual(results.map((result) => result.outcome), ['success', 'success', 'failure', 'success']);
      assert.equal(results[3]?.hash, r.sidecar.sidecar.live.hash);
      assert.deepEqual(r.lines('config reloaded').map((line) => line.added), [[], ['two'], []]);
      assert.equal((await r.get('/x')).status, 404);
      assert.equal((await r.get('/api/x')).status, 200);
      assert.equal((await r.get('/two/x')).status, 200);
      assert.equal(r.tokens.requests.length, 2, 'api kept its token source through all of them');
    }));

  test('20 clients looping requests while the config changes 6 times (upstream, headers, auth, routes): every request succeeds', async () => {
    const r = await startRig(({ tokenUrl, a, b }) => ({ routes: [apiRoute('api', tokenUrl, a), apiRoute('other', tokenUrl, b, { prefix: '/other' })] }));
    const configs = [
      [apiRoute('api', r.tokens.url, r.b.url), apiRoute('other', r.tokens.url, r.b.url, { prefix: '/other', forwardCookies: false })],
      [apiRoute('api', r.tokens.url, r.b.url, {}, { scope: 'new' }), apiRoute('other', r.tokens.url, r.b.url, { prefix: '/other' })],
      [apiRoute('api', r.tokens.url, r.a.url, {}, { scope: 'new' }), apiRoute('other', r.tokens.url, r.b.url, { prefix: '/other' }), apiRoute('extra', r.tokens.url, r.a.url, { prefix: '/extra' })],
      [apiRoute('api', r.tokens.url, r.a.url, { maxBodyBytes: 1000 }), apiRoute('other', r.tokens.url, `${r.a.url}/v9`, { prefix: '/other' })],
      [apiRoute('api', r.tokens.url, r.b.url, { forwardedHeaders: 'append' }), apiRoute('other', r.tokens.url, r.b.url, { prefix: '/other' }, { clientSecret: 'reload-secret-2' })],
      [apiRoute('api', r.tokens.url, r.a.url), apiRoute('other', r.tokens.url, r.b.url, { prefix: '/other' })],
    ];
    try {
      let stop = false;
      let done = 0;
      const statuses = new Map<number, number>();
      const client = async (i: number) => {
        for (let n = 0; !stop; n++) {
          const path = i % 4 === 0 ? `/other/c${i}/${n}` : `/c${i}/${n}`;
          const answer = await call(`${r.sidecar.proxyUrl}${path}`, i % 3 === 0 ? { method: 'POST', body: `body ${i} ${n}` } : undefined);
          statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
          done += 1;
        }
      };
      // Each reload comes after at least 150 ms and 40 more answers, so requests are in flight at every one however slow the machine.
      const traffic = async () => {
        const until = done + 40;
        await new Promise((resolve) => setTimeout(resolve, 150));
        await eventually(() => done >= until, 30_000);
      };
      const clients = Array.from({ length: 20 }, (_, i) => client(i));
      for (const routes of configs) {
        await traffic();
        assert.equal((await r.sidecar.reload({ routes })).outcome, 'success');
      }
      await traffic();
      stop = true;
      await Promise.all(clients);
      assert.deepEqual([...statuses.keys()], [200], `every request succeeded: ${JSON.stringify([...statuses])}`);
      assert.equal(await r.metric('bearer_sidecar_config_reloads_total{outcome="success"}'), 6);
    } finally {
      await r.close();
    }
  });
});

describe('what is in flight finishes on the route it started on', () => {
  test('a slow request on a route the reload removes gets its answer; new requests get 404; the pool closes after it', async () => {
    const answered = gate();
    let saw = 0;
    const slow = createServer((req, res) => {
      saw += 1;
      req.resume();
      void answered.promise.then(() => res.end('late answer'));
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    const slowUrl = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
    const r = await startRig(({ tokenUrl, a }) => ({ routes: [apiRoute('api', tokenUrl, a, { prefix: '/api' }), apiRoute('slow', tokenUrl, slowUrl, { prefix: '/slow' })] }));
    try {
      const inFlight = r.get('/slow/x');
      await eventually(() => saw === 1);
      await r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.a.url, { prefix: '/api' })] });
      const after = await r.get('/slow/y');
      assert.equal(after.status, 404);
      assert.equal(after.json().error, 'no_route');
      assert.equal(await connections(slow), 1, 'the pool stays open while its request is in flight');
      answered.open();
      const answer = await inFlight;
      assert.equal(answer.status, 200);
      assert.equal(answer.text, 'late answer');
      await eventually(async () => (await connections(slow)) === 0);
    } finally {
      await r.close();
      await closeServer(slow);
    }
  });

  test('an open WebSocket survives a reload that removes its route; a new upgrade there gets 404', () =>
    withRig(({ tokenUrl, a }) => ({ routes: [apiRoute('api', tokenUrl, a, { prefix: '/api' }), apiRoute('ws', tokenUrl, a, { prefix: '/ws', websocket: true })] }), async (r) => {
      const wsUrl = `${r.sidecar.proxyUrl.replace('http', 'ws')}/ws/chat`;
      const socket = await openSocket(wsUrl);
      assert.equal((await echo(socket, 'before')).data.toString(), 'before');
      await r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.a.url, { prefix: '/api' })] });
      assert.equal((await echo(socket, 'after')).data.toString(), 'after');
      assert.equal((await refusalOf(wsUrl)).status, 404);
      const closed = closeOf(socket);
      socket.close(1000, 'done');
      assert.equal((await closed).code, 1000);
    }));

  test('a reload that adds the first WebSocket route: upgrades work at once', () =>
    withRig(({ tokenUrl, a }) => ({ routes: [apiRoute('api', tokenUrl, a, { prefix: '/api' })] }), async (r) => {
      const wsUrl = `${r.sidecar.proxyUrl.replace('http', 'ws')}/ws/chat`;
      await r.sidecar.reload({ routes: [apiRoute('api', r.tokens.url, r.a.url, { prefix: '/api' }), apiRoute('ws', r.tokens.url, r.a.url, { prefix: '/ws', websocket: true })] });
      const socket = await openSocket(wsUrl);
      assert.equal((await echo(socket, 'hello')).data.toString(), 'hello');
      socket.close();
      assert.equal((await refusalOf(`${r.sidecar.proxyUrl.replace('http', 'ws')}/api/x`)).status, 400, 'the route without websocket still refuses');
    }));
});
