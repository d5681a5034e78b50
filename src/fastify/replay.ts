// The plugin's 401 replay, on @fastify/reply-from's seams: the http-proxy `handler` remembers how a
// request was sent (and keeps a small body in memory), and reply-from's `onResponse` sees the
// upstream's answer before the caller does. A first 401 is reported to the token source; with a
// different token the 401 is dropped and the request sent again (reply.from once more), else it
// goes to the caller as it came. The rules are the sidecar's (forward.ts): only requests that can
// be sent again (no body, or a body up to replayBodyLimitBytes with a known Content-Length), once.

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { callerGone, keptLength, readBody } from '../proxy/forward.js';
import { tokenAfterRejection } from '../token/rejected.js';
import type { TokenSource } from '../token/token-source.js';

/** What reply-from hands to `onResponse`: the upstream's status, headers and body. */
export interface UpstreamResponse {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly stream: Readable;
}

/** One request as the plugin sees it: its token, and what a replay needs. */
export interface RequestState {
  token: string;
  /** Sends (or sends again) the request upstream: reply.from, or the app's own handler. */
  send?: () => unknown;
  /** The reply's headers before the first answer was copied onto it. */
  headersBefore?: ReturnType<FastifyReply['getHeaders']>;
  keptBody?: Buffer;
  replayable: boolean;
  replayed: boolean;
}

export interface ReplayOptions {
  readonly name: string;
  readonly source: TokenSource;
  readonly bodyLimitBytes: number;
  readonly states: WeakMap<FastifyRequest, RequestState>;
  /** What happens to an answer that goes to the caller: the app's own onResponse, else reply.send. */
  readonly deliver: (request: FastifyRequest, reply: FastifyReply, res: UpstreamResponse) => void;
}

export class ReplayOn401 {
  readonly #options: ReplayOptions;

  constructor(options: ReplayOptions) {
    this.#options = options;
  }

  /**
   * Before the first send: keeps a small body so that it can be sent a second time (larger or
   * chunked ones stream, and such a request is not replayed). `send` sends the request.
   */
  async prepare(request: FastifyRequest, reply: FastifyReply, send: () => unknown): Promise<void> {
    const state = this.#options.states.get(request);
    if (!state) return void send();
    state.send = send;
    state.headersBefore = { ...reply.getHeaders() };
    if (request.body instanceof Readable) {
      const length = keptLength(request, this.#options.bodyLimitBytes);
      if (length === undefined) state.replayable = false;
      else {
        state.keptBody = await readBody(request.body, length);
        request.body = Readable.from(state.keptBody);
      }
    }
    send();
  }

  /** reply-from's `onResponse`: anything but a first, replayable 401 goes on as it came. */
  readonly onResponse = (request: FastifyRequest, reply: FastifyReply, res: UpstreamResponse): void => {
    const state = this.#options.states.get(request);
    if (res.statusCode !== 401 || !state || state.replayed) return this.#options.deliver(request, reply, res);
    state.replayed = true;
    if (!state.replayable || !state.send) {
      // The caller gets this 401, but the requests after it get a new token.
      void this.#options.source.invalidate(state.token);
      return this.#options.deliver(request, reply, res);
    }
    this.#replay(request, reply, res, state).catch((err: unknown) => {
      discard(res.stream);
      if (!reply.sent) reply.send(err);
    });
  };

  async #replay(request: FastifyRequest, reply: FastifyReply, res: UpstreamResponse, state: RequestState): Promise<void> {
    const { source, name } = this.#options;
    const fresh = await tokenAfterRejection(source, state.token);
    if (callerGone(reply.raw)) return discard(res.stream);
    if (!fresh) {
      request.log.debug({ route: name }, 'upstream answered 401 and no other token is available; passing the 401 on');
      return this.#options.deliver(request, reply, res);
    }
    discard(res.stream);
    // reply-from copied the 401's headers onto the reply before onResponse: back to how it was.
    const before = state.headersBefore ?? {};
    for (const header of Object.keys(reply.getHeaders())) if (!(header in before)) reply.removeHeader(header);
    reply.headers(before as Parameters<FastifyReply['headers']>[0]);
    state.token = fresh;
    if (state.keptBody) request.body = Readable.from(state.keptBody);
    request.log.debug({ route: name }, 'upstream answered 401; replaying the request with a new token');
    state.send?.();
  }
}

/** Drops an upstream body we will not send (its error, if any, concerns no one). */
function discard(stream: Readable): void {
  stream.on('error', () => {});
  stream.destroy();
}
