// The shared token cache is loaded only when configured: the CLI bundle leaves ioredis to
// node_modules (scripts/bundle.mjs) and imports it, with the cache's own code, only when the
// config has a `tokenCache`. A sidecar without one never loads it (start-up time, idle RSS); one
// with it loads it and shares its token through the cache.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempFiles } from '../helpers/config.js';
import { run } from '../helpers/process.js';
import { encryptionKeys, redisMissing, startRedis } from '../helpers/redis.js';
import { freePort, startScriptedTokenServer } from '../helpers/servers.js';
import { root } from './files.js';

// Printed at exit: how many of ioredis's files the process loaded.
const preload = `data:text/javascript,${encodeURIComponent(
  "import { createRequire } from 'node:module'; const cache = createRequire(process.cwd() + '/').cache; process.on('exit', () => process.stderr.write('IOREDIS ' + Object.keys(cache).filter((file) => file.includes('/node_modules/ioredis/')).length + '\\n'));",
)}`;

/** Runs the bundle with this config, sends one request through it, stops it; its answer and the number of ioredis files it loaded. */
async function oneRequest(extra: string): Promise<{ status: number; ioredisFiles: number }> {
  const tokens = await startScriptedTokenServer();
  const port = await freePort();
  const config = tempFiles('bsc-bundle-cache-').file(
    'sidecar.yaml',
    `listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: 0 }
${extra}
routes:
  - name: plain
    upstream: http://127.0.0.1:9
    auth: { tokenUrl: ${tokens.url}, clientId: c, clientSecret: s }
`,
  );
  const sidecar = run(['--config', config], { NODE_OPTIONS: `--import=${preload}` });
  try {
    await sidecar.waitFor(/"msg":"token refreshed"/, 15_000);
    const response = await fetch(`http://127.0.0.1:${port}/thing`);
    await response.arrayBuffer();
    sidecar.child.kill('SIGTERM');
    await sidecar.exited;
    const line = /^IOREDIS (\d+)$/m.exec(sidecar.output());
    assert.ok(line, `no IOREDIS line:\n${sidecar.output()}`);
    return { status: response.status, ioredisFiles: Number(line[1]) };
  } finally {
    sidecar.child.kill('SIGKILL');
    await tokens.close();
  }
}

test('the bundle does not inline ioredis', { skip: !existsSync(join(root, 'dist/main.js.map')) && 'dist/main.js.map is missing: npm run build first' }, () => {
  const { sources } = JSON.parse(readFileSync(join(root, 'dist/main.js.map'), 'utf8')) as { sources: string[] };
  assert.deepEqual(sources.filter((source) => /node_modules\/(ioredis|@ioredis)\//.test(source)), []);
});

test('without tokenCache the bundle never loads ioredis', async () => {
  const result = await oneRequest('');
  assert.equal(result.status, 502); // nothing listens upstream: the request went out with its token
  assert.equal(result.ioredisFiles, 0);
});

test('with tokenCache it loads ioredis from node_modules and uses the cache', { skip: redisMissing }, async () => {
  const redis = await startRedis();
  try {
    const keyFile = tempFiles('bsc-bundle-cache-key-').file('key', encryptionKeys());
    const result = await oneRequest(`tokenCache: { url: "${redis.url}", encryptionKeyFile: ${keyFile} }`);
    assert.equal(result.status, 502);
    assert.ok(result.ioredisFiles > 0, 'ioredis was loaded');
    assert.equal(Object.keys(await redis.contents()).filter((key) => key.startsWith('bearer-sidecar:token:')).length, 1, 'the token went to the cache');
  } finally {
    await redis.close();
  }
});
