#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=32768 node --max-semi-space-size=4
// The executable (bin, the image's ENTRYPOINT): turns on Node's compile cache, then runs the CLI
// in main.ts.
//
// The first line carries the node flags the sidecar runs with, and an environment variable for
// glibc's malloc; both have to be there before the process starts (V8 sizes its heap before any
// JavaScript runs: v8.setFlagsFromString has no effect on it; malloc reads its settings at its
// first call). `env -S` splits the line into words (coreutils env 8.30+; the image's Debian has
// it). The copies that do not run this file as an executable carry the same settings: the
// Dockerfile (ENV and ENTRYPOINT) and package.json's `npm start`; test/deploy/node-flags.test.ts
// keeps them in step. Measured on Node 24 with 100 connections of small requests (issue 14;
// docs/deployment.md, "Memory"):
//
// --max-semi-space-size=4: V8's young generation at most 2 × 4 MB. Node 24's V8 grows it to
// 2 × 64 MB under load and keeps it: a sidecar that idles at ~80 MB held ~165-180 MB after 10 s
// of 100 connections; with 4 MB it peaks at ~115-130 MB. It also fixes the size in a container:
// under a memory limit of 512 MiB or less V8 picks 2 × 1 MB by itself, which doubles the CPU
// time of garbage collection.
//
// MALLOC_MMAP_THRESHOLD_=32768: blocks of 32 KiB and more (the 64 KiB socket read buffers) are
// mapped and unmapped on their own instead of being carved out of malloc's arenas, where the
// freed ones left ~20 MB resident after a load; 30 s after the load RSS is ~90 MB instead of
// ~108. It costs about one mmap/munmap pair per two requests. Ignored by other C libraries
// (musl).
//
// The idle collection (idle-gc.ts) gives back the heap a burst grew; the stream collection
// (stream-gc.ts) frees a long body's chunks as they pass.

import module from 'node:module';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { sidecarV8Flags } from './runtime/v8-flags.js';

// Before any WebAssembly is compiled (see v8-flags.ts).
for (const flag of sidecarV8Flags(process.execArgv)) setFlagsFromString(flag);

(module as { enableCompileCache?: (directory?: string) => unknown }).enableCompileCache?.(fileURLToPath(new URL('.compile-cache', import.meta.url)));

await import('./main.js');
