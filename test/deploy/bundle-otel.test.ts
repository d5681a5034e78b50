// Traces cost nothing when they are off: the CLI bundle (dist/cli.js) keeps the OpenTelemetry SDK
// out of itself (scripts/bundle.mjs: external, imported with import() by src/tracing/otel.ts only
// when the config turns traces on; @opentelemetry/api is bundled as it was before traces, for
// prom-client). A sidecar without traces loads no module of @opentelemetry from node_modules, and the
// upstream sees the caller's traceparent as it came; one with OTEL_EXPORTER_OTLP_ENDPOINT set loads
// them from node_modules, continues the caller's trace, and exports its spans before it exits on SIGTERM.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { closeServer } from '../../src/demo/token-server.js';
import { tempFiles } from '../helpers/config.js';
import { spanKind, startOtlpReceiver } from '../helpers/otlp.js';
import { run } from '../helpers/process.js';
import { freePort, startScriptedTokenServer } from '../helpers/servers.js';

// Printed at exit: the files of @opentelemetry packages the process loaded (they are CommonJS: an
// import() of one goes through the require cache).
const preload = `data:text/javascript,${encodeURIComponent(
  "import { createRequire } from 'node:module'; const require = createRequire(process.cwd() + '/'); process.on('exit', () => process.stderr.write('OTEL ' + JSON.stringify(Object.keys(require.cache).filter((path) => path.includes('@opentelemetry'))) + '\\n'));",
)}`;

const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

async function oneRequest(env: Record<string, string>): Promise<{ loaded: string[]; seen: IncomingHttpHeaders; output: string }> {
  const tokens = await startScriptedTokenServer();
  let seen: IncomingHttpHeaders = {};
  const upstream = createServer((req, res) => {
    seen = req.headers;
    res.end('ok');
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const port = await freePort();
  const config = tempFiles('bsc-bundle-otel-').file(
    'sidecar.yaml',
    `listen: { host: 127.0.0.1, port: ${port} }
admin: { port: 0 }
routes:
  - name: plain
    upstream: http://127.0.0.1:${(upstream.address() as AddressInfo).port}
    auth: { tokenUrl: ${tokens.url}, clientId: c, clientSecret: s }
`,
  );
  const sidecar = run(['--config', config], { NODE_OPTIONS: `--import=${preload}`, ...env });
  try {
    // Loading the SDK from node_modules takes a while on a busy machine.
    await sidecar.waitFor(/"listening"/, 30_000);
    const response = await fetch(`http://127.0.0.1:${port}/thing`, { headers: { traceparent, tracestate: 'a=b' } });
    assert.equal(response.status, 200, await response.text());
    sidecar.child.kill('SIGTERM');
    assert.equal(await sidecar.exited, 0, sidecar.output());
    const line = /^OTEL (.*)$/m.exec(sidecar.output());
    assert.ok(line, `no OTEL line:\n${sidecar.output()}`);
    return { loaded: JSON.parse(line[1] as string) as string[], seen, output: sidecar.output() };
  } finally {
    sidecar.child.kill('SIGKILL');
    await Promise.all([tokens.close(), closeServer(upstream)]);
  }
}

test('the bundle holds no OpenTelemetry SDK: the packages are external and imported only by the tracing module', () => {
  const root = join(import.meta.dirname, '..', '..');
  const map = JSON.parse(readFileSync(join(root, 'dist', 'main.js.map'), 'utf8')) as { sources: string[] };
  // The API alone, as before traces: prom-client requires it at start.
  assert.deepEqual(map.sources.filter((source) => source.includes('@opentelemetry') && !source.includes('node_modules/@opentelemetry/api/')), []);
  assert.ok(map.sources.some((source) => source.endsWith('src/tracing/otel.ts')), 'the tracing module is in the bundle (lazily initialised)');
  assert.match(readFileSync(join(root, 'dist', 'main.js'), 'utf8'), /import\("@opentelemetry\/sdk-trace"\)/);
});

test('traces off (nothing configured): no @opentelemetry module is loaded and the upstream sees the caller\'s traceparent unchanged', async () => {
  const { loaded, seen } = await oneRequest({});
  assert.deepEqual(loaded, []);
  assert.equal(seen.traceparent, traceparent);
  assert.equal(seen.tracestate, 'a=b');
});

test('traces on (OTEL_EXPORTER_OTLP_ENDPOINT): OpenTelemetry is loaded from node_modules, the trace continues upstream, and SIGTERM exports the spans', async () => {
  const receiver = await startOtlpReceiver();
  try {
    const { loaded, seen, output } = await oneRequest({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    assert.ok(loaded.some((path) => path.includes('@opentelemetry/sdk-trace/')), `loaded: ${loaded.length} files`);
    assert.ok(loaded.some((path) => path.includes('@opentelemetry/exporter-trace-otlp-proto/')));
    assert.ok(!loaded.some((path) => path.includes('@opentelemetry/exporter-trace-otlp-http/')), 'only the exporter of the protocol in use');
    assert.match(output, /"tracing: exporting spans"/);
    const server = receiver.spans.find((span) => span.kind === spanKind.server);
    const client = receiver.spans.find((span) => span.kind === spanKind.client && span.name === 'GET');
    assert.ok(server && client, JSON.stringify(receiver.spans.map((span) => span.name)));
    assert.equal(server.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(client.parentSpanId, server.spanId);
    assert.equal(seen.traceparent, `00-4bf92f3577b34da6a3ce929d0e0e4736-${client.spanId}-01`);
    assert.equal(seen.tracestate, 'a=b');
    assert.equal(server.resource['service.version'], JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')).version);
  } finally {
    await receiver.close();
  }
});
