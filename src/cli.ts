#!/usr/bin/env -S node --max-semi-space-size=4
// The executable (bin, the image's ENTRYPOINT): turns on Node's compile cache, then runs the CLI
// in main.ts.
//
// The first line carries the node flags the sidecar runs with; they have to be on node's command
// line (V8 sizes its heap before any JavaScript runs: v8.setFlagsFromString has no effect on it).
// `env -S` splits them off `node` (coreutils env 8.30+, the image's Debian has it). The copies that
// do not run this file as an executable carry the same flags: the Dockerfile's ENTRYPOINT,
// package.json's `npm start`; test/deploy/node-flags.test.ts keeps them in step.
//
// --max-semi-space-size=4: V8's young generation at most 2 × 4 MB. Node 24's V8 grows it to
// 2 × 64 MB under load and keeps it, so a sidecar that idles at ~80 MB held ~170-230 MB after
// 10 s of 100 connections; with 4 MB it peaks at ~125 MB, for about the same CPU per request
// (issue 14; figures in docs/deployment.md, "Memory").
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
//
// It also sets the sidecar's V8 flags (v8-flags.ts), which have to be set before undici compiles
// its parser.

import module from 'node:module';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { sidecarV8Flags } from './v8-flags.js';

// Before any WebAssembly is compiled (see v8-flags.ts).
for (const flag of sidecarV8Flags(process.execArgv)) setFlagsFromString(flag);

(module as { enableCompileCache?: (directory?: string) => unknown }).enableCompileCache?.(fileURLToPath(new URL('.compile-cache', import.meta.url)));

await import('./main.js');
