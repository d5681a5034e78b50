import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { loadConfigFile } from '../../src/config/load.js';

const configDir = fileURLToPath(new URL('../../config/', import.meta.url));

test('every example in config/ is a valid config once its variables are set', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bsc-examples-'));
  const secretFile = join(dir, 'secret');
  writeFileSync(secretFile, 'example-secret\n');
  writeFileSync(join(dir, 'client-secret'), 'example-secret\n'); // systemd.yaml: ${CREDENTIALS_DIRECTORY}/client-secret
  // shared-cache.yaml: the token cache's URL file and encryption key file.
  const cacheUrlFile = join(dir, 'token-cache-url');
  writeFileSync(cacheUrlFile, 'redis://:example-password@127.0.0.1:6379/0\n');
  const cacheKeyFile = join(dir, 'token-cache-key');
  writeFileSync(cacheKeyFile, `${Buffer.alloc(32, 7).toString('base64')}\n`);
  // Any ${VAR} an example reads gets a value; *_FILE variables point at a readable file, and
  // *_DIRECTORY ones at the directory that holds it.
  const value = (name: string) => {
    // Not an example's ${VAR}: OpenTelemetry's own variables, read whatever the file (config/tracing.ts), stay unset.
    if (name.startsWith('OTEL_')) return undefined;
    if (name === 'TOKEN_CACHE_URL_FILE') return cacheUrlFile;
    if (name === 'TOKEN_CACHE_KEY_FILE') return cacheKeyFile;
    if (name.endsWith('_FILE')) return secretFile;
    if (name.endsWith('_DIRECTORY')) return dir;
    return name.endsWith('_URL') ? 'http://127.0.0.1:9000/token' : 'a-value-of-sixteen-plus-characters';
  };
  const env = new Proxy({} as NodeJS.ProcessEnv, { get: (_target, name) => (typeof name === 'string' ? value(name) : undefined) });
  // compose.*.yaml files are docker-compose overrides, not sidecar configs.
  const files = readdirSync(configDir).filter((f) => /\.ya?ml$|\.json$/.test(f) && !f.startsWith('compose.'));
  assert.ok(files.length >= 4);
  for (const file of files) {
    const config = loadConfigFile(join(configDir, file), { env });
    assert.ok(config.routes.length >= 1, file);
  }
});
