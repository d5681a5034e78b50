// Aborts the upstream request when the caller goes away before the response is complete, also
// while the upstream is still thinking (reply-from would otherwise hold that connection until
// responseTimeoutMs). The caller's socket travels with the request as a symbol-keyed header:
// reply-from copies headers with Object.assign (symbols included), undici's header handling
// ignores symbol keys, and the pool's interceptor picks it up. No AsyncLocalStorage (on Node 20
// it slows every promise in the process) and nothing allocated on the request path beyond one
// small handler wrapper.

import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { errors, Pool, type Dispatcher } from 'undici';

const kCallerSocket = Symbol('bearer-sidecar.callerSocket');

/** Marks the upstream request's headers with the caller's socket (see callerAwarePool). */
export function tagWithCaller(headers: IncomingHttpHeaders, socket: Socket): void {
  (headers as Record<symbol, unknown>)[kCallerSocket] = socket;
}

/** True once the caller's connection is gone. */
export function callerGone(socket: Socket): boolean {
  return socket.destroyed;
}

/** An undici Agent `factory`: one pool per origin, each watching the caller of every request. */
export function callerAwarePool(origin: string | URL, options: Pool.Options): Dispatcher {
  return new Pool(origin, options).compose((dispatch) => (opts, handler) => {
    const socket = (opts.headers as Record<symbol, Socket | undefined> | undefined)?.[kCallerSocket];
    return dispatch(opts, socket ? new AbortWithCaller(handler, socket) : handler);
  });
}

const callerClosed = () => new errors.RequestAbortedError('the caller closed the connection');

class AbortWithCaller implements Dispatcher.DispatchHandler {
  readonly #handler: Dispatcher.DispatchHandler;
  readonly #socket: Socket;
  #controller: Dispatcher.DispatchController | undefined;
  #watching = false;
  readonly #onClose = () => this.#controller?.abort(callerClosed());

  constructor(handler: Dispatcher.DispatchHandler, socket: Socket) {
    this.#handler = handler;
    this.#socket = socket;
  }

  #done(): void {
    if (this.#watching) this.#socket.removeListener('close', this.#onClose);
    this.#watching = false;
    this.#controller = undefined;
  }

  // Called again for each attempt when undici retries; the latest attempt is the one to abort.
  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#controller = controller;
    this.#handler.onRequestStart?.(controller, context);
    if (this.#socket.destroyed) return controller.abort(callerClosed());
    if (!this.#watching) {
      this.#socket.once('close', this.#onClose);
      this.#watching = true;
    }
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
