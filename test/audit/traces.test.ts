// Every fault again with traces on (http/json to a real OTLP receiver on 127.0.0.1, for every
// in-process sidecar that configures none), at trace log level: no client secret, private key,
// client assertion or issued token appears in any exported span, nor in the logs and answers the
// files check themselves. Spans carry codes, never messages (tracing/otel.ts).

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { audit } from '../helpers/audit.js';
import { startOtlpReceiver } from '../helpers/otlp.js';

const receiver = await startOtlpReceiver();
audit.logLevel = 'trace';
audit.tracesTo = receiver.url;
after(() => receiver.close());
await import('../proxy/token-faults.test.js');
await import('../proxy/replay.test.js');
await import('../proxy/upstream-faults.test.js');
await import('../token/client-auth.test.js');

test('the sidecars above exported their spans, failed grants among them, and no secret is in any', () => {
  assert.ok(receiver.spans.some((span) => span.kind === 2), 'server spans');
  assert.ok(receiver.spans.some((span) => span.name === 'token grant' && span.attributes['bearer_sidecar.token.outcome'] === 'failure'), 'failed grants');
  assert.ok(receiver.spans.some((span) => span.kind === 2 && span.attributes['error.type'] === 'BSC_TOKEN_UNAVAILABLE'), 'the 503s name their code');
  audit.assertNothingLeaked(receiver.bodies);
});
