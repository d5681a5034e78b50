// Runs every test/**/*.test.ts with Node's test runner (TypeScript through tsx). Node 20's
// runner takes no glob patterns, so the files are listed here. Extra arguments are passed on,
// e.g. `npm test -- --test-name-pattern=refresh`.

import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

function find(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return find(path);
    return entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

const args = process.argv.slice(2);
const explicit = args.filter((a) => a.endsWith('.test.ts'));
const files = explicit.length > 0 ? explicit : find('test').sort();
const options = args.filter((a) => !a.endsWith('.test.ts'));
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=4', '--test-timeout=120000', ...options, ...files],
  { stdio: 'inherit', env: { ...process.env, NODE_NO_WARNINGS: '1' } },
);
process.exit(result.status ?? 1);
