// OpenTelemetry traces (issue 24): an in-process sidecar exports to a real OTLP/HTTP receiver on
// 127.0.0.1 (helpers/otlp.ts), in both encodings. A request carrying traceparent gives a server
// span in the caller's trace, a client span for the upstream call whose context the upstream
// receives (tracestate kept), and a token-grant span when the request waited for one; the sampler
// is honoured; nothing secret, no query string and no header value is exported. Off (no config),
// the upstream sees the caller's traceparent unchanged. That nothing of OpenTelemetry is loaded
// when off is checked on the CLI bundle (deploy/bundle-otel.test.ts); `workers: N` in
// workers/traces.test.ts.

import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { closeServer } from '../../src/demo/token-server.js';
import { audit } from '../helpers/audit.js';
import { spanKind, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp.js';
import { startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';
import { eventually, route, startSidecar, type TestSidecar } from '../helpers/sidecar.js';

const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
const callerSpan = '00f067aa0ba902b7';
const traceparent = `00-${callerTrace}-${callerSpan}-01`;
const tracestate = 'vendor1=opaque1,vendor2=opaque2';
/** A header value that must never reach a span. */
const callerSecret = 'caller-header-secret-7f3c';

interface Upstream {
  readonly url: string;
  readonly seen: IncomingHttpHeaders[];
  close(): Promise<void>;
}

async function startUpstream(): Promise<Upstream> {
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close: () => closeServer(server) };
}

const env = (extra: Record<string, string> = {}) => ({ PATH: process.env.PATH, ...extra });

interface Rig {
  readonly tokens: ScriptedTokenServer;
  readonly upstream: Upstream;
  readonly receiver: OtlpReceiver;
  /** Closes the sidecar (which exports what its batch still holds), then the servers. */
  close(sidecar: { close(): Promise<void> }): Promise<void>;
}

/** Every body exported in this file, for the audit at its end. */
const everyBody: string[] = [];
after(() => {
  // No client secret, issued token, JWT or header value in any span.
  audit.addOutput(everyBody);
  audit.addSecret(callerSecret);
  audit.assertNothingLeaked();
});

async function rig(): Promise<Rig> {
  const [tokens, upstream, receiver] = await Promise.all([startScriptedTokenServer(), startUpstream(), startOtlpReceiver()]);
  return {
    tokens,
    upstream,
    receiver,
    async close(sidecar) {
      await sidecar.close();
      everyBody.push(...receiver.bodies);
      await Promise.all([tokens.close(), upstream.close(), receiver.close()]);
    },
  };
}

const one = (spans: ReceivedSpan[], predicate: (span: ReceivedSpan) => boolean, what: string): ReceivedSpan => {
  const found = spans.filter(predicate);
  assert.equal(found.length, 1, `one ${what} span, got ${found.length}: ${JSON.stringify(spans.map((span) => span.name))}`);
  return found[0] as ReceivedSpan;
};

/** The caller's request: traceparent, tracestate, a query string and a header whose value is secret. */
const traced = (url: string) => fetch(`${url}/items/42?apikey=query-secret-1&x=2`, { headers: { traceparent, tracestate, 'x-caller-key': callerSecret } });

/**
 * Starts a sidecar with `raw` and `environment`, sends one traced request (which must get `status`),
 * and closes everything, which exports the spans. The token endpoint's first answer is held until
 * the request is in flight, so that the request waits for that grant (and the grant is in its trace).
 */
async function oneTracedRequest({ tokens, close }: Rig, raw: Record<string, unknown>, environment: NodeJS.ProcessEnv, status: number): Promise<void> {
  let sidecar: TestSidecar | undefined;
  const script = tokens.script;
  tokens.script = async (request) => {
    if (request.n === 1) {
      await eventually(async () => /requests_in_flight 1/.test((await sidecar?.sidecar.metrics.registry.metrics()) ?? ''), 10_000);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return script(request);
  };
  sidecar = await startSidecar(raw, { env: environment });
  try {
    const response = await traced(sidecar.proxyUrl);
    assert.equal(response.status, status);
    await response.text();
  } finally {
    await close(sidecar);
  }
}

function assertOneTrace({ receiver, upstream }: Rig): void {
  const spans = receiver.spans;
  const seen = upstream.seen[0] as IncomingHttpHeaders;
  const server = one(spans, (span) => span.kind === spanKind.server, 'server');
  const client = one(spans, (span) => span.kind === spanKind.client && span.name === 'GET', 'upstream client');
  const grant = one(spans, (span) => span.name === 'token grant', 'token grant');

  // The caller's trace continues: the server span's parent is the caller's span.
  assert.equal(server.traceId, callerTrace);
  assert.equal(server.parentSpanId, callerSpan);
  assert.equal(server.name, 'GET /*');
  assert.deepEqual(
    { ...server.attributes },
    { 'http.request.method': 'GET', 'url.path': '/items/42', 'url.scheme': 'http', 'http.route': '/*', 'bearer_sidecar.route': 'api', 'http.response.status_code': 200 },
  );
  // The upstream call is the server span's child, and the upstream's parent.
  assert.equal(client.traceId, callerTrace);
  assert.equal(client.parentSpanId, server.spanId);
  assert.equal(client.attributes['server.address'], '127.0.0.1');
  assert.equal(client.attributes['server.port'], Number(new URL(upstream.url).port));
  assert.equal(client.attributes['http.response.status_code'], 200);
  assert.equal(seen.traceparent, `00-${callerTrace}-${client.spanId}-01`);
  assert.equal(seen.tracestate, tracestate);
  // The grant this request waited for is part of its trace.
  assert.equal(grant.traceId, callerTrace);
  assert.equal(grant.parentSpanId, server.spanId);
  assert.deepEqual({ ...grant.attributes }, { 'bearer_sidecar.route': 'api', 'bearer_sidecar.token.attempt': 1, 'bearer_sidecar.token.outcome': 'success' });
  assert.equal(server.resource['service.name'], 'bearer-sidecar');
  assert.equal(server.resource['process.pid'], process.pid);
}

describe('traces on', () => {
  test('http/json from the tracing block: server, upstream and grant spans in the caller\'s trace; the upstream\'s parent is the sidecar\'s span', async () => {
    const r = await rig();
    const { upstream, receiver } = r;
    await oneTracedRequest(r, { tracing: { tracesEndpoint: `${receiver.url}/v1/traces`, protocol: 'http/json', resourceAttributes: { 'deployment.environment.name': 'test' } }, routes: [route(r.tokens.url, upstream.url)] }, env(), 200);
    assert.ok(receiver.requests.every((request) => request.path === '/v1/traces' && request.contentType.startsWith('application/json')), JSON.stringify(receiver.requests));
    assertOneTrace(r);
    assert.equal(receiver.spans[0]?.resource['deployment.environment.name'], 'test');
    const exported = receiver.bodies.join('\n');
    for (const absent of ['query-secret-1', 'apikey', callerSecret, 'x-caller-key', 'test-secret']) assert.ok(!exported.includes(absent), `${absent} is not exported`);
  });

  test('http/protobuf from OTEL_* variables (the base endpoint gets /v1/traces); a replay after a 401 is a second client span', async () => {
    const r = await rig();
    const { tokens, upstream, receiver } = r;
    let calls = 0;
    const rejecting = createServer((req, res) => {
      calls += 1;
      upstream.seen.push(req.headers);
      res.writeHead(calls === 1 ? 401 : 200).end(calls === 1 ? 'expired' : 'ok');
    });
    await new Promise<void>((resolve) => rejecting.listen(0, '127.0.0.1', resolve));
    const environment = env({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: 'orders-sidecar', OTEL_RESOURCE_ATTRIBUTES: 'team=payments,region=eu%2Dwest' });
    try {
      await oneTracedRequest(r, { routes: [route(tokens.url, `http://127.0.0.1:${(rejecting.address() as AddressInfo).port}`)] }, environment, 200);
    } finally {
      await closeServer(rejecting);
    }
    assert.ok(receiver.requests.length > 0 && receiver.requests.every((request) => request.path === '/v1/traces' && request.contentType === 'application/x-protobuf'), JSON.stringify(receiver.requests));
    const spans = receiver.spans;
    const server = one(spans, (span) => span.kind === spanKind.server, 'server');
    const calls2 = spans.filter((span) => span.kind === spanKind.client && span.name === 'GET');
    assert.equal(calls2.length, 2);
    assert.deepEqual(
      calls2.map((span) => [span.attributes['http.response.status_code'], span.attributes['http.request.resend_count'] ?? 0, span.statusCode]),
      [
        [401, 0, 2],
        [200, 1, 0],
      ],
    );
    for (const span of calls2) assert.equal(span.parentSpanId, server.spanId);
    assert.equal(upstream.seen[1]?.traceparent, `00-${callerTrace}-${calls2[1]?.spanId}-01`);
    // Two grants: the first token, and the new one after the 401 (made while the request waited).
    const grants = spans.filter((span) => span.name === 'token grant');
    assert.equal(grants.length, 2);
    assert.ok(grants.every((grant) => grant.traceId === callerTrace && grant.attributes['bearer_sidecar.token.outcome'] === 'success'));
    assert.equal(server.resource['service.name'], 'orders-sidecar');
    assert.equal(server.resource.team, 'payments');
    assert.equal(server.resource.region, 'eu-west');
  });

  test('a failed grant is an error span with its code and attempt, and the 503 names it on the server span', async () => {
    const r = await rig();
    const { tokens, upstream, receiver } = r;
    tokens.script = () => ({ status: 401, body: { error: 'invalid_client', error_description: 'client secret test-secret is wrong' } });
    await oneTracedRequest(r, { tracing: { endpoint: receiver.url, protocol: 'http/json' }, routes: [route(tokens.url, upstream.url)] }, env(), 503);
    const grant = one(receiver.spans, (span) => span.name === 'token grant', 'token grant');
    assert.deepEqual(
      { ...grant.attributes },
      { 'bearer_sidecar.route': 'api', 'bearer_sidecar.token.attempt': 1, 'bearer_sidecar.token.outcome': 'failure', 'http.response.status_code': 401, 'error.type': 'BSC_TOKEN_REJECTED' },
    );
    assert.equal(grant.statusCode, 2);
    const server = one(receiver.spans, (span) => span.kind === spanKind.server, 'server');
    assert.equal(server.attributes['http.response.status_code'], 503);
    assert.equal(server.attributes['error.type'], 'BSC_TOKEN_UNAVAILABLE');
    assert.equal(upstream.seen.length, 0);
  });
});

describe('the sampler', () => {
  test('always_off: nothing exported; the upstream still gets the caller\'s trace id, not sampled', async () => {
    const { tokens, upstream, receiver, close } = await rig();
    const sidecar = await startSidecar({ tracing: { endpoint: receiver.url, sampler: 'always_off' }, routes: [route(tokens.url, upstream.url)] }, { env: env() });
    try {
      await (await traced(sidecar.proxyUrl)).text();
    } finally {
      await close(sidecar);
    }
    assert.equal(receiver.spans.length, 0);
    assert.match(String(upstream.seen[0]?.traceparent), new RegExp(`^00-${callerTrace}-[0-9a-f]{16}-00$`));
    assert.notEqual(upstream.seen[0]?.traceparent, traceparent);
  });

  test('parentbased_traceidratio with ratio 0 (OTEL_TRACES_SAMPLER_ARG): a sampled caller\'s trace is recorded, a new trace is not', async () => {
    const { tokens, upstream, receiver, close } = await rig();
    const sidecar = await startSidecar({ routes: [route(tokens.url, upstream.url)] }, { env: env({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces`, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' }) });
    try {
      await (await traced(sidecar.proxyUrl)).text();
      await (await fetch(`${sidecar.proxyUrl}/untraced`)).text();
    } finally {
      await close(sidecar);
    }
    assert.ok(receiver.spans.length >= 2);
    assert.ok(receiver.spans.every((span) => span.traceId === callerTrace), 'only the caller\'s sampled trace');
    assert.match(String(upstream.seen[1]?.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
  });
});

describe('traces off', () => {
  test('no tracing block and no OTEL_ endpoint (or OTEL_SDK_DISABLED=true): the upstream sees the caller\'s traceparent and tracestate unchanged', async () => {
    for (const extra of [{} as Record<string, string>, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_SDK_DISABLED: 'true' }]) {
      const { tokens, upstream, receiver, close } = await rig();
      const sidecar = await startSidecar({ routes: [route(tokens.url, upstream.url)] }, { env: env(extra) });
      try {
        await (await traced(sidecar.proxyUrl)).text();
        assert.equal(sidecar.sidecar.live.config.tracing, undefined);
      } finally {
        await close(sidecar);
      }
      assert.equal(upstream.seen[0]?.traceparent, traceparent);
      assert.equal(upstream.seen[0]?.tracestate, tracestate);
      assert.equal(receiver.requests.length, 0);
    }
  });
});
