#!/usr/bin/env node
// Bundles the CLI (src/main.ts and its dependencies) into dist/main.js, the file dist/cli.js runs:
// one file to read and compile at start instead of several hundred (issue 7, cold start). `undici`
// resolves to scripts/undici-slim.cjs, the part of undici the sidecar uses.
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const slimUndici = fileURLToPath(new URL('undici-slim.cjs', import.meta.url));

// Nothing TLS is loaded until something uses it. fastify and prom-client require node:https and
// node:http2 at start, ws (loaded for a WebSocket route) node:tls and node:https, and undici's
// client requires its HTTP/2 connector (which requires node:http2); all of them use these only to
// serve or call https:// or h2. Loading them loads node:tls, ~10 MB of RSS on Node 24 that a sidecar
// with http:// upstreams and token endpoints never needs (issue 14). Each such require gets a
// stand-in that loads the real module at the first use of a property; undici's connector, a
// function, is loaded at the first call.
const lazyTlsModules = {
  name: 'lazy-tls-modules',
  setup(b) {
    b.onResolve({ filter: /^(node:)?(tls|https|http2)$/ }, (args) =>
      args.kind === 'require-call' && args.namespace === 'file' ? { path: `node:${args.path.replace(/^node:/, '')}`, namespace: 'lazy-builtin' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => ({
      loader: 'js',
      contents: `let real;
const load = () => (real ??= require(${JSON.stringify(args.path)}));
module.exports = new Proxy({}, {
  get: (_, key) => load()[key],
  set: (_, key, value) => Reflect.set(load(), key, value),
  deleteProperty: (_, key) => Reflect.deleteProperty(load(), key),
  defineProperty: (_, key, descriptor) => Reflect.defineProperty(load(), key, descriptor),
  preventExtensions: () => false,
  has: (_, key) => key in load(),
  ownKeys: () => Reflect.ownKeys(load()),
  getOwnPropertyDescriptor: (_, key) => {
    const descriptor = Reflect.getOwnPropertyDescriptor(load(), key);
    return descriptor && { ...descriptor, configurable: true };
  },
});`,
    }));
    // The stand-in's own name (the real file's path would make it look like a second copy of undici in the source map).
    b.onResolve({ filter: /^\.\/client-h2\.js$/ }, (args) =>
      args.namespace === 'file' && args.importer.endsWith(join('undici', 'lib', 'dispatcher', 'client.js')) ? { path: 'undici-client-h2', namespace: 'lazy-function', pluginData: join(dirname(args.importer), 'client-h2.js') } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy-function' }, (args) => ({
      loader: 'js',
      resolveDir: dirname(args.pluginData),
      contents: `module.exports = function connectH2(...args) { return require('./client-h2.js').apply(this, args); };`,
    }));
  },
};

// Node's built-in modules by require(), not by an ES import: an ES import of a built-in builds its
// namespace by reading every export, and some exports are getters that load or build a lot on first
// read: node:http's WebSocket, CloseEvent and MessageEvent load Node's own copy of undici (Node 22.5+),
// node:tls's rootCertificates parses every root certificate. On Node 24 `import 'node:http'` alone
// costs 14 MB of RSS that `require('node:http')` does not (issue 14). esbuild turns each such import
// into a require() whose exports are read where they are used.
const builtinsByRequire = {
  name: 'builtins-by-require',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => (args.kind === 'import-statement' ? { path: args.path, namespace: 'builtin' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});`, loader: 'js' }));
  },
};

/** What src/tracing/otel.ts imports but @opentelemetry/api (test/deploy/bundle-otel.test.ts checks that none is bundled). */
const otelExternals = ['@opentelemetry/sdk-trace', '@opentelemetry/core', '@opentelemetry/resources', '@opentelemetry/semantic-conventions', '@opentelemetry/exporter-trace-otlp-proto', '@opentelemetry/exporter-trace-otlp-http'];

await build({
  entryPoints: ['src/main.ts'],
  outfile: 'dist/main.js',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20.18',
  // Whitespace and syntax only: full minification renamed classes (names in logs) and cost more CPU per request here.
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'external',
  sourcemap: true,
  sourcesContent: false,
  logLevel: 'warning',
  // CommonJS dependencies call require(); an ES module bundle has none of its own.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  // Never loaded by the CLI: fastify's schema compilers (src/no-schemas.ts) and its inject()
  // helper (tests only). Left to node_modules, should anything ever ask for them.
  // The OpenTelemetry SDK and exporters (traces, src/tracing/otel.ts) stay in node_modules too: they
  // are imported with import() only when the config turns traces on, so a sidecar without traces
  // neither loads nor parses them. @opentelemetry/api is bundled, as it always was: prom-client
  // requires it at start (its CPU metric's exemplars), and the SDK shares its global state.
  // And ioredis, imported only by the shared token cache (src/token/shared-cache/), itself imported
  // only when a config has a tokenCache: left to node_modules (a dependency of the package and in
  // the image), so a sidecar without one neither loads nor reads it (test/deploy/bundle-cache.test.ts).
  external: ['@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler', 'light-my-request', 'ioredis', ...otelExternals],
  plugins: [{ name: 'undici-slim', setup: (b) => b.onResolve({ filter: /^undici$/ }, () => ({ path: slimUndici })) }, lazyTlsModules, builtinsByRequire],
});

// dist/cli.js (tsc's output) runs as a command too, through its first line (`#!/usr/bin/env node`),
// as npm's bin link makes it; the tests run it so, with GNU and BusyBox env.
chmodSync('dist/cli.js', 0o755);
