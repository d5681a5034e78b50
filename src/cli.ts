#!/usr/bin/env node
// The executable (bin, the image's ENTRYPOINT): turns on Node's compile cache, then runs the CLI
// in main.ts.
//
// Start-up time is mostly module loading (issue 7), so `npm run build` replaces tsc's dist/main.js
// with a single-file bundle of main.ts and all its dependencies (esbuild; see
// scripts/bundle.mjs): one file to read and compile instead of several hundred to resolve, read and
// compile. The rest of dist/ stays tsc's per-module output (the library, dist/index.js, and the
// demo).
//
// The compile cache (Node 22.1+; absent on 20, hence the check) keeps V8's code cache of the
// bundle in dist/.compile-cache, so a later start skips most of its compilation. It has to be
// turned on before the bundle is compiled, so here, in a file of its own. The image build fills
// it (Dockerfile); elsewhere the first run does, when dist/ is writable, and it is simply off when
// it is not.

import module from 'node:module';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';

(module as { enableCompileCache?: (directory?: string) => unknown }).enableCompileCache?.(fileURLToPath(new URL('.compile-cache', import.meta.url)));

// undici parses HTTP with llhttp, compiled to WebAssembly. V8 re-compiles it with its optimising
// compiler in the background once it has parsed a response or two, and that burst leaves ~10 MB
// of malloc arena resident in about half the starts (idle RSS 70 or 80 MB at random; BENCHMARKS.md).
// llhttp stays on V8's baseline WebAssembly code instead: 70 MB every start; CPU per request the
// same within noise in an A/B (the parser is ~3 % of it). Regular V8 flags (not testing ones),
// read when a module is compiled, so set before anything loads undici.
setFlagsFromString('--no-wasm-dynamic-tiering');
setFlagsFromString('--no-wasm-tier-up');

await import('./main.js');
