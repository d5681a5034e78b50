// A worker's copy of the primary's token sources (workers > 1). Each route's current token is read
// from a local copy, kept up to date by the primary's pushes (no IPC per request). Without a usable
// copy, a request asks the primary, once for all requests of that moment; the primary answers as
// its TokenSource.getToken() does (the same wait, the same 503 errors). A 401 is reported to the
// primary, which applies the one-process rule (refresh only if the rejected token is still current)
// once for all workers.

import { TokenError } from '../token/errors.js';
import type { TokenProvider, TokenStatus } from '../token/token-source.js';
import type { RemoteAuth, ToPrimary, ToWorker, TokenPush, WireTokenError } from './messages.js';

/** The local copy of one of the primary's token sources; updated in place by pushes. */
interface Copy {
  token: string | undefined;
  usableUntil: number;
  status: TokenStatus | undefined;
}

type Answer = Extract<ToWorker, { type: 'bsc:token-answer' }>;

/** The copies of all the primary's token sources, and the channel to it. One per worker. */
export class RemoteTokens {
  /** Sends to the primary; false when the channel is closed. */
  readonly #send: (message: ToPrimary) => boolean;
  readonly #copies = new Map<number, Copy>();
  /** The asks awaiting an answer: the token source each asked for, and how to settle it. */
  readonly #asks = new Map<number, { readonly tokenSource: number; settle(answer: Answer): void }>();
  #nextAsk = 0;
  #gone = false;

  constructor(send: (message: ToPrimary) => boolean) {
    this.#send = send;
  }

  copy(tokenSource: number): Copy {
    let copy = this.#copies.get(tokenSource);
    if (!copy) {
      copy = { token: undefined, usableUntil: 0, status: undefined };
      this.#copies.set(tokenSource, copy);
    }
    return copy;
  }

  /** A push from the primary. A closed source's copy is emptied and dropped. */
  update(push: TokenPush): void {
    const copy = this.copy(push.tokenSource);
    copy.token = push.token;
    copy.usableUntil = push.usableUntil ?? 0;
    copy.status = push.status;
    if (push.status.state === 'closed') this.#copies.delete(push.tokenSource);
  }

  /** Whether the primary still has this source (no push has closed it). */
  has(tokenSource: number): boolean {
    return this.#copies.has(tokenSource);
  }

  /** An answer of the primary; one for another token source than its ask's is no answer to it (never a token for the wrong route). */
  answered(answer: Answer): void {
    const ask = this.#asks.get(answer.id);
    if (!ask || ask.tokenSource !== answer.tokenSource) return;
    this.#asks.delete(answer.id);
    ask.settle(answer);
  }

  /**
   * Asks the primary for a token. The primary answers within the route's tokenWaitMs (its
   * TokenSource.getToken bounds the wait); `timeoutMs` only bounds an answer that never comes (a
   * primary gone or stuck), and after the primary has gone an ask is answered at once: a request
   * never hangs on the channel.
   */
  ask(tokenSource: number, timeoutMs: number): Promise<Answer> {
    const id = ++this.#nextAsk;
    if (this.#gone) return Promise.resolve(shuttingDown(id, tokenSource));
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#asks.delete(id);
        resolve({ type: 'bsc:token-answer', id, tokenSource, error: { code: 'BSC_TOKEN_UNAVAILABLE', message: `no valid token: the sidecar's primary process did not answer within ${timeoutMs} ms; retry the request`, retryable: true, retryAfterMs: 1000 } });
      }, timeoutMs);
      this.#asks.set(id, {
        tokenSource,
        settle: (answer) => {
          clearTimeout(timer);
          resolve(answer);
        },
      });
      if (!this.#send({ type: 'bsc:token-wanted', id, tokenSource })) this.disconnected();
    });
  }

  rejected(tokenSource: number, token: string): void {
    this.#send({ type: 'bsc:rejected', tokenSource, token });
  }

  /** The primary has gone (or this worker is stopping): whoever waits, and whoever asks from now on, gets a 503. */
  disconnected(): void {
    this.#gone = true;
    const waiting = [...this.#asks];
    this.#asks.clear();
    for (const [id, ask] of waiting) ask.settle(shuttingDown(id, ask.tokenSource));
  }

  source(name: string, auth: RemoteAuth): RemoteTokenSource {
    return new RemoteTokenSource(name, auth, this);
  }
}

export class RemoteTokenSource implements TokenProvider {
  readonly name: string;
  readonly #tokenSource: number;
  /** How long the primary may take to answer an ask: the route's tokenWaitMs, and a margin for the channel. */
  readonly #askTimeoutMs: number;
  readonly #tokens: RemoteTokens;
  readonly #copy: Copy;
  /** The ask under way: every request without a token meanwhile waits for the same answer. */
  #asking: Promise<string> | undefined;
  #closed = false;
  #closedReason = 'the token source is closed (shutting down)';

  constructor(name: string, auth: RemoteAuth, tokens: RemoteTokens) {
    this.name = name;
    this.#tokenSource = auth.tokenSource;
    this.#askTimeoutMs = auth.tokenWaitMs + askMarginMs;
    this.#tokens = tokens;
    this.#copy = tokens.copy(auth.tokenSource);
  }

  /** The primary starts its sources. */
  start(): void {}

  peek(): string | undefined {
    const copy = this.#copy;
    return copy.token !== undefined && Date.now() < copy.usableUntil ? copy.token : undefined;
  }

  async getToken(): Promise<string> {
    if (this.#closed) throw unavailable(this.name, this.#closedReason);
    const token = this.peek();
    if (token !== undefined) return token;
    if (this.#asking) return this.#asking;
    const asking = this.#ask().finally(() => {
      // Not a later ask's: invalidate() may have let one start meanwhile.
      if (this.#asking === asking) this.#asking = undefined;
    });
    this.#asking = asking;
    return asking;
  }

  async #ask(): Promise<string> {
    const answer = await this.#tokens.ask(this.#tokenSource, this.#askTimeoutMs);
    if (this.#closed) throw unavailable(this.name, this.#closedReason);
    if (answer.token === undefined) throw tokenError(answer.error);
    // The push with the same token may still be on its way (not if a push closed the source meanwhile).
    if (answer.usableUntil !== undefined && answer.usableUntil > this.#copy.usableUntil && this.#tokens.has(this.#tokenSource)) {
      this.#copy.token = answer.token;
      this.#copy.usableUntil = answer.usableUntil;
    }
    return answer.token;
  }

  /** The upstream answered 401 with `token`: the primary decides, once for all workers, whether to fetch another. */
  invalidate(token: string): Promise<void> {
    if (this.#copy.token === token) {
      this.#copy.token = undefined;
      this.#copy.usableUntil = 0;
      // An ask from before the rejection could still bring back the rejected token.
      this.#asking = undefined;
    }
    this.#tokens.rejected(this.#tokenSource, token);
    return Promise.resolve();
  }

  status(): TokenStatus {
    if (this.#closed) return { name: this.name, state: 'closed' };
    return this.#copy.status ?? { name: this.name, state: 'starting' };
  }

  close(reason?: string): void {
    this.#closed = true;
    if (reason !== undefined) this.#closedReason = reason;
  }
}

/** The channel's share of an ask's bound (RemoteTokenSource): beyond the primary's own tokenWaitMs. */
const askMarginMs = 2_000;

function shuttingDown(id: number, tokenSource: number): Answer {
  return { type: 'bsc:token-answer', id, tokenSource, error: { code: 'BSC_TOKEN_UNAVAILABLE', message: 'no valid token: the sidecar is shutting down', retryable: true, retryAfterMs: 1000 } };
}

function unavailable(route: string, reason: string): TokenError {
  return new TokenError('BSC_TOKEN_UNAVAILABLE', `no valid token for route "${route}": ${reason}`, { retryable: true, retryAfterMs: 1000 });
}

function tokenError(error: WireTokenError | undefined): TokenError {
  if (!error) return new TokenError('BSC_TOKEN_UNAVAILABLE', 'no valid token', { retryable: true, retryAfterMs: 1000 });
  return new TokenError(error.code, error.message, { retryable: error.retryable, ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }) });
}
