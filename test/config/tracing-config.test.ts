// The `tracing` block and the standard OTEL_* variables (config/tracing.ts): off unless the block
// or an OTLP endpoint variable is set; the block's fields over the variables, the variables over
// the defaults; bad values named by their field or variable at start-up; a reload cannot change
// tracing (it needs a restart); the collector's headers are held as secrets.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { configHash } from '../../src/config/compare.js';
import { resolveConfig } from '../../src/config/load.js';
import { keepSocketSettings } from '../../src/generation.js';
import { problems } from '../helpers/config.js';

const routes = [{ name: 'a', upstream: 'http://127.0.0.1:1', auth: { tokenUrl: 'http://127.0.0.1:2/t', clientId: 'a', clientSecret: 'b' } }];
const tracing = (input: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) => resolveConfig({ ...input, routes }, { env }).tracing;

describe('tracing config', () => {
  test('off without the block or an OTLP endpoint variable, whatever else OTEL_* says', () => {
    assert.equal(tracing({}), undefined);
    assert.equal(tracing({}, { OTEL_SERVICE_NAME: 'x', OTEL_TRACES_SAMPLER: 'always_on' }), undefined);
    assert.equal('tracing' in resolveConfig({ routes }, { env: {} }), false);
  });

  test('OTEL_EXPORTER_OTLP_ENDPOINT turns it on with the standard defaults; /v1/traces is appended to the base', () => {
    assert.deepEqual(tracing({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), {
      url: 'http://collector:4318/v1/traces',
      protocol: 'http/protobuf',
      serviceName: 'bearer-sidecar',
      sampler: 'parentbased_always_on',
      samplerRatio: 1,
      resourceAttributes: {},
    });
    assert.equal(tracing({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/otlp/' })?.url, 'http://collector:4318/otlp/v1/traces');
    // The signal's own variable is taken as it is, and wins over the base.
    assert.equal(tracing({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/custom' })?.url, 'http://b:4318/custom');
  });

  test('every variable is read: protocol (traces-specific first), service name, sampler and ratio, resource attributes', () => {
    assert.deepEqual(
      tracing({}, {
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://collector.example/v1/traces',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
        OTEL_SERVICE_NAME: 'orders',
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '0.25',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod, team=a%2Cb',
      }),
      {
        url: 'https://collector.example/v1/traces',
        protocol: 'http/json',
        serviceName: 'orders',
        sampler: 'parentbased_traceidratio',
        samplerRatio: 0.25,
        resourceAttributes: { 'deployment.environment.name': 'prod', team: 'a,b' },
      },
    );
    // service.name among the resource attributes names the service when OTEL_SERVICE_NAME does not.
    assert.equal(tracing({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attributes' })?.serviceName, 'from-attributes');
  });

  test('the block turns it on (default collector http://localhost:4318) and its fields win over the variables', () => {
    assert.equal(tracing({ tracing: {} })?.url, 'http://localhost:4318/v1/traces');
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:4318', OTEL_SERVICE_NAME: 'env', OTEL_TRACES_SAMPLER: 'always_off', OTEL_RESOURCE_ATTRIBUTES: 'a=env,b=env' };
    assert.deepEqual(tracing({ tracing: { endpoint: 'http://file:4318', serviceName: 'file', sampler: 'traceidratio', samplerArg: 0.5, resourceAttributes: { a: 'file' } } }, env), {
      url: 'http://file:4318/v1/traces',
      protocol: 'http/protobuf',
      serviceName: 'file',
      sampler: 'traceidratio',
      samplerRatio: 0.5,
      resourceAttributes: { a: 'file', b: 'env' },
    });
    assert.equal(tracing({ tracing: { tracesEndpoint: 'http://file:4318/x', endpoint: 'http://file:4318' } })?.url, 'http://file:4318/x');
  });

  test('off by name: enabled: false, OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none', () => {
    const on = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };
    assert.equal(tracing({ tracing: { enabled: false } }, on), undefined);
    assert.equal(tracing({ tracing: { endpoint: 'http://c:4318' } }, { OTEL_SDK_DISABLED: 'true' }), undefined);
    assert.equal(tracing({}, { ...on, OTEL_TRACES_EXPORTER: 'none' }), undefined);
    assert.ok(tracing({}, { ...on, OTEL_SDK_DISABLED: 'false', OTEL_TRACES_EXPORTER: 'otlp' }));
  });

  test('bad values fail at start-up, named by the field or the variable', () => {
    const on = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };
    const lines = (input: Record<string, unknown>, env: NodeJS.ProcessEnv) => problems(() => resolveConfig({ ...input, routes }, { env })).join('\n');
    assert.match(lines({}, { ...on, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), /OTEL_EXPORTER_OTLP_PROTOCOL: must be http\/protobuf or http\/json, not "grpc" \(gRPC is not supported/);
    assert.match(lines({}, { ...on, OTEL_TRACES_SAMPLER: 'jaeger_remote' }), /OTEL_TRACES_SAMPLER: must be one of always_on, .*not "jaeger_remote"/);
    assert.match(lines({}, { ...on, OTEL_TRACES_SAMPLER_ARG: '1.5' }), /OTEL_TRACES_SAMPLER_ARG: must be a ratio from 0 to 1/);
    assert.match(lines({}, { ...on, OTEL_TRACES_SAMPLER_ARG: 'half' }), /OTEL_TRACES_SAMPLER_ARG/);
    assert.match(lines({}, { ...on, OTEL_RESOURCE_ATTRIBUTES: 'novalue' }), /OTEL_RESOURCE_ATTRIBUTES: entry 1 is not key=value/);
    assert.match(lines({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }), /OTEL_EXPORTER_OTLP_ENDPOINT: must be an (absolute )?http/);
    assert.match(lines({}, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://user:pw@c:4318/v1/traces' }), /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: must not carry credentials/);
    assert.match(lines({}, { ...on, OTEL_SDK_DISABLED: 'yes' }), /OTEL_SDK_DISABLED: must be true or false/);
    assert.match(lines({}, { ...on, OTEL_TRACES_EXPORTER: 'zipkin' }), /OTEL_TRACES_EXPORTER: the sidecar exports with otlp/);
    assert.match(lines({ tracing: { protocol: 'grpc' } }, {}), /tracing\.protocol/);
    assert.match(lines({ tracing: { samplerArg: 2 } }, {}), /tracing\.samplerArg/);
    assert.match(lines({ tracing: { endpoint: 'ftp://c' } }, {}), /tracing\.endpoint/);
    assert.match(lines({ tracing: { sampler: 'sometimes' } }, {}), /tracing\.sampler/);
    assert.match(lines({ tracing: { unknown: 1 } }, {}), /tracing/);
  });

  test('the collector\'s headers (OTEL_EXPORTER_OTLP_HEADERS, the traces-specific ones over them) are secrets: never in JSON, the same hash whatever their value', () => {
    const env = (key: string) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_HEADERS: `api-key=${key},x-a=1`, OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-a=2' });
    const config = resolveConfig({ routes }, { env: env('secret-key-1234') });
    const headers = config.tracing?.headers ?? {};
    assert.deepEqual(Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, value.read()])), { 'api-key': 'secret-key-1234', 'x-a': '2' });
    assert.ok(!JSON.stringify(config).includes('secret-key-1234'));
    // A problem names the header, never shows its value.
    const lines = problems(() => resolveConfig({ routes }, { env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_HEADERS: 'api-key=%E0%A4%A' } })).join('\n');
    assert.match(lines, /OTEL_EXPORTER_OTLP_HEADERS: the value of "api-key" is not percent-encoded correctly/);
    assert.ok(!lines.includes('%E0'));
    assert.equal(configHash(config), configHash(resolveConfig({ routes }, { env: env('another-key-5678') })));
  });

  test('a reload cannot change tracing: the exporter is set up at start; the change is named as needing a restart', () => {
    const live = resolveConfig({ routes }, { env: {} });
    const next = resolveConfig({ tracing: { endpoint: 'http://c:4318' }, routes }, { env: {} });
    const { config, refused } = keepSocketSettings(live, next);
    assert.deepEqual(refused, ['tracing']);
    assert.equal(config.tracing, undefined);
    const back = keepSocketSettings(next, live);
    assert.deepEqual(back.refused, ['tracing']);
    assert.deepEqual(back.config.tracing, next.tracing);
    assert.deepEqual(keepSocketSettings(next, resolveConfig({ tracing: { endpoint: 'http://c:4318' }, routes }, { env: {} })).refused, []);
  });
});
