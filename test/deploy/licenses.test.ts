// THIRD_PARTY_LICENSES is what scripts/licenses.mjs makes of the production dependency tree now,
// and it covers every third-party package the CLI bundle (dist/main.js) inlines.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { read, root } from './files.js';

const regenerate = 'regenerate it with `npm run licenses` (after npm ci) and commit it';

test('THIRD_PARTY_LICENSES is up to date with the production dependencies in package-lock.json', () => {
  const result = spawnSync(process.execPath, [join(root, 'scripts/licenses.mjs'), '--check'], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr.trim()); // the script's message says how to regenerate it
});

test('THIRD_PARTY_LICENSES lists every direct production dependency with a licence text', () => {
  const text = read('THIRD_PARTY_LICENSES');
  const { dependencies } = JSON.parse(read('package.json')) as { dependencies: Record<string, string> };
  for (const name of Object.keys(dependencies)) {
    const { version } = JSON.parse(read(`node_modules/${name}/package.json`)) as { version: string };
    const entry = text.split(/^={80}$/m).find((part) => part.startsWith(`\n${name} ${version}\n`));
    assert.ok(entry, `${name} ${version} is missing: ${regenerate}`);
    assert.match(entry, /^License: \S+/m);
    assert.ok(entry.split('\n').length > 6, `${name}: a licence text`);
  }
});

test('THIRD_PARTY_LICENSES covers every package inlined in the CLI bundle (dist/main.js)', { skip: !existsSync(join(root, 'dist/main.js.map')) && 'dist/main.js.map is missing: npm run build first' }, () => {
  const text = read('THIRD_PARTY_LICENSES');
  const { sources } = JSON.parse(readFileSync(join(root, 'dist/main.js.map'), 'utf8')) as { sources: string[] };
  const packageDirs = new Set(
    sources
      .filter((source) => source.includes('node_modules/'))
      .map((source) => {
        const at = source.lastIndexOf('node_modules/') + 'node_modules/'.length;
        const parts = source.slice(at).split('/');
        return source.slice(0, at).replace(/^(\.\.\/)+/, '') + parts.slice(0, parts[0]?.startsWith('@') ? 2 : 1).join('/');
      }),
  );
  assert.ok(packageDirs.size >= 10, `the bundle inlines third-party code (${packageDirs.size} packages)`);
  for (const dir of packageDirs) {
    const { name, version } = JSON.parse(read(`${dir}/package.json`)) as { name: string; version: string };
    assert.match(text, new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} ${version.replaceAll('.', '\\.')}$`, 'm'), `${name} ${version} (in the bundle) is missing: ${regenerate}`);
  }
});
