// bearerInterceptor: an undici dispatcher interceptor that gives every request to the API's
// origins the token of a token source (the caller's Authorization replaced) and replays a request
// once with a new token when the API answers 401, as the sidecar does: only when the request can
// be sent again (no body, or a string or Buffer body; a stream is sent once), only when the source
// has a different token to offer (it fetches one however many requests report the same token, and
// ignores reports within its cooldown), and otherwise the 401 reaches the caller as it came.
// Requests to any other origin (a redirect target included) pass untouched: `origins` is required.
//
//   const dispatcher = new Agent().compose(bearerInterceptor(source, { origins: ['https://api.example.com'] }));
//   await fetch('https://api.example.com/v2/things', { dispatcher });   // undici's fetch

import type { Dispatcher } from 'undici';
import { ConfigError, SidecarError } from '../errors.js';
import { tokenAfterRejection } from '../token/rejected.js';
import type { TokenSourceLike } from './token-source.js';

export interface BearerInterceptorOptions {
  /**
   * Origins (scheme, host and port, e.g. "https://api.example.com") that get the token; required.
   * A request that names another origin (a redirect target, another API through the same Agent)
   * passes untouched. A request that names no origin (dispatched to a Pool or Client, whose
   * origin is fixed when it is made) gets the token.
   */
  readonly origins: readonly (string | URL)[];
}

type HeaderValue = string | string[] | undefined;

export function bearerInterceptor(source: TokenSourceLike, options: BearerInterceptorOptions): Dispatcher.DispatcherComposeInterceptor {
  const origins = allowedOrigins(options?.origins);
  return (dispatch) =>
    function bearer(opts, handler) {
      if (opts.origin !== undefined && !origins.has(new URL(String(opts.origin)).origin)) return dispatch(opts, handler);
      source.getToken().then(
        (token) => {
          const replayable = opts.body === undefined || opts.body === null || typeof opts.body === 'string' || opts.body instanceof Uint8Array;
          const first = { ...opts, headers: withAuthorization(opts.headers, token) };
          try {
            dispatch(first, new BearerHandler(dispatch, first, handler, source, token, replayable));
          } catch (err) {
            handler.onResponseError?.(failedController(err as Error), err as Error);
          }
        },
        (err: unknown) => handler.onResponseError?.(failedController(err as Error), err as Error),
      );
      // Dispatched later, once the token is there (as undici's own dns interceptor does).
      return true;
    };
}

/**
 * The origins that get the token, checked here (ConfigError naming `origins`): without the list,
 * a token would follow a redirect or a URL to any host the dispatcher reaches.
 */
function allowedOrigins(given: unknown): Set<string> {
  if (!Array.isArray(given) || given.length === 0) {
    throw new ConfigError(['origins: is required: the origins whose requests get the token, e.g. ["https://api.example.com"]']);
  }
  const problems: string[] = [];
  const origins = new Set<string>();
  given.forEach((origin: unknown, i) => {
    const url = URL.canParse(String(origin)) ? new URL(String(origin)) : undefined;
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) problems.push(`origins[${i}]: must be an absolute http:// or https:// URL`);
    else origins.add(url.origin);
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return origins;
}

/** The request's headers, in any of the forms undici takes, as an object without the caller's Authorization, plus ours. */
export function withAuthorization(headers: Dispatcher.DispatchOptions['headers'], token: string): Record<string, HeaderValue> {
  const out: Record<string, HeaderValue> = {};
  const add = (name: string, value: HeaderValue) => {
    const key = name.toLowerCase();
    if (key === 'authorization' || value === undefined) return;
    const previous = out[key];
    out[key] = previous === undefined ? value : ([] as string[]).concat(previous, value);
  };
  for (const [name, value] of headerEntries(headers)) add(name, value);
  out.authorization = `Bearer ${token}`;
  return out;
}

function* headerEntries(headers: Dispatcher.DispatchOptions['headers']): Iterable<[string, HeaderValue]> {
  if (headers === undefined || headers === null) return;
  if (Array.isArray(headers)) {
    // A flat [name, value, name, value, ...] list, or a list of [name, value] pairs.
    if (headers.length > 0 && Array.isArray(headers[0])) {
      for (const pair of headers as unknown as [string, HeaderValue][]) yield [String(pair[0]), text(pair[1])];
      return;
    }
    for (let i = 0; i + 1 < headers.length; i += 2) yield [String(headers[i]), text(headers[i + 1])];
    return;
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [name, value] of headers as Iterable<[string, HeaderValue]>) yield [String(name), text(value)];
    return;
  }
  for (const [name, value] of Object.entries(headers as Record<string, unknown>)) yield [name, text(value)];
}

function text(value: unknown): HeaderValue {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) return value.map(String);
  return String(value);
}

function failedController(reason: Error): Dispatcher.DispatchController {
  return { aborted: true, paused: false, reason, abort() {}, pause() {}, resume() {} };
}

/** One request's trip, its replay included: passes everything on to the caller's handler but a first 401 it can replay. */
class BearerHandler implements Dispatcher.DispatchHandler {
  readonly #dispatch: Dispatcher.Dispatch;
  readonly #opts: Dispatcher.DispatchOptions;
  readonly #handler: Dispatcher.DispatchHandler;
  readonly #source: TokenSourceLike;
  readonly #token: string;
  readonly #replayable: boolean;
  /** A 401 was seen (once per request: a second one goes to the caller). */
  #reported = false;
  /** A 401 is held (paused) while the source is asked for another token. */
  #deciding = false;
  /** Body chunks and the end of the held 401 that arrived all the same (small or empty bodies). */
  #held: Buffer[] = [];
  #heldEnd: { controller: Dispatcher.DispatchController; trailers: Record<string, string | string[] | undefined> } | undefined;
  /** The held 401 is read to its end and dropped; the request then goes out again. */
  #discarding = false;
  #replayToken = '';
  #done = false;

  constructor(dispatch: Dispatcher.Dispatch, opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, source: TokenSourceLike, token: string, replayable: boolean) {
    this.#dispatch = dispatch;
    this.#opts = opts;
    this.#handler = handler;
    this.#source = source;
    this.#token = token;
    this.#replayable = replayable;
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    // Called again for the replay, with its own controller (as undici's redirect handler does).
    this.#handler.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>, socket: import('node:stream').Duplex): void {
    this.#handler.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    if (statusCode === 401 && !this.#reported) {
      this.#reported = true;
      if (this.#replayable) return this.#decide(controller, statusCode, headers, statusMessage);
      // The caller gets this 401, but the requests after it get a new token.
      void this.#source.invalidate(this.#token);
    }
    this.#handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#discarding) return;
    if (this.#deciding) return void this.#held.push(chunk);
    this.#handler.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: Record<string, string | string[] | undefined>): void {
    if (this.#deciding) {
      this.#heldEnd = { controller, trailers };
      return;
    }
    if (this.#discarding) {
      this.#discarding = false;
      return this.#replay();
    }
    this.#handler.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#handler.onResponseError?.(controller, error);
  }

  /**
   * A first 401 for a request that can be sent again: the source is told, and with a different
   * token the 401 is dropped and the request sent again; without one it goes to the caller.
   */
  #decide(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage: string | undefined): void {
    this.#deciding = true;
    controller.pause();
    tokenAfterRejection(this.#source, this.#token)
      .then((fresh) => {
        this.#deciding = false;
        if (this.#done || controller.aborted) return;
        const held = this.#held;
        const ended = this.#heldEnd;
        this.#held = [];
        if (!fresh) {
          this.#handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
          for (const chunk of held) this.#handler.onResponseData?.(controller, chunk);
          if (ended) this.#handler.onResponseEnd?.(ended.controller, ended.trailers);
          else controller.resume();
          return;
        }
        this.#replayToken = fresh;
        if (ended) return this.#replay();
        this.#discarding = true;
        controller.resume();
      })
      .catch((err: unknown) => {
        // Not expected; but a request must not hang on it.
        if (this.#done) return;
        this.#done = true;
        controller.abort(err as Error);
        this.#handler.onResponseError?.(controller, new SidecarError('BSC_INTERNAL', `bearer interceptor failed: ${(err as Error).message}`, { cause: err }));
      });
  }

  #replay(): void {
    const opts = { ...this.#opts, headers: withAuthorization(this.#opts.headers, this.#replayToken) };
    this.#dispatch(opts, this);
  }
}
