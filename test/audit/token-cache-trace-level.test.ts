// The shared token cache's tests in one process again, with every in-process sidecar logging at
// trace level: no cache password (as written, or URL-escaped), encryption key, client secret or
// token in any log line, error body, /readyz or /metrics, whether the cache works, refuses the
// password, is unreachable or never answers. (The fleet tests run their processes at trace level
// and check their output themselves.)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { audit } from '../helpers/audit.js';

audit.logLevel = 'trace';
await import('../token/shared-cache.test.js');
await import('../token/shared-cache-failing.test.js');

test('every sidecar above ran at trace level, and the cache logged trace detail', () => {
  assert.deepEqual(audit.levelsUsed(), ['trace']);
  assert.ok(audit.linesAt('trace') > 0);
  audit.assertNothingLeaked();
});
