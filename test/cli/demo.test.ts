import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { run } from '../helpers/process.js';
import { freePort } from '../helpers/servers.js';

test('npm run demo: token endpoint, echo upstream and sidecar start from one command and show the injected header', async () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
  assert.match(pkg.scripts.demo ?? '', /node dist\/demo\/run\.js$/);
  const demo = run(['--once'], { BEARER_SIDECAR_PORT: String(await freePort()), BEARER_SIDECAR_ADMIN_PORT: String(await freePort()) }, fileURLToPath(new URL('../../dist/demo/run.js', import.meta.url)));
  const code = await demo.exited;
  const output = demo.output();
  assert.equal(code, 0, output);
  assert.match(output, /without the sidecar: .* -> 401/);
  assert.match(output, /through the sidecar: .* -> 200/);
  assert.match(output, /authorization: Bearer ey/);
  assert.match(output, /GET \/api\/hello\?from=demo/);
});
