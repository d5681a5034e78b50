import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { loadConfigFile } from '../../src/config/load.js';

const configDir = fileURLToPath(new URL('../../config/', import.meta.url));

test('every example in config/ is a valid config once its variables are set', () => {
  const secretFile = join(mkdtempSync(join(tmpdir(), 'bsc-examples-')), 'secret');
  writeFileSync(secretFile, 'example-secret\n');
  // Any ${VAR} an example reads gets a value; *_FILE variables point at a readable file.
  const env = new Proxy({} as NodeJS.ProcessEnv, {
    get: (_target, name) => (typeof name === 'string' ? (name.endsWith('_FILE') ? secretFile : name.endsWith('_URL') ? 'http://127.0.0.1:9000/token' : 'a-value-of-sixteen-plus-characters') : undefined),
  });
  // compose.*.yaml files are docker-compose overrides, not sidecar configs.
  const files = readdirSync(configDir).filter((f) => /\.ya?ml$|\.json$/.test(f) && !f.startsWith('compose.'));
  assert.ok(files.length >= 4);
  for (const file of files) {
    const config = loadConfigFile(join(configDir, file), { env });
    assert.ok(config.routes.length >= 1, file);
  }
});
