// The docs (README.md and docs/*.md) name every environment variable and every config field the
// schema accepts, so they cannot fall behind the code.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { envVariables } from '../../src/config/env.js';
import { watchConfigVariable } from '../../src/config/index.js';
import { configSchema } from '../../src/config/schema.js';
import { tuningVariable } from '../../src/runtime/settings.js';

const docsDir = new URL('../../docs/', import.meta.url);
const readme = [new URL('../../README.md', import.meta.url), ...readdirSync(docsDir).filter((f) => f.endsWith('.md')).map((f) => new URL(f, docsDir))]
  .map((file) => readFileSync(file, 'utf8'))
  .join('\n');

test('the docs name every BEARER_SIDECAR_* variable that --help lists', () => {
  const missing = envVariables.map((v) => v.name).filter((name) => !readme.includes(name));
  assert.deepEqual(missing, []);
  assert.ok(readme.includes('BEARER_SIDECAR_CONFIG'));
  assert.ok(readme.includes(watchConfigVariable));
  assert.ok(readme.includes(tuningVariable));
});

test('the docs name every config field of the schema', () => {
  const fields = new Set<string>();
  const walk = (schema: unknown): void => {
    const def = (schema as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
    if (!def) return;
    if (def.type === 'object') {
      for (const [key, value] of Object.entries(def.shape as Record<string, unknown>)) {
        fields.add(key);
        walk(value);
      }
    }
    for (const key of ['innerType', 'in', 'out', 'element', 'schema']) if (def[key]) walk(def[key]);
    if (Array.isArray(def.options)) for (const option of def.options) walk(option);
  };
  walk(configSchema);
  assert.ok(fields.size > 30, `walked ${fields.size} fields`);
  const missing = [...fields].filter((field) => !readme.includes(field));
  assert.deepEqual(missing, []);
});
