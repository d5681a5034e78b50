// Limits on what one caller can make the sidecar carry: requests at once (listen.maxInFlight) and
// request body size (routes[].maxBodyBytes). Bodies stream; a declared Content-Length over the
// limit is refused before anything is sent upstream, a chunked body is counted as it passes and
// the upload is cut when it crosses the limit. (The header size limit is Node's maxHeaderSize.)

import type { FastifyReply, FastifyRequest } from 'fastify';
import { Transform, type TransformCallback } from 'node:stream';
import { SidecarError } from '../errors.js';
import { requestBody } from './forward.js';

/** Counts requests in flight. A slot is taken in onRequest and given back when the response closes, whatever ended it. */
export class InFlight {
  count = 0;
  /** Changed in place at a reload: requests in flight keep their slots. */
  max: number;
  /** One listener shared by every response: nothing allocated per request. */
  readonly release = (): void => {
    this.count -= 1;
  };

  constructor(max: number) {
    this.max = max;
  }

  /** Takes a slot for `reply` until its response closes; false when all are taken. */
  acquire(reply: FastifyReply): boolean {
    if (this.count >= this.max) return false;
    this.count += 1;
    reply.raw.on('close', this.release);
    return true;
  }
}

export function overloaded(): SidecarError {
  return new SidecarError('BSC_OVERLOADED', 'too many requests in flight; retry shortly');
}

function tooLarge(maxBytes: number): SidecarError {
  return new SidecarError('BSC_PAYLOAD_TOO_LARGE', `the request body is larger than ${maxBytes} bytes`);
}

/**
 * Refuses or cuts a request body larger than `maxBytes`, before anything is sent upstream: returns
 * the refusal for a declared Content-Length over the limit, else undefined (a body of unknown
 * length is counted as it streams, and cut when it crosses the limit).
 */
export function limitBody(request: FastifyRequest, reply: FastifyReply, maxBytes: number): SidecarError | undefined {
  // The rest of an unread body cannot be skipped cheaply: close the connection after answering.
  const length = request.headers['content-length'];
  if (length !== undefined) {
    // Node's parser has checked the value is digits and the body will be exactly that long.
    if (Number(length) > maxBytes) {
      reply.header('connection', 'close');
      return tooLarge(maxBytes);
    }
    return undefined;
  }
  // The stream forward.ts will send: also a chunked GET's, which fastify does not parse.
  const body = requestBody(request);
  if (body) {
    const source = body as NodeJS.ReadableStream & { complete?: boolean; once(event: 'close', listener: () => void): unknown };
    const counter = new ByteCounter(maxBytes, () => reply.header('connection', 'close'));
    // pipe(), not pipeline(): cutting the upload must not destroy the caller's socket before it gets its 413.
    source.pipe(counter);
    source.once('close', () => {
      if (source.complete === false) counter.destroy(new Error('the caller closed the request'));
    });
    request.body = counter;
  }
  return undefined;
}

class ByteCounter extends Transform {
  #seen = 0;
  readonly #maxBytes: number;
  readonly #onLimit: () => void;

  constructor(maxBytes: number, onLimit: () => void) {
    super();
    this.#maxBytes = maxBytes;
    this.#onLimit = onLimit;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.#maxBytes) {
      this.#onLimit();
      return callback(tooLarge(this.#maxBytes));
    }
    callback(null, chunk);
  }
}
