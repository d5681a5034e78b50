// Tests that drive a system tool (promtool, prometheus, ...) for real. In CI (CI=true) a missing
// tool is a failure: .ci/run installs them all. On a developer's machine without it, the test is
// skipped and says by name what is missing.
//
// Some of these tests prove files and tools that do not depend on the Node runtime (rule files,
// the dashboard, a Prometheus scraping the sidecar): scripts/run-tests.mjs names, in
// BEARER_SIDECAR_TEST_ONCE_ON, the one runtime of the suite that runs them (Node 24, the image's,
// when the suite runs on both); on the other they are skipped, saying where they ran.

import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The tool's path on PATH, or undefined. */
export function which(tool: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const path = join(dir, tool);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * A node:test `skip` value for a test that needs `tools` and runs once per suite: false when it
 * should run; else the reason. Throws in CI when a tool is missing.
 */
export function skipUnlessTools(...tools: string[]): string | false {
  const onceOn = process.env.BEARER_SIDECAR_TEST_ONCE_ON;
  if (onceOn && onceOn !== process.version) return `runs once per suite: on Node ${onceOn}`;
  const missing = tools.filter((tool) => !which(tool));
  if (missing.length === 0) return false;
  const message = `${missing.join(', ')} not found on PATH (Debian package prometheus; .ci/run installs it)`;
  if (process.env.CI === 'true') throw new Error(`CI: ${message}`);
  return `skipped: ${message}`;
}
