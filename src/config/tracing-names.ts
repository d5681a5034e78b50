// The names the tracing settings take (config/tracing.ts): samplers, protocols and the OpenTelemetry
// variables --help lists. A module of its own, with no imports, so that the schema, the config's
// types and --help share one list without loading each other.

/** The OpenTelemetry sampler names (OTEL_TRACES_SAMPLER) the sidecar supports. */
export const tracingSamplers = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const;
export const tracingProtocols = ['http/protobuf', 'http/json'] as const;

/** The OpenTelemetry variables config/tracing.ts reads (--help lists them); the exporter reads its TLS files and timeout itself. */
export const tracingVariables = [
  { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', description: 'turns traces on: the collector, e.g. http://otel-collector:4318 (/v1/traces is appended)' },
  { name: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', description: 'turns traces on: the full URL spans are sent to' },
  { name: 'OTEL_EXPORTER_OTLP_PROTOCOL', description: 'http/protobuf (default) or http/json (also OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)' },
  { name: 'OTEL_SERVICE_NAME', description: 'service.name of the spans (default bearer-sidecar)' },
  { name: 'OTEL_TRACES_SAMPLER', description: 'parentbased_always_on (default), parentbased_traceidratio, always_off, ...' },
  { name: 'OTEL_TRACES_SAMPLER_ARG', description: 'the ratio of the traceidratio samplers, 0 to 1' },
  { name: 'OTEL_RESOURCE_ATTRIBUTES', description: 'key=value,... added to every span\'s resource' },
  { name: 'OTEL_EXPORTER_OTLP_HEADERS', description: 'headers sent to the collector, key=value,... (an API key; also OTEL_EXPORTER_OTLP_TRACES_HEADERS)' },
  { name: 'OTEL_SDK_DISABLED', description: 'true: no traces, whatever else is set' },
] as const;
