// routes[].inject: the token in another header, or after another scheme. The caller's header of
// that name is replaced, the caller's Authorization dropped whatever the header is, and WebSocket
// upgrades and 401 replays carry the token the same way. Bad header names fail at start-up.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config/index.js';
import { resolveConfig } from '../../src/config/load.js';
import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { audit, call } from '../helpers/audit.js';
import { problems } from '../helpers/config.js';
import { issue, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';
import { route, startSidecar, type TestSidecar } from '../helpers/sidecar.js';
import { closeOf, echo, openSocket } from '../helpers/websocket.js';

interface Echo {
  headers: Record<string, string | undefined>;
}

after(() => audit.assertNothingLeaked());

/** A token server issuing a fresh token each time, an echo upstream that reads the token as `tokenIn`, and a sidecar routing to it with `inject`. */
async function rig(inject: { header: string; scheme: string } | undefined, tokenIn: { header: string; scheme: string }, revoked = new Set<string>()) {
  const tokens = await startScriptedTokenServer(() => ({ status: 200, body: issue(3600, { jti: Math.random().toString(36).slice(2) }) }));
  const upstream = await startEchoUpstream({ signingKey: 'test-signing-key', tokenIn, isRevoked: (token) => revoked.has(token) });
  const sidecar = await startSidecar({ routes: [route(tokens.url, upstream.url, { websocket: true, ...(inject ? { inject } : {}) })] });
  return {
    tokens,
    upstream,
    sidecar,
    async close() {
      await sidecar.close();
      await Promise.all([tokens.close(), upstream.close()]);
    },
  };
}

const callerHeaders = { authorization: 'Bearer caller-own-token', 'x-api-token': 'caller-own-api-token' };

describe('the bare token in X-Api-Token (scheme "")', () => {
  let r: Awaited<ReturnType<typeof rig>>;
  const revoked = new Set<string>();
  before(async () => {
    r = await rig({ header: 'X-Api-Token', scheme: '' }, { header: 'x-api-token', scheme: '' }, revoked);
  });
  after(() => r.close());

  test("sent as it is; the caller's X-Api-Token replaced, its Authorization dropped", async () => {
    const answer = await call(`${r.sidecar.proxyUrl}/a`, { headers: callerHeaders });
    assert.equal(answer.status, 200, answer.text);
    const { headers } = answer.json<Echo>();
    assert.equal(headers['x-api-token'], r.tokens.issued.at(-1));
    assert.equal(headers.authorization, undefined);
    assert.ok(!answer.text.includes('caller-own'), 'nothing of the caller\'s credentials reaches the upstream');
  });

  test('a 401 is replayed with the new token in the same header', async () => {
    await call(`${r.sidecar.proxyUrl}/warm`);
    const rejected = r.tokens.issued.at(-1) as string;
    revoked.add(rejected);
    const answer = await call(`${r.sidecar.proxyUrl}/b`, { method: 'POST', body: 'again', headers: callerHeaders });
    assert.equal(answer.status, 200, answer.text);
    const [first, second] = r.upstream.received.slice(-2);
    assert.equal(first?.headers['x-api-token'], rejected);
    assert.equal(second?.headers['x-api-token'], r.tokens.issued.at(-1));
    assert.notEqual(second?.headers['x-api-token'], rejected);
    assert.equal(second?.headers.authorization, undefined);
  });

  test('a WebSocket upgrade carries it the same way', async () => {
    const socket = await openSocket(`${r.sidecar.proxyUrl.replace('http', 'ws')}/ws`, [], { headers: callerHeaders });
    try {
      assert.equal((await echo(socket, 'hello')).data.toString(), 'hello');
      const upgrade = r.upstream.received.at(-1);
      assert.equal(upgrade?.url, '/ws');
      assert.equal(upgrade?.headers['x-api-token'], r.tokens.issued.at(-1));
      assert.equal(upgrade?.headers.authorization, undefined);
    } finally {
      socket.close();
      await closeOf(socket);
    }
  });
});

describe('Authorization with another scheme (Token)', () => {
  let r: Awaited<ReturnType<typeof rig>>;
  before(async () => {
    r = await rig({ header: 'Authorization', scheme: 'Token' }, { header: 'authorization', scheme: 'Token' });
  });
  after(() => r.close());

  test("Authorization: Token <token>, the caller's replaced", async () => {
    const answer = await call(`${r.sidecar.proxyUrl}/a`, { headers: callerHeaders });
    assert.equal(answer.status, 200, answer.text);
    const { headers } = answer.json<Echo>();
    assert.equal(headers.authorization, `Token ${r.tokens.issued.at(-1)}`);
    assert.equal(headers['x-api-token'], 'caller-own-api-token', 'other headers pass as before');
  });

  test('WebSocket upgrades too', async () => {
    const socket = await openSocket(`${r.sidecar.proxyUrl.replace('http', 'ws')}/ws`, [], { headers: callerHeaders });
    socket.close();
    await closeOf(socket);
    assert.equal(r.upstream.received.at(-1)?.headers.authorization, `Token ${r.tokens.issued.at(-1)}`);
  });
});

describe('a header with the default scheme', () => {
  test('X-Auth: Bearer <token>, and no Authorization', async () => {
    const r = await rig({ header: 'X-Auth', scheme: 'Bearer' }, { header: 'x-auth', scheme: 'Bearer' });
    try {
      const answer = await call(`${r.sidecar.proxyUrl}/a`, { headers: { ...callerHeaders, 'x-auth': 'Bearer caller-own-x-auth' } });
      assert.equal(answer.status, 200, answer.text);
      const { headers } = answer.json<Echo>();
      assert.equal(headers['x-auth'], `Bearer ${r.tokens.issued.at(-1)}`);
      assert.equal(headers.authorization, undefined);
    } finally {
      await r.close();
    }
  });
});

describe('inject in the config', () => {
  const config = (inject: unknown, extra: Record<string, unknown> = {}) => ({
    ...extra,
    routes: [{ name: 'r', upstream: 'https://api.example.com', inject, auth: { tokenUrl: 'https://auth.example.com/token', clientId: 'id', clientSecret: 'secret' } }],
  });

  test('defaults: Authorization and Bearer; the header is kept in lower case', () => {
    const defaults = resolveConfig({ routes: [{ name: 'r', upstream: 'https://api.example.com', auth: { tokenUrl: 'https://auth.example.com/token', clientId: 'id', clientSecret: 'secret' } }] });
    assert.deepEqual(defaults.routes[0]?.inject, { header: 'authorization', scheme: 'Bearer' });
    assert.deepEqual(resolveConfig(config({ header: 'X-Api-Token', scheme: '' })).routes[0]?.inject, { header: 'x-api-token', scheme: '' });
    assert.deepEqual(resolveConfig(config({ scheme: 'Token' })).routes[0]?.inject, { header: 'authorization', scheme: 'Token' });
  });

  const refused: [string, unknown, Record<string, unknown>, RegExp][] = [
    ['a name with a space', { header: 'X Api' }, {}, /^routes\[0\]\.inject\.header: must be a header name/],
    ['an empty name', { header: '' }, {}, /^routes\[0\]\.inject\.header: must be a header name/],
    ...['Host', 'content-length', 'Connection', 'transfer-encoding', 'Cookie', 'Proxy-Authorization', 'Upgrade', 'TE', 'X-Request-Id', 'Sec-WebSocket-Key'].map(
      (header): [string, unknown, Record<string, unknown>, RegExp] => [header, { header }, {}, /^routes\[0\]\.inject\.header: is a header HTTP or the sidecar gives its own meaning/],
    ),
    ['the shared-secret header', { header: 'X-Sidecar-Key' }, { listen: { sharedSecretHeader: { name: 'x-sidecar-key', value: 'sixteen-characters-or-more' } } }, /^routes\[0\]\.inject\.header: is listen\.sharedSecretHeader's name/],
    ['a scheme with a space', { scheme: 'Bearer x' }, {}, /^routes\[0\]\.inject\.scheme: must be an authentication scheme/],
    ['an unknown field', { name: 'X-Api-Token' }, {}, /^routes\[0\]\.inject\.name: unknown field$/],
  ];
  for (const [name, inject, extra, expected] of refused) {
    test(`refused: ${name}`, () => {
      const lines = problems(() => resolveConfig(config(inject, extra), { env: {} }));
      assert.ok(lines.some((line) => expected.test(line)), lines.join('\n'));
    });
  }

  test('BEARER_SIDECAR_INJECT_HEADER and BEARER_SIDECAR_INJECT_SCHEME (set but empty: the bare token)', () => {
    const env = { BEARER_SIDECAR_TOKEN_URL: 'https://auth.example.com/token', BEARER_SIDECAR_UPSTREAM: 'https://api.example.com', BEARER_SIDECAR_CLIENT_ID: 'id', BEARER_SIDECAR_CLIENT_SECRET: 's' };
    assert.deepEqual(loadConfig(undefined, { ...env, BEARER_SIDECAR_INJECT_HEADER: 'X-Api-Token', BEARER_SIDECAR_INJECT_SCHEME: '' }).routes[0]?.inject, { header: 'x-api-token', scheme: '' });
    assert.deepEqual(loadConfig(undefined, { ...env, BEARER_SIDECAR_INJECT_SCHEME: 'Token' }).routes[0]?.inject, { header: 'authorization', scheme: 'Token' });
    assert.deepEqual(loadConfig(undefined, env).routes[0]?.inject, { header: 'authorization', scheme: 'Bearer' });
  });
});
