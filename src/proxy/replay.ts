// Replays a request once when the upstream rejects its token (401: revoked, key rotated, clock
// skew). The token is reported to the route's TokenSource, which fetches one new token however
// many requests report it, and the request goes out again with that token. Only requests that
// can be sent again are replayed: no body, or a body small enough (replayBodyLimitBytes, with a
// known Content-Length) to have been kept in memory before it was forwarded. Everything else,
// a second 401, and a 401 when no different token can be had, reaches the caller unchanged.

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { SidecarError } from '../errors.js';
import type { TokenSource } from '../token/token-source.js';
import { callerGone } from './caller-abort.js';

/** What reply-from hands to `onResponse`: the upstream's status, headers and body. */
export interface UpstreamResponse {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly stream: Readable;
}

interface Attempt {
  dest: string;
  options: object;
  /** The body as forwarded, when it was kept; undefined when the request has none. */
  keptBody: Buffer | undefined;
  replayable: boolean;
  replayed: boolean;
}

export interface ReplayOptions {
  readonly route: string;
  readonly tokens: TokenSource;
  readonly bodyLimitBytes: number;
}

export class ReplayOn401 {
  readonly #options: ReplayOptions;
  readonly #attempts = new WeakMap<FastifyRequest, Attempt>();

  constructor(options: ReplayOptions) {
    this.#options = options;
  }

  /**
   * The http-proxy handler: remembers where the request goes and sends it. A small body is read
   * into memory first so that it can be sent a second time; larger or chunked ones stream.
   */
  readonly handler = async (request: FastifyRequest, reply: FastifyReply, dest: string, options: object): Promise<FastifyReply> => {
    const attempt: Attempt = { dest, options, keptBody: undefined, replayable: true, replayed: false };
    if (request.body instanceof Readable) {
      const length = keptLength(request, this.#options.bodyLimitBytes);
      if (length === undefined) attempt.replayable = false;
      else {
        attempt.keptBody = await readBody(request.body, length);
        request.body = Readable.from(attempt.keptBody);
      }
    }
    this.#attempts.set(request, attempt);
    reply.from(dest, options);
    // Like reply.from's own return value: fastify waits for the reply instead of sending one.
    return reply;
  };

  /** reply-from's `onResponse`: anything but a first, replayable 401 is sent on as it came. */
  readonly onResponse = (request: FastifyRequest, reply: FastifyReply, res: UpstreamResponse): void => {
    const attempt = this.#attempts.get(request);
    if (res.statusCode !== 401 || !attempt || attempt.replayed) {
      reply.send(res.stream);
      return;
    }
    attempt.replayed = true;
    if (!attempt.replayable) {
      // The caller gets this 401, but the requests after it get a new token.
      void this.#options.tokens.invalidate(request.bearerToken);
      reply.send(res.stream);
      return;
    }
    this.#replay(request, reply, res, attempt).catch((err: unknown) => {
      discard(res.stream);
      if (!reply.sent) reply.send(err);
    });
  };

  async #replay(request: FastifyRequest, reply: FastifyReply, res: UpstreamResponse, attempt: Attempt): Promise<void> {
    const { tokens } = this.#options;
    const rejected = request.bearerToken;
    // Not awaited: a failing token endpoint may keep the refresh busy for long; getToken waits
    // at most tokenWaitMs, and returns the same token when the report was ignored (cooldown).
    void tokens.invalidate(rejected);
    const fresh = await tokens.getToken().catch(() => undefined);
    if (callerGone(request.raw.socket)) {
      discard(res.stream);
      return;
    }
    if (!fresh || fresh === rejected) {
      request.log.debug({ route: this.#options.route }, 'upstream answered 401 and no other token is available; passing the 401 on');
      reply.send(res.stream);
      return;
    }
    // The 401's headers are already on the reply (reply-from copies them before onResponse).
    discard(res.stream);
    for (const name of [...Object.keys(res.headers), 'connection']) reply.removeHeader(name);
    request.bearerToken = fresh;
    if (attempt.keptBody) request.body = Readable.from(attempt.keptBody);
    request.log.debug({ route: this.#options.route }, 'upstream answered 401; replaying the request with a new token');
    reply.from(attempt.dest, attempt.options);
  }
}

/** Drops an upstream body we will not send (its error, if any, concerns no one). */
function discard(stream: Readable): void {
  stream.on('error', () => {});
  stream.destroy();
}

/** The body's length when it is known and small enough to keep; else undefined. */
function keptLength(request: FastifyRequest, limitBytes: number): number | undefined {
  const header = request.headers['content-length'];
  if (request.headers['transfer-encoding'] !== undefined || header === undefined || !/^\d+$/.test(header)) return undefined;
  const length = Number(header);
  return length <= limitBytes ? length : undefined;
}

async function readBody(body: Readable, length: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      chunks.push(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch {
    throw new SidecarError('BSC_BAD_REQUEST', 'the request body ended before its Content-Length');
  }
  if (size !== length) throw new SidecarError('BSC_BAD_REQUEST', 'the request body does not match its Content-Length');
  return Buffer.concat(chunks, size);
}
