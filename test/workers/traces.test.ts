// `workers: 2` with traces on (OTEL_* variables, read by the primary): every worker sets up its own
// exporter from the config the primary sends, and exports the spans of the requests it served;
// the token grant's span comes from the primary, which holds the token sources. The collector's
// headers (OTEL_EXPORTER_OTLP_HEADERS, a key) reach each worker's exporter with the config, never
// through a worker's environment. SIGTERM: each process exports what it still holds before it exits.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { audit } from '../helpers/audit.js';
import { spanKind, startOtlpReceiver } from '../helpers/otlp.js';
import { clientSecret, get, procText, requestsByWorker, startScriptedTokenServer, startTree, startUpstream } from './rig.js';

const collectorKey = 'collector-key-91d2e';

test('workers: 2 — each worker exports its own server and upstream spans, the primary its grant span; the collector key comes with the config', async () => {
  audit.addSecret(clientSecret);
  const [tokens, upstream, receiver] = await Promise.all([startScriptedTokenServer(), startUpstream(), startOtlpReceiver()]);
  const tree = await startTree({
    upstream: upstream.url,
    tokenUrl: tokens.url,
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_HEADERS: `authorization=Bearer%20${collectorKey}`, OTEL_SERVICE_NAME: 'workers-sidecar' },
  });
  let pids: Record<string, number> = {};
  try {
    pids = await tree.workerPids();
    for (const pid of Object.values(pids)) assert.ok(!procText(pid).includes(collectorKey), 'the collector key is not in a worker\'s environment');
    // New connections until both workers have served some.
    for (let i = 0; i < 60 && Object.keys(requestsByWorker(tree)).length < 2; i++) assert.equal((await get(tree, `/w/${i}`)).status, 200);
    assert.deepEqual(Object.keys(requestsByWorker(tree)).sort(), Object.keys(pids).sort());
  } finally {
    assert.equal(await tree.stop(), 0, tree.sidecar.output());
    await Promise.all([tokens.close(), upstream.close()]);
  }
  await receiver.close();
  // Nothing secret in any span, nor the collector's key in the log.
  audit.addSecret(collectorKey);
  audit.addOutput([...receiver.bodies, tree.sidecar.output()]);
  audit.assertNothingLeaked();

  const servers = receiver.spans.filter((span) => span.kind === spanKind.server);
  const served = requestsByWorker(tree);
  for (const [worker, pid] of Object.entries(pids)) {
    const own = servers.filter((span) => span.resource['bearer_sidecar.worker'] === worker);
    assert.equal(own.length, served[worker], `worker ${worker}: one server span per request it served`);
    assert.ok(own.every((span) => span.resource['process.pid'] === pid && span.resource['service.name'] === 'workers-sidecar'));
    const clients = receiver.spans.filter((span) => span.kind === spanKind.client && span.name === 'GET' && span.resource['bearer_sidecar.worker'] === worker);
    assert.equal(clients.length, own.length);
  }
  const grants = receiver.spans.filter((span) => span.name === 'token grant');
  assert.equal(grants.length, 1);
  assert.equal(grants[0]?.resource['process.pid'], tree.sidecar.child.pid, 'the grant is the primary\'s');
  assert.equal(grants[0]?.resource['bearer_sidecar.worker'], undefined);
  assert.ok(receiver.requests.length >= 3 && receiver.requests.every((request) => request.authorization === `Bearer ${collectorKey}`), 'every export carries the collector\'s header');
});
