#!/usr/bin/env node
// Bundles the CLI (src/main.ts and its dependencies) into dist/main.js, the file dist/cli.js runs:
// one file to read and compile at start instead of several hundred (issue 7, cold start). `undici`
// resolves to scripts/undici-slim.cjs, the part of undici the sidecar uses.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const slimUndici = fileURLToPath(new URL('undici-slim.cjs', import.meta.url));

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
  external: ['@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler', 'light-my-request'],
  plugins: [{ name: 'undici-slim', setup: (b) => b.onResolve({ filter: /^undici$/ }, () => ({ path: slimUndici })) }],
});
