// The CLI bundle (scripts/bundle.mjs) maps `undici` to scripts/undici-slim.cjs, the part of undici
// the sidecar uses. A name imported from undici in src/ but missing there would be undefined only
// in the bundle, so: every name src/ imports is exported, it is undici's own object, and the one
// function the slim module defines itself (request) behaves like undici's.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import * as undici from 'undici';

const require = createRequire(import.meta.url);
const root = join(import.meta.dirname, '..', '..');
const slim = require(join(root, 'scripts', 'undici-slim.cjs')) as Record<string, unknown>;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : []));
}

/** Value (not type-only) names imported from 'undici' in src/, but for src/demo (not in the bundle: `npm run demo` runs tsc's output). */
function undiciImports(): Set<string> {
  const names = new Set<string>();
  for (const file of sourceFiles(join(root, 'src')).filter((path) => !path.includes(`${join('src', 'demo')}`))) {
    for (const match of readFileSync(file, 'utf8').matchAll(/import\s+(type\s+)?\{([^}]*)\}\s+from\s+'undici'/g)) {
      if (match[1]) continue;
      for (const part of (match[2] as string).split(',')) {
        const name = part.trim();
        if (name && !name.startsWith('type ')) names.add(name.split(/\s+as\s+/)[0] as string);
      }
    }
    assert.doesNotMatch(readFileSync(file, 'utf8'), /import\s+\w+\s*(,|from)\s*[^;]*'undici'/, `${file}: import named exports from undici, so the bundle test can see them`);
  }
  return names;
}

test('every name src/ imports from undici is in the slim module, and is undici’s own', () => {
  const names = undiciImports();
  assert.ok(names.has('Pool') && names.has('request'), `found: ${[...names].join(', ')}`);
  for (const name of names) {
    assert.ok(name in slim, `scripts/undici-slim.cjs does not export ${name}`);
    if (name !== 'request') assert.equal(slim[name], (undici as Record<string, unknown>)[name], `${name} is undici's own`);
  }
  assert.equal(typeof (undici.Pool.prototype as unknown as Record<string, unknown>).request, 'function', 'dispatchers have request()');
});

test('the slim request(): a POST with headers, body, timeouts and a dispatcher, as undici’s', async () => {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ method: req.method, url: req.url, type: req.headers['content-type'], body })));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const agent = new undici.Agent();
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/oauth2/token?x=1`;
    const request = slim.request as typeof undici.request;
    const response = await request(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials', headersTimeout: 1000, bodyTimeout: 1000, dispatcher: agent });
    assert.equal(response.statusCode, 201);
    assert.deepEqual(await response.body.json(), { method: 'POST', url: '/oauth2/token?x=1', type: 'application/x-www-form-urlencoded', body: 'grant_type=client_credentials' });
  } finally {
    await agent.close();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('the bundle leaves out what the CLI never runs: fastify’s schema compilers and inject(), zod’s locales, the in-process library', () => {
  const map = JSON.parse(readFileSync(join(root, 'dist', 'main.js.map'), 'utf8')) as { sources: string[] };
  const bundled = (pkg: string) => map.sources.filter((source) => source.includes(`node_modules/${pkg}/`));
  // The Fastify plugin's forwarding (a peer dependency of bearer-sidecar/fastify) is not the sidecar's.
  for (const pkg of ['ajv', '@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler', 'light-my-request', '@fastify/http-proxy', '@fastify/reply-from']) {
    assert.deepEqual(bundled(pkg), [], `${pkg} is not in dist/main.js`);
  }
  // fastify's error serializer uses fast-json-stringify's small runtime, not its compiler.
  assert.deepEqual(bundled('fast-json-stringify').filter((source) => !source.includes('/lib/serializer.js') && !source.includes('/lib/v8.js')), [], 'no fast-json-stringify compiler');
  assert.deepEqual(bundled('zod/v4/locales').filter((source) => !/\/(en|index)\.js$/.test(source)), [], 'only the English zod locale');
  assert.deepEqual(map.sources.filter((source) => /\/src\/(fastify|library)\//.test(source)), [], 'nor the plugin, createTokenSource or the interceptor');
  assert.ok(bundled('fastify').length > 0 && bundled('zod').length > 0, 'the source map lists bundled packages');
});
