// Ties each upstream request to the caller's connection: when the caller goes away, the upstream
// request is aborted at once, whether it is still uploading, waiting for the response headers or
// downloading. reply-from passes no signal to undici, so without this a request whose caller left
// while the upstream was thinking runs on until responseTimeoutMs, holding a connection.
//
// The signal travels from the route handler to undici through AsyncLocalStorage, and an undici
// interceptor on each upstream pool applies it; nothing else in the request path changes.

import { AsyncLocalStorage } from 'node:async_hooks';
import type { FastifyReply } from 'fastify';
import { errors, Pool, type Dispatcher } from 'undici';

const callerSignal = new AsyncLocalStorage<AbortSignal>();
const signals = new WeakMap<FastifyReply, AbortSignal>();

/** Aborted when the caller's connection closes before the response was fully written. */
export function callerGone(reply: FastifyReply): AbortSignal {
  let signal = signals.get(reply);
  if (!signal) {
    const controller = new AbortController();
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) controller.abort(new errors.RequestAbortedError('the caller closed the connection'));
    });
    signal = controller.signal;
    signals.set(reply, signal);
  }
  return signal;
}

/** Runs `forward` so that the upstream request it starts is aborted when the caller goes away. */
export function whileCallerConnected<T>(reply: FastifyReply, forward: () => T): T {
  return callerSignal.run(callerGone(reply), forward);
}

/** An undici Agent `factory`: one pool per origin, each applying the caller's signal. */
export function callerAwarePool(origin: string | URL, options: Pool.Options): Dispatcher {
  return new Pool(origin, options).compose((dispatch) => (opts, handler) => {
    const signal = callerSignal.getStore();
    return dispatch(opts, signal ? new AbortWithCaller(handler, signal) : handler);
  });
}

class AbortWithCaller implements Dispatcher.DispatchHandler {
  readonly #handler: Dispatcher.DispatchHandler;
  readonly #signal: AbortSignal;
  #controller: Dispatcher.DispatchController | undefined;
  readonly #onAbort = () => this.#controller?.abort(this.#signal.reason as Error);

  constructor(handler: Dispatcher.DispatchHandler, signal: AbortSignal) {
    this.#handler = handler;
    this.#signal = signal;
    signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  #done(): void {
    this.#signal.removeEventListener('abort', this.#onAbort);
    this.#controller = undefined;
  }

  // Called again for each attempt when undici retries; the latest attempt is the one to abort.
  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#controller = controller;
    this.#handler.onRequestStart?.(controller, context);
    if (this.#signal.aborted) controller.abort(this.#signal.reason as Error);
  }

  onRequestUpgrade(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onRequestUpgrade']>>): void {
    this.#done();
    this.#handler.onRequestUpgrade?.(...args);
  }

  onResponseStart(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseStart']>>): void {
    this.#handler.onResponseStart?.(...args);
  }

  onResponseData(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseData']>>): void {
    this.#handler.onResponseData?.(...args);
  }

  onResponseEnd(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseEnd']>>): void {
    this.#done();
    this.#handler.onResponseEnd?.(...args);
  }

  onResponseError(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseError']>>): void {
    this.#done();
    this.#handler.onResponseError?.(...args);
  }
}
