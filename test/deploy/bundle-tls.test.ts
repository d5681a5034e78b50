// The CLI bundle loads nothing of TLS until a route uses it (scripts/bundle.mjs, lazyTlsModules;
// src/tls.ts): node:tls, node:https and node:http2 cost ~10 MB of RSS on Node 24 (issue 14). A sidecar
// whose token endpoint and upstream are http:// never loads them; one whose are https:// loads them
// at its first use and works, through the same bundle.

import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { makeTestPki, opensslMissing, startHttpsRecorder } from '../helpers/certs.js';
import { tempFiles } from '../helpers/config.js';
import { run } from '../helpers/process.js';
import { freePort, startScriptedTokenServer } from '../helpers/servers.js';

// Printed at exit: which of the three modules the process loaded.
const preload = `data:text/javascript,${encodeURIComponent(
  "process.on('exit', () => process.stderr.write('LOADED ' + JSON.stringify(process.moduleLoadList.filter((m) => /^NativeModule (tls|https|http2)$/.test(m)).map((m) => m.slice(13))) + '\\n'));",
)}`;

/** Runs the bundle with this config, sends one request through it, stops it; its answer and the modules it loaded. */
async function oneRequest(yaml: (port: number) => string): Promise<{ status: number; body: string; loaded: string[] }> {
  const port = await freePort();
  const config = tempFiles('bsc-bundle-tls-').file('sidecar.yaml', yaml(port));
  const sidecar = run(['--config', config], { NODE_OPTIONS: `--import=${preload}` });
  try {
    await sidecar.waitFor(/"listening"|listening on/i, 15_000);
    const response = await fetch(`http://127.0.0.1:${port}/thing`);
    const body = await response.text();
    sidecar.child.kill('SIGTERM');
    await sidecar.exited;
    const line = /^LOADED (.*)$/m.exec(sidecar.output());
    assert.ok(line, `no LOADED line:\n${sidecar.output()}`);
    return { status: response.status, body, loaded: JSON.parse(line[1] as string) as string[] };
  } finally {
    sidecar.child.kill('SIGKILL');
  }
}

test('with http:// token endpoint and upstream, the bundle never loads node:tls, node:https or node:http2', async () => {
  const tokens = await startScriptedTokenServer();
  const seen: (string | undefined)[] = [];
  const upstream = createHttpServer((req, res) => {
    seen.push(req.headers.authorization);
    res.end('ok');
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  try {
    const result = await oneRequest(
      (port) => `listen: { host: 127.0.0.1, port: ${port} }
routes:
  - name: plain
    upstream: http://127.0.0.1:${(upstream.address() as AddressInfo).port}
    auth: { tokenUrl: ${tokens.url}/token, clientId: c, clientSecret: s }
`,
    );
    assert.equal(result.status, 200, result.body);
    assert.match(seen[0] ?? '', /^Bearer ./);
    assert.deepEqual(result.loaded, []);
  } finally {
    upstream.close();
    await tokens.close();
  }
});

test('with https:// token endpoint and upstream (a private CA), the bundle loads TLS when it needs it and works', { skip: opensslMissing }, async () => {
  const pki = makeTestPki();
  const tokens = await startScriptedTokenServer();
  const tlsTokens = createHttpsServer({ key: pki.server.key, cert: pki.server.cert }, (req, res) => tokens.server.emit('request', req, res));
  await new Promise<void>((resolve) => tlsTokens.listen(0, '127.0.0.1', resolve));
  const upstream = await startHttpsRecorder(pki.server);
  try {
    const result = await oneRequest(
      (port) => `listen: { host: 127.0.0.1, port: ${port} }
routes:
  - name: secure
    upstream: ${upstream.url}
    tls: { caFile: ${pki.caFile} }
    auth:
      tokenUrl: https://127.0.0.1:${(tlsTokens.address() as AddressInfo).port}/token
      clientId: c
      clientSecret: s
      tls: { caFile: ${pki.caFile} }
`,
    );
    assert.equal(result.status, 200, result.body);
    assert.deepEqual(JSON.parse(result.body), { path: '/thing' });
    assert.match(upstream.saw[0] ?? '', /^Bearer ./);
    assert.ok(result.loaded.includes('tls'), `loaded: ${result.loaded.join(', ')}`);
  } finally {
    tlsTokens.close();
    await upstream.close();
    await tokens.close();
  }
});
