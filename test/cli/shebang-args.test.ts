// The benchmark starts the sidecar the way the shipped bin starts it: the node binary under test,
// the node flags on dist/cli.js's shebang line, then dist/cli.js (scripts/bench/util.mjs,
// shebangNodeArgs). This checks that parser on the shebang forms the bin may have.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

type Parser = (text: string) => string[];
const util = (await import(new URL('../../scripts/bench/util.mjs', import.meta.url).href)) as { shebangNodeArgs: Parser };
const { shebangNodeArgs } = util;

test('a plain #!/usr/bin/env node gives no flags', () => {
  assert.deepEqual(shebangNodeArgs('#!/usr/bin/env node\n// The executable\n'), []);
  assert.deepEqual(shebangNodeArgs('#!/usr/bin/env node'), []);
});

test('env -S splits the rest of the line: every word after node is a flag, in order', () => {
  assert.deepEqual(shebangNodeArgs('#!/usr/bin/env -S node --a=1 --b\nimport x from "y";\n'), ['--a=1', '--b']);
  assert.deepEqual(shebangNodeArgs('#!/usr/bin/env -S node --max-semi-space-size=2  --max-old-space-size=96\n'), ['--max-semi-space-size=2', '--max-old-space-size=96']);
  assert.deepEqual(shebangNodeArgs('#!/usr/bin/env -Snode --b'), ['--b']);
});

test('an interpreter path given directly keeps its argument', () => {
  assert.deepEqual(shebangNodeArgs('#!/usr/local/bin/node --a=1\n'), ['--a=1']);
});

test('no shebang, or one that is not node, gives no flags', () => {
  assert.deepEqual(shebangNodeArgs('// no shebang\n#!/usr/bin/env -S node --a\n'), []);
  assert.deepEqual(shebangNodeArgs('#!/bin/sh -e\n'), []);
  assert.deepEqual(shebangNodeArgs(''), []);
});

test("the bin's own shebang parses to node flags only", () => {
  const flags = shebangNodeArgs(readFileSync(fileURLToPath(new URL('../../src/cli.ts', import.meta.url)), 'utf8'));
  for (const flag of flags) assert.match(flag, /^--[\w-]+(=\S+)?$/);
});
