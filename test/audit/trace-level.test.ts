// Every fault again, with every in-process sidecar logging at trace level (the fault files run at
// debug by default): each file ends by checking that no client secret, private key, client
// assertion or issued token appears in any log line, error body or /readyz (client-auth and
// discovery: private_key_jwt, tls_client_auth and discovery's failures; client assertions read
// from files, subject and actor tokens of token exchange, the entra-workload-identity preset). The real process is checked at trace in cli/shutdown.test.ts.
// Every in-process sidecar also adds its final /metrics text to the audit when it closes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { audit } from '../helpers/audit.js';

audit.logLevel = 'trace';
await import('../proxy/token-faults.test.js');
await import('../proxy/replay.test.js');
await import('../proxy/upstream-faults.test.js');
await import('../config/secret-rotation.test.js');
await import('../token/client-auth.test.js');
await import('../token/discovery.test.js');
await import('../token/client-assertion.test.js');
await import('../token/client-assertion-oidc.test.js');
await import('../token/token-exchange.test.js');
await import('../config/workload-identity.test.js');

test('every sidecar above ran at trace level, and debug detail was logged', () => {
  assert.deepEqual(audit.levelsUsed(), ['trace']);
  assert.ok(audit.linesAt('debug') > 0);
});
