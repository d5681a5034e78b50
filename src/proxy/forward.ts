// Forwards one request to a route's upstream through the route's undici Pool and relays the answer
// to the caller as it comes: status and headers in one writeHead, then each chunk of the body with
// backpressure both ways. One handler object per request does it all, so nothing else sits on the
// hot path:
// - a 401 from the upstream is replayed once with a new token when the request can be sent again
//   (no body, or a body small enough to have been kept: replayBodyLimitBytes with a known
//   Content-Length); the 401 is held (paused) until the route's TokenSource says whether a
//   different token exists, and reaches the caller unchanged when it does not;
// - a caller that goes away aborts its upstream request, also while the upstream is still thinking;
// - a failure before the response has started goes to the app's error handler (502/503/504 JSON,
//   errors.ts); after it has started, the caller's response is cut, as the upstream's was.
//
// Own code rather than @fastify/http-proxy + @fastify/reply-from: per request they parsed the
// destination twice with `new URL`, copied the headers three times and sent the body through a
// stream pipeline; measured, that was about a fifth of the sidecar's CPU time per request
// (BENCHMARKS.md). The path mapping (paths.ts), header policy (headers.ts) and error mapping
// (errors.ts) were ours already.

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { errors, type Dispatcher } from 'undici';
import { SidecarError } from '../errors.js';
import { tokenAfterRejection } from '../token/rejected.js';
import type { TokenProvider } from '../token/token-source.js';
import type { RequestHeaderBuilder, ResponseHeaderBuilder } from './headers.js';

export interface ForwarderOptions {
  /** The route's name, for logs. */
  readonly route: string;
  readonly tokens: TokenProvider;
  /** The route's connection pool to its upstream origin. */
  readonly pool: Dispatcher;
  readonly requestHeaders: RequestHeaderBuilder;
  readonly responseHeaders: ResponseHeaderBuilder;
  /** Largest body kept in memory so that a request answered 401 can be sent again. */
  readonly replayBodyLimitBytes: number;
  /**
   * An upstream failure after the caller's response had begun (a reset or a stall mid-body): the
   * response is cut, and this reports it. Failures before that go to the app's error handler.
   */
  readonly onBrokenResponse?: (request: FastifyRequest, err: Error) => void;
  /** The upstream answered a request's first 401, and what became of it (metrics). */
  readonly onUpstream401?: (outcome: Upstream401Outcome) => void;
}

/** What became of the first 401 the upstream answered a request: sent again with a new token, or passed on to the caller. */
export type Upstream401Outcome = 'replayed' | 'no_new_token' | 'body_not_kept';

type Body = Buffer | Readable | undefined;

export class Forwarder {
  readonly options: ForwarderOptions;

  constructor(options: ForwarderOptions) {
    this.options = options;
  }

  /**
   * Sends `request` to `path` (path and query on the upstream) with `token`, and answers the
   * caller on `reply`. Never throws: failures become the reply's error.
   */
  forward(request: FastifyRequest, reply: FastifyReply, path: string, token: string): void {
    const body = requestBody(request);
    if (body === undefined) {
      new Exchange(this.options, request, reply, path, token, undefined, true).start();
      return;
    }
    const length = keptLength(request, this.options.replayBodyLimitBytes);
    if (length === undefined) {
      new Exchange(this.options, request, reply, path, token, body, false).start();
      return;
    }
    readBody(body, length)
      .then((kept) => new Exchange(this.options, request, reply, path, token, kept, true).start())
      .catch((err: unknown) => failed(reply, err));
  }
}

const callerClosed = () => new errors.RequestAbortedError('the caller closed the connection');

/** Hands a failure to the app's error handler, unless an answer is already on its way. */
export function failed(reply: FastifyReply, err: unknown): void {
  if (!reply.sent && !reply.raw.headersSent) reply.send(err);
}

/** True once the caller's connection is gone (or its response closed): nothing can reach it. */
export function callerGone(res: ServerResponse): boolean {
  return res.destroyed || res.socket === null || res.socket.destroyed;
}

/** One request's trip upstream and back: undici's dispatch handler for it, replays included. */
class Exchange implements Dispatcher.DispatchHandler {
  readonly #options: ForwarderOptions;
  readonly #request: FastifyRequest;
  readonly #reply: FastifyReply;
  readonly #res: ServerResponse;
  readonly #path: string;
  readonly #body: Body;
  #token: string;
  readonly #replayable: boolean;
  /** A 401 was answered and reported to the TokenSource; a second one goes to the caller. */
  #reported = false;
  #controller: Dispatcher.DispatchController | undefined;
  /** The caller's response has its status line and headers. */
  #relaying = false;
  /** A 401 being read to its end and dropped, before the replay. */
  #discarding = false;
  /** Nothing more to do: the response ended or failed, or the caller left. */
  #done = false;
  /** A 401 is held while the TokenSource is asked for another token. */
  #deciding = false;
  /** The held 401 ended (HEAD and empty 401s end at once: undici cannot pause them). */
  #endedWhileDeciding = false;
  #watchingDrain = false;

  constructor(options: ForwarderOptions, request: FastifyRequest, reply: FastifyReply, path: string, token: string, body: Body, replayable: boolean) {
    this.#options = options;
    this.#request = request;
    this.#reply = reply;
    this.#res = reply.raw;
    this.#path = path;
    this.#token = token;
    this.#body = body;
    this.#replayable = replayable;
  }

  start(): void {
    // The caller may have left while the token or a small body was awaited: then nothing goes upstream.
    if (callerGone(this.#res)) {
      this.#done = true;
      return;
    }
    this.#res.once('close', this.#onCallerClose);
    this.#dispatch();
  }

  #dispatch(): void {
    const request = this.#request;
    const method = request.method as Dispatcher.HttpMethod;
    const headers = this.#options.requestHeaders(request.raw, this.#token, request.id);
    // With traces on, the call is a client span and the upstream's traceparent names it (tracing/).
    const trace = request.sidecarTrace;
    this.#options.pool.dispatch({ path: this.#path, method, headers, body: this.#body ?? null }, trace === null ? this : trace.upstream(method, headers, this));
  }

  readonly #onCallerClose = (): void => {
    if (this.#done) return;
    this.#done = true;
    this.#controller?.abort(callerClosed());
  };

  readonly #onDrain = (): void => {
    this.#controller?.resume();
  };

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#done) controller.abort(callerClosed());
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (this.#done) return controller.abort(callerClosed());
    if (statusCode === 401 && !this.#reported) {
      this.#reported = true;
      if (this.#replayable) {
        controller.pause();
        this.#replayOrRelay(controller, headers);
        return;
      }
      // The caller gets this 401, but the requests after it get a new token.
      this.#options.onUpstream401?.('body_not_kept');
      void this.#options.tokens.invalidate(this.#token);
    }
    this.#relayHead(controller, statusCode, headers);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    // undici hands on empty chunks too (after every full 64 KiB socket read of a body): written,
    // each would cost a cork, a tick and a write(2) of 0 bytes to the caller's socket, about one
    // per chunk of a long body (a Readable drops them; this handler writes to the socket itself).
    if (chunk.length === 0 || this.#discarding || this.#done) return;
    if (this.#res.destroyed) {
      // A drain would never come: let the upstream connection go instead of holding it paused.
      this.#done = true;
      controller.abort(callerClosed());
      return;
    }
    if (!this.#res.write(chunk)) {
      controller.pause();
      if (!this.#watchingDrain) {
        this.#watchingDrain = true;
        this.#res.on('drain', this.#onDrain);
      }
    }
  }

  onResponseEnd(): void {
    if (this.#deciding) {
      this.#endedWhileDeciding = true;
      return;
    }
    if (this.#discarding) {
      this.#discarding = false;
      this.#dispatch();
      return;
    }
    if (this.#done) return;
    this.#done = true;
    this.#res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#done) return;
    this.#done = true;
    if (!this.#relaying) return failed(this.#reply, err);
    // The response has begun: cut it, so the caller sees a truncated answer, not a complete one.
    this.#options.onBrokenResponse?.(this.#request, err);
    this.#res.destroy(err);
  }

  /** Writes the caller's status line and headers; false when the response cannot go on. */
  #relayHead(controller: Dispatcher.DispatchController, statusCode: number, upstreamHeaders: Record<string, string | string[] | undefined>): boolean {
    if (callerGone(this.#res)) {
      this.#done = true;
      controller.abort(callerClosed());
      return false;
    }
    const headers = this.#options.responseHeaders(upstreamHeaders, this.#request.id);
    try {
      this.#res.writeHead(statusCode, headers);
    } catch {
      // Node refuses a header value the upstream could send (a control character, say): nothing is written yet.
      this.#done = true;
      const err = new SidecarError('BSC_BAD_UPSTREAM_RESPONSE', 'the upstream sent a header that cannot be relayed');
      controller.abort(err);
      failed(this.#reply, err);
      return false;
    }
    this.#relaying = true;
    this.#reply.hijack();
    return true;
  }

  /**
   * A first 401 for a request that can be sent again: the route's TokenSource is told its token
   * was rejected (it fetches one new token however many requests report it). With a different
   * token the 401 is read to its end and dropped, and the request goes out again; without one,
   * the 401 goes to the caller as it came.
   */
  #replayOrRelay(controller: Dispatcher.DispatchController, headers: Record<string, string | string[] | undefined>): void {
    const { tokens, route } = this.#options;
    this.#deciding = true;
    const trace = this.#request.sidecarTrace;
    (trace === null ? tokenAfterRejection(tokens, this.#token) : trace.waitForToken(() => tokenAfterRejection(tokens, this.#token)))
      .then((fresh) => {
        this.#deciding = false;
        if (this.#done) return;
        const ended = this.#endedWhileDeciding;
        if (!fresh) {
          this.#options.onUpstream401?.('no_new_token');
          this.#request.log.debug({ route }, 'upstream answered 401 and no other token is available; passing the 401 on');
          if (!this.#relayHead(controller, 401, headers)) return;
          if (ended) this.onResponseEnd();
          else controller.resume();
          return;
        }
        this.#options.onUpstream401?.('replayed');
        this.#request.log.debug({ route }, 'upstream answered 401; replaying the request with a new token');
        this.#token = fresh;
        if (ended) return this.#dispatch();
        this.#discarding = true;
        controller.resume();
      })
      .catch((err: unknown) => {
        // Not expected; but a request must not hang on it, nor the process fall over.
        if (this.#done) return;
        this.#done = true;
        controller.abort(err as Error);
        if (this.#relaying) this.#res.destroy();
        else failed(this.#reply, err);
      });
  }
}

/**
 * The request's body stream, when it has one: only a Transfer-Encoding or a non-zero
 * Content-Length says so (RFC 9112 §6.3), whatever the content type. It is the stream the body
 * limit counts when there is one (limits.ts), else the request itself: fastify does not parse
 * GET and HEAD bodies.
 */
export function requestBody(request: FastifyRequest): Readable | undefined {
  const headers = request.headers;
  const length = headers['content-length'];
  if (headers['transfer-encoding'] === undefined && (length === undefined || length === '0')) return undefined;
  return (request.body as Readable | undefined) ?? request.raw;
}

/** The body's length when it is known and small enough to keep; else undefined. */
export function keptLength(request: FastifyRequest, limitBytes: number): number | undefined {
  const header = request.headers['content-length'];
  if (request.headers['transfer-encoding'] !== undefined || header === undefined || !/^\d+$/.test(header)) return undefined;
  const length = Number(header);
  return length <= limitBytes ? length : undefined;
}

/** Reads a body of a known `length` into memory; BSC_BAD_REQUEST when it does not match. */
export async function readBody(body: Readable, length: number): Promise<Buffer> {
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
