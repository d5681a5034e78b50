// An OTLP/HTTP trace receiver on 127.0.0.1, as a collector is to the sidecar: it accepts
// POST /v1/traces (and any other path, recorded) in both encodings the sidecar sends and turns each
// span into one plain shape. http/json is parsed as JSON; http/protobuf is read field by field with
// the protobuf wire format (opentelemetry-proto's trace.proto numbers), so that the assertions are
// the same for both. Every request body is kept raw, for the secret audit.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closeServer } from '../../src/demo/token-server.js';

export type AttributeValue = string | number | boolean;

export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** '' for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** 1 internal, 2 server, 3 client (SpanKind of trace.proto). */
  readonly kind: number;
  readonly attributes: Record<string, AttributeValue>;
  /** 0 unset, 1 ok, 2 error. */
  readonly statusCode: number;
  /** The span's resource attributes (service.name, process.pid...). */
  readonly resource: Record<string, AttributeValue>;
}

export interface OtlpReceiver {
  /** Base URL (http://127.0.0.1:port), as OTEL_EXPORTER_OTLP_ENDPOINT takes it. */
  readonly url: string;
  readonly spans: ReceivedSpan[];
  readonly requests: { readonly path: string; readonly contentType: string; readonly authorization: string | undefined }[];
  /** Each request body, raw (latin1), for the audit. */
  readonly bodies: string[];
  close(): Promise<void>;
}

export const spanKind = { internal: 1, server: 2, client: 3 } as const;

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const requests: OtlpReceiver['requests'][number][] = [];
  const bodies: string[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const contentType = req.headers['content-type'] ?? '';
    requests.push({ path: req.url ?? '', contentType, authorization: req.headers.authorization });
    bodies.push(body.toString('latin1'));
    if (req.method !== 'POST' || req.url !== '/v1/traces') return void res.writeHead(404).end();
    if (contentType.startsWith('application/json')) {
      spans.push(...fromJson(JSON.parse(body.toString('utf8')) as JsonRequest));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    } else {
      spans.push(...fromProtobuf(body));
      // An empty ExportTraceServiceResponse.
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, requests, bodies, close: () => closeServer(server) };
}

// ---- http/json (OTLP/JSON: ids in hex, enums as numbers) ----

interface JsonValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
}
interface JsonAttribute {
  key: string;
  value: JsonValue;
}
interface JsonRequest {
  resourceSpans?: {
    resource?: { attributes?: JsonAttribute[] };
    scopeSpans?: { spans?: { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: JsonAttribute[]; status?: { code?: number } }[] }[];
  }[];
}

function jsonAttributes(list: JsonAttribute[] | undefined): Record<string, AttributeValue> {
  const attributes: Record<string, AttributeValue> = {};
  for (const { key, value } of list ?? []) {
    attributes[key] = value.stringValue ?? value.boolValue ?? (value.intValue === undefined ? undefined : Number(value.intValue)) ?? value.doubleValue ?? '';
  }
  return attributes;
}

function fromJson(request: JsonRequest): ReceivedSpan[] {
  return (request.resourceSpans ?? []).flatMap((resourceSpans) => {
    const resource = jsonAttributes(resourceSpans.resource?.attributes);
    return (resourceSpans.scopeSpans ?? []).flatMap((scope) =>
      (scope.spans ?? []).map((span) => ({
        traceId: span.traceId,
        spanId: span.spanId,
        parentSpanId: span.parentSpanId ?? '',
        name: span.name,
        kind: span.kind,
        attributes: jsonAttributes(span.attributes),
        statusCode: span.status?.code ?? 0,
        resource,
      })),
    );
  });
}

// ---- http/protobuf: the wire format, for the fields of trace.proto this test reads ----

/** The fields of one message: field number → values (varints as bigint, length-delimited as Buffer, fixed64 as Buffer). */
type Fields = Map<number, (bigint | Buffer)[]>;

function readMessage(buffer: Buffer): Fields {
  const fields: Fields = new Map();
  let at = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const byte = buffer[at++];
      if (byte === undefined) throw new Error('truncated protobuf varint');
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (at < buffer.length) {
    const key = varint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    let value: bigint | Buffer;
    if (wire === 0) value = varint();
    else if (wire === 1) value = buffer.subarray(at, (at += 8));
    else if (wire === 2) {
      const length = Number(varint());
      value = buffer.subarray(at, (at += length));
    } else if (wire === 5) value = buffer.subarray(at, (at += 4));
    else throw new Error(`unexpected protobuf wire type ${wire}`);
    if (at > buffer.length) throw new Error('truncated protobuf message');
    fields.set(field, [...(fields.get(field) ?? []), value]);
  }
  return fields;
}

const messages = (fields: Fields, n: number): Fields[] => (fields.get(n) ?? []).map((value) => readMessage(value as Buffer));
const bytes = (fields: Fields, n: number): Buffer => (fields.get(n)?.[0] as Buffer | undefined) ?? Buffer.alloc(0);
const text = (fields: Fields, n: number): string => bytes(fields, n).toString('utf8');
const number = (fields: Fields, n: number): number => Number((fields.get(n)?.[0] as bigint | undefined) ?? 0n);

/** KeyValue { string key = 1; AnyValue value = 2 }, AnyValue { string_value = 1; bool_value = 2; int_value = 3; double_value = 4 }. */
function protobufAttributes(list: Fields[]): Record<string, AttributeValue> {
  const attributes: Record<string, AttributeValue> = {};
  for (const pair of list) {
    const value = messages(pair, 2)[0] ?? new Map();
    let decoded: AttributeValue = '';
    if (value.has(1)) decoded = text(value, 1);
    else if (value.has(2)) decoded = number(value, 2) === 1;
    else if (value.has(3)) decoded = Number(BigInt.asIntN(64, value.get(3)?.[0] as bigint));
    else if (value.has(4)) decoded = (value.get(4)?.[0] as Buffer).readDoubleLE(0);
    attributes[text(pair, 1)] = decoded;
  }
  return attributes;
}

/**
 * ExportTraceServiceRequest { ResourceSpans resource_spans = 1 }; ResourceSpans { Resource resource = 1;
 * ScopeSpans scope_spans = 2 }; Resource { KeyValue attributes = 1 }; ScopeSpans { Span spans = 2 };
 * Span { trace_id = 1; span_id = 2; parent_span_id = 4; name = 5; kind = 6; attributes = 9; Status status = 15 { code = 3 } }.
 */
function fromProtobuf(body: Buffer): ReceivedSpan[] {
  return messages(readMessage(body), 1).flatMap((resourceSpans) => {
    const resource = protobufAttributes(messages(messages(resourceSpans, 1)[0] ?? new Map(), 1));
    return messages(resourceSpans, 2).flatMap((scope) =>
      messages(scope, 2).map((span) => ({
        traceId: bytes(span, 1).toString('hex'),
        spanId: bytes(span, 2).toString('hex'),
        parentSpanId: bytes(span, 4).toString('hex'),
        name: text(span, 5),
        kind: number(span, 6),
        attributes: protobufAttributes(messages(span, 9)),
        statusCode: number(messages(span, 15)[0] ?? new Map(), 3),
        resource,
      })),
    );
  });
}
