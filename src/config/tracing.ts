// Whether traces are on, and where they go: the `tracing` block of the config, else the standard
// OpenTelemetry variables (OTEL_EXPORTER_OTLP_ENDPOINT and the rest, as every OpenTelemetry SDK
// reads them), else the defaults. Read once with the rest of the config, so a bad value fails at
// start-up naming the field or the variable. Nothing of OpenTelemetry is loaded here: that happens
// only when this returns a config (tracing/otel.ts).

import type { RawTracing } from './schema.js';
import { tracingProtocols, tracingSamplers } from './tracing-names.js';
import { SecretSource } from './secret.js';
import type { TracingConfig } from './types.js';

/** The OTLP/HTTP default collector (the OpenTelemetry specification's), when the block names none. */
const defaultEndpoint = 'http://localhost:4318';

/** The tracing settings, or undefined when traces are off. Problems go to `problems` as `field: what is wrong`. */
export function resolveTracing(block: RawTracing | undefined, env: NodeJS.ProcessEnv, problems: string[]): TracingConfig | undefined {
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === '' ? undefined : value;
  };
  const disabled = read('OTEL_SDK_DISABLED');
  if (disabled !== undefined && !['true', 'false'].includes(disabled.toLowerCase())) problems.push(`OTEL_SDK_DISABLED: must be true or false, not "${disabled}"`);
  const exporter = read('OTEL_TRACES_EXPORTER');
  if (exporter !== undefined && !['otlp', 'none'].includes(exporter)) problems.push(`OTEL_TRACES_EXPORTER: the sidecar exports with otlp (or none: no traces), not "${exporter}"`);
  if (block?.enabled === false || disabled?.toLowerCase() === 'true' || exporter === 'none') return undefined;

  const url = tracesUrl(block, read, problems);
  if (url === undefined) return undefined;

  const protocol = block?.protocol ?? read('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? read('OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf';
  if (!(tracingProtocols as readonly string[]).includes(protocol)) {
    const name = read('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
    problems.push(`${name}: must be http/protobuf or http/json, not "${protocol}"${protocol === 'grpc' ? ' (gRPC is not supported: send OTLP over HTTP, port 4318 on a collector)' : ''}`);
  }
  const sampler = block?.sampler ?? read('OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on';
  if (!(tracingSamplers as readonly string[]).includes(sampler)) problems.push(`OTEL_TRACES_SAMPLER: must be one of ${tracingSamplers.join(', ')}, not "${sampler}"`);
  let samplerRatio = block?.samplerArg ?? 1;
  const ratioText = block?.samplerArg === undefined ? read('OTEL_TRACES_SAMPLER_ARG') : undefined;
  if (ratioText !== undefined) {
    samplerRatio = Number(ratioText);
    if (!/^\d*\.?\d+(e-?\d+)?$/i.test(ratioText) || samplerRatio > 1) problems.push(`OTEL_TRACES_SAMPLER_ARG: must be a ratio from 0 to 1, not "${ratioText}"`);
  }
  const attributes = { ...keyValuePairs('OTEL_RESOURCE_ATTRIBUTES', read('OTEL_RESOURCE_ATTRIBUTES'), problems), ...block?.resourceAttributes };
  // The collector's headers (an API key, say) are secrets: held as such, so that they reach the
  // workers' exporters over IPC (a worker's environment has no OTEL_* credentials) and no log or hash.
  const headers = Object.entries({
    ...keyValuePairs('OTEL_EXPORTER_OTLP_HEADERS', read('OTEL_EXPORTER_OTLP_HEADERS'), problems),
    ...keyValuePairs('OTEL_EXPORTER_OTLP_TRACES_HEADERS', read('OTEL_EXPORTER_OTLP_TRACES_HEADERS'), problems),
  }).map(([name, value]) => [name, SecretSource.inline(value)] as const);
  return {
    url,
    protocol: protocol as TracingConfig['protocol'],
    // As the SDKs do: OTEL_SERVICE_NAME over a service.name among the resource attributes.
    serviceName: block?.serviceName ?? read('OTEL_SERVICE_NAME') ?? attributes['service.name'] ?? 'bearer-sidecar',
    sampler: sampler as TracingConfig['sampler'],
    samplerRatio,
    resourceAttributes: attributes,
    ...(headers.length > 0 ? { headers: Object.fromEntries(headers) } : {}),
  };
}

/** Where spans go: tracing.tracesEndpoint, tracing.endpoint + /v1/traces, then the same two variables; undefined: traces off. */
function tracesUrl(block: RawTracing | undefined, read: (name: string) => string | undefined, problems: string[]): string | undefined {
  const candidates: [string, string | undefined, boolean][] = [
    ['tracing.tracesEndpoint', block?.tracesEndpoint, false],
    ['tracing.endpoint', block?.endpoint, true],
    ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', read('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'), false],
    ['OTEL_EXPORTER_OTLP_ENDPOINT', read('OTEL_EXPORTER_OTLP_ENDPOINT'), true],
  ];
  const [name, value, base] = candidates.find(([, value]) => value !== undefined) ?? ['tracing.endpoint', block ? defaultEndpoint : undefined, true];
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    problems.push(`${name}: must be an absolute http:// or https:// URL, not "${value}"`);
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') problems.push(`${name}: must be an http:// or https:// URL (OTLP over HTTP)`);
  // The URL is logged at start; a collector's credentials belong in OTEL_EXPORTER_OTLP_HEADERS.
  if (url.username || url.password) problems.push(`${name}: must not carry credentials (put them in OTEL_EXPORTER_OTLP_HEADERS)`);
  if (!base) return url.href;
  // As the OTLP exporter specification says: the signal's path is appended to the base URL's.
  return `${url.href.replace(/\/$/, '')}/v1/traces`;
}

/** OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS: key=value pairs separated by commas, values percent-encoded (W3C Baggage octets). */
function keyValuePairs(variable: string, text: string | undefined, problems: string[]): Record<string, string> {
  const attributes: Record<string, string> = {};
  if (text === undefined) return attributes;
  for (const [index, pair] of text.split(',').entries()) {
    if (pair.trim() === '') continue;
    const at = pair.indexOf('=');
    const key = at < 0 ? '' : pair.slice(0, at).trim();
    // The key at most: a header's value may be a secret.
    if (key === '') {
      problems.push(`${variable}: entry ${index + 1} is not key=value`);
      continue;
    }
    try {
      attributes[key] = decodeURIComponent(pair.slice(at + 1).trim());
    } catch {
      problems.push(`${variable}: the value of "${key}" is not percent-encoded correctly`);
    }
  }
  return attributes;
}
