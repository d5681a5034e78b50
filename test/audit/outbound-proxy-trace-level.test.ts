// The outbound proxy tests again, with every in-process sidecar logging at trace level: each file
// ends by checking that neither the proxy password (as written in the URL, decoded, or as the
// Proxy-Authorization it makes) nor a client secret or token appears in any log line, error body,
// /readyz, /metrics or `check` output. A file of its own beside trace-level.test.ts, so that
// neither takes too long on a loaded machine.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { audit } from '../helpers/audit.js';

audit.logLevel = 'trace';
await import('../outbound/proxy-routing.test.js');
await import('../outbound/proxy-failures.test.js');

test('every sidecar above ran at trace level, and debug detail was logged', () => {
  assert.deepEqual(audit.levelsUsed(), ['trace']);
  assert.ok(audit.linesAt('debug') > 0);
});
