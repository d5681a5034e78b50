// The shared token cache failing, in one process: unreachable, refusing the password, accepting
// connections and never answering. Requests are served each time with a token of the sidecar's
// own, within a bounded wait; one log line; readiness unaffected. And `check`, which reports
// whether the cache answers, never its password.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { audit, call } from '../helpers/audit.js';
import { cachedSidecar, metric, waitFor } from '../helpers/cache-sidecar.js';
import { tempFiles } from '../helpers/config.js';
import { runToEnd } from '../helpers/process.js';
import { encryptionKeys, redisMissing, startRedis } from '../helpers/redis.js';
import { freePort, startScriptedTokenServer } from '../helpers/servers.js';
import { route } from '../helpers/sidecar.js';

const files = tempFiles('bsc-shared-cache-failing-');
const keyFile = files.file('keys', encryptionKeys());

/** A TCP server that accepts connections and never answers (a hung cache). */
async function startSilentCache(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => void sockets.push(socket));
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `redis://:silent-password-1234@127.0.0.1:${port}/0`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const failing = { unreachable: 'unreachable', 'wrong password': 'refusing the password', silent: 'accepting connections and never answering' } as const;
for (const kind of ['unreachable', 'wrong password', 'silent'] as const) {
  test(`a cache ${failing[kind]}: requests are served with a token of the sidecar's own, after a bounded wait; one log line; the cache's state is 0`, { skip: kind === 'wrong password' && redisMissing }, async () => {
    const tokens = await startScriptedTokenServer();
    const redis = kind === 'wrong password' ? await startRedis() : undefined;
    const silent = kind === 'silent' ? await startSilentCache() : undefined;
    const url = redis ? `redis://:not-the-password-4321@127.0.0.1:${redis.port}/0` : silent ? silent.url : `redis://:unused-password-9876@127.0.0.1:${await freePort()}/0`;
    audit.addSecret(decodeURIComponent(new URL(url).password));
    const sidecar = await cachedSidecar(url, tokens.url, keyFile, { routes: [route(tokens.url, 'http://127.0.0.1:9', { prefix: '/api' })] });
    // From listening (the first fetch starts there): connectTimeoutMs (500) at most waiting for the
    // cache, then the token request; the bound leaves room for a loaded machine.
    const listeningAt = Date.now();
    try {
      await waitFor(() => sidecar.sidecar.tokenSources.get('api')?.status().state === 'ready', 10_000);
      const elapsedMs = Date.now() - listeningAt;
      assert.ok(elapsedMs < 5_000, `${elapsedMs} ms to a token`);
      assert.equal(tokens.requests.length, 1);
      assert.deepEqual(await metric(sidecar.adminUrl, 'bearer_sidecar_token_cache_up'), ['bearer_sidecar_token_cache_up{route="api"} 0']);
      await new Promise((resolve) => setTimeout(resolve, 1_000)); // reconnect attempts, each failing
      const down = sidecar.logs.filter((line) => line.includes('token cache unreachable'));
      assert.equal(down.length, 1, down.join('\n'));
      const readyz = await call(`${sidecar.adminUrl}/readyz`);
      assert.equal(readyz.status, 200, 'readiness does not depend on the cache');
    } finally {
      await sidecar.close();
      await Promise.all([tokens.close(), redis?.close(), silent?.close()]);
    }
    audit.assertNothingLeaked();
  });
}

test('check reports whether the cache answers, never its password', { skip: redisMissing }, async () => {
  const redis = await startRedis();
  const tokens = await startScriptedTokenServer();
  try {
    const config = (url: string) => files.file(`check-${randomBytes(4).toString('hex')}.yaml`, JSON.stringify({ tokenCache: { url, encryptionKeyFile: keyFile, connectTimeoutMs: 1_000 }, routes: [route(tokens.url, 'http://127.0.0.1:9')] }));
    const ok = await runToEnd(['check', '--config', config(redis.url)]);
    assert.equal(ok.code, 0, ok.output);
    assert.match(ok.output, new RegExp(`^ok {6}token cache: 127\\.0\\.0\\.1:${redis.port} answers \\(PING in [\\d.]+ ms\\)$`, 'm'));
    const wrong = await runToEnd(['check', '--config', config(`redis://:wrong-password-5678@127.0.0.1:${redis.port}`)]);
    assert.equal(wrong.code, 1, wrong.output);
    assert.match(wrong.output, /^FAILED {2}token cache: 127\.0\.0\.1:\d+ does not answer: WRONGPASS/m);
    for (const output of [ok.output, wrong.output]) {
      assert.ok(!output.includes(redis.password) && !output.includes('wrong-password-5678') && !output.includes(encodeURIComponent(redis.password)));
    }
  } finally {
    await Promise.all([redis.close(), tokens.close()]);
  }
});
