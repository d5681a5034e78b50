#!/usr/bin/env node
// The executable (bin, `node dist/cli.js`, the image's ENTRYPOINT, npm start, the systemd unit):
// applies the sidecar's runtime settings to its own process (runtime/settings.ts defines them,
// runtime/launch.ts applies them: a re-execution with the node flags and variables it lacks,
// keeping the PID), turns on Node's compile cache, then runs the CLI in main.ts. Nothing before
// the settings loads anything heavy, so a re-execution costs only Node's own start.

import module from 'node:module';
import { fileURLToPath } from 'node:url';
import { catchEarlyHangups } from './runtime/early-hangups.js';
import { applyRuntimeSettings } from './runtime/launch.js';

// First: a SIGHUP from here on is kept for the CLI, not the end of the process (early-hangups.ts).
catchEarlyHangups();

applyRuntimeSettings();

(module as { enableCompileCache?: (directory?: string) => unknown }).enableCompileCache?.(fileURLToPath(new URL('.compile-cache', import.meta.url)));

await import('./main.js');
