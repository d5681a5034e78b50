// The primary of `workers: N` (N > 1): it owns what there must be one of, and forks N workers that
// serve the proxy listener (node:cluster shares it, TCP or Unix socket). It holds the token sources
// (the same generation machinery as one process, src/server.ts), the admin listener, reloads
// (SIGHUP, --watch-config) and signals; it does not serve the proxy port itself.
// - Tokens: every change of a token source is pushed to every worker; a worker without a token
//   asks, and a worker that saw a 401 reports it; both are answered by the same TokenSource calls
//   as in one process (single flight, refresh only if the rejected token is still current).
// - Config: each worker gets the config in force, without credentials (messages.ts), at its start
//   and after every reload that changed it.
// - A worker that exits unexpectedly is logged, counted and restarted with backoff.
// - close(): no more restarts; every worker drains (drainTimeoutMs); then the admin listener and
//   the token sources close.

import cluster, { type Worker } from 'node:cluster';
import { Counter } from 'prom-client';
import type { Logger } from 'pino';
import type { WorkerReport } from '../admin.js';
import type { SidecarConfig } from '../config/types.js';
import { prepareSharedSocket } from '../listen.js';
import { launchPlan } from '../runtime/launch.js';
import { tuningVariable, type TuningName } from '../runtime/settings.js';
import { createSidecar, type LiveConfig, type ReloadResult, type Sidecar, type SidecarOptions } from '../server.js';
import { TokenError } from '../token/errors.js';
import type { TokenSource } from '../token/token-source.js';
import { encodeConfig, isOurs, type ToPrimary, type ToWorker, type TokenPush } from './messages.js';
import { workerEnvironment } from './environment.js';
import { workersMetrics } from './metrics.js';

/** Tells a forked worker its number ("1".."N"; a restarted worker keeps it). Not a config variable. */
export const workerSlotVariable = 'BSC_WORKER_SLOT';

/** Restart backoff: 0.5 s doubling to 30 s; back to 0.5 s once a worker has run 60 s. */
export const restartBackoff = { firstDelayMs: 500, maxDelayMs: 30_000, resetAfterMs: 60_000 } as const;

/** How long to wait before restarting a worker that ran `ranMs` and was last restarted after `lastDelayMs` (undefined: never). */
export function restartDelayMs(lastDelayMs: number | undefined, ranMs: number): number {
  if (lastDelayMs === undefined || ranMs >= restartBackoff.resetAfterMs) return restartBackoff.firstDelayMs;
  return Math.min(lastDelayMs * 2, restartBackoff.maxDelayMs);
}

interface Slot {
  /** "1".."N". */
  readonly id: string;
  worker: Worker | undefined;
  state: WorkerReport['state'];
  config: string | undefined;
  startedAt: number;
  /** The delay of its last restart (undefined: not restarted yet). */
  delayMs: number | undefined;
  timer: NodeJS.Timeout | undefined;
}

export interface Primary {
  readonly logger: Logger;
  readonly live: LiveConfig;
  listen(): Promise<void>;
  reload(): Promise<ReloadResult>;
  /** Told of a log level change (SIGUSR2), which it passes on to the workers. */
  logLevelChanged(level: string): void;
  close(): Promise<void>;
}

export async function createPrimary(config: SidecarConfig, workers: number, { tuning, ...options }: SidecarOptions & { logger: Logger; tuning: TuningName }): Promise<Primary> {
  const { logger } = options;
  const slots: Slot[] = Array.from({ length: workers }, (_, i) => ({ id: String(i + 1), worker: undefined, state: 'starting', config: undefined, startedAt: 0, delayMs: undefined, timer: undefined }));
  const broadcast = (message: ToWorker): void => {
    for (const slot of slots) send(slot.worker, message);
  };
  const relay = tokenRelay(broadcast);
  const restarts = new Counter({ name: 'bearer_sidecar_worker_restarts_total', help: 'Workers restarted after they exited unexpectedly.', registers: [] });
  const configMessage = (live: LiveConfig): ToWorker => ({ type: 'bsc:config', config: encodeConfig(live.config, (route) => relay.numberOf(sidecar.tokenSources.get(route))), hash: live.hash, loadedAt: live.loadedAt.toISOString() });
  const sidecar: Sidecar = await createSidecar(config, {
    ...options,
    listeners: 'admin',
    tokens: relay.tokens,
    adminWorkers: {
      reports: () => slots.map((slot) => ({ worker: slot.id, ...(slot.worker?.process.pid ? { pid: slot.worker.process.pid } : {}), state: slot.state, ...(slot.config ? { config: slot.config } : {}) })),
      logLevelChanged: (level) => broadcast({ type: 'bsc:loglevel', level }),
      serving: () => supervisor.allListened() && slots.some((slot) => slot.state === 'listening'),
      metrics: () => workersMetrics(sidecar.metrics.registry, slots.filter((slot) => slot.state === 'listening' && slot.worker).map((slot) => ({ id: slot.id, worker: slot.worker as Worker })), slots.map((slot) => slot.id)),
    },
    onReload: (live) => broadcast(configMessage(live)),
  });
  sidecar.metrics.registry.registerMetric(restarts);
  const supervisor = superviseWorkers(slots, {
    logger,
    tuning,
    restarts,
    drainBoundMs: () => sidecar.live.config.drainTimeoutMs + 3_000,
    greet(worker) {
      // Not at 'online': that comes before the worker's code listens, and what came meanwhile would be lost.
      send(worker, configMessage(sidecar.live));
      relay.pushAll(worker);
      // A level set at runtime (SIGUSR2, PUT /loglevel) holds for a restarted worker too.
      if (logger.level !== sidecar.live.config.logLevel) send(worker, { type: 'bsc:loglevel', level: logger.level });
    },
    tokenMessage: relay.answer,
  });

  return {
    logger,
    get live() {
      return sidecar.live;
    },
    async listen() {
      await sidecar.listen();
      await supervisor.start(config.listen);
      logger.info({ workers: slots.map((slot) => ({ worker: slot.id, pid: slot.worker?.process.pid })) }, 'workers listening');
      logger.flush();
    },
    reload: () => sidecar.reload(),
    logLevelChanged(level) {
      broadcast({ type: 'bsc:loglevel', level });
    },
    async close() {
      await supervisor.stop();
      await sidecar.close();
    },
  };
}

/** Sends a message to a worker that is still connected (one that has gone misses it). */
function send(worker: Worker | undefined, message: ToWorker): void {
  if (worker?.isConnected()) worker.send(message, (err: Error | null) => void err);
}

interface TokenRelay {
  /** SidecarOptions.tokens: the standard token source, numbered, each change pushed to every worker. */
  readonly tokens: NonNullable<SidecarOptions['tokens']>;
  /** A token source's number (messages.ts RemoteAuth); 0 for none. */
  numberOf(source: object | undefined): number;
  /** Every token source's state, to one (new) worker. */
  pushAll(worker: Worker): void;
  /** A worker's token message: an ask (answered to that worker) or a rejection (401). */
  answer(worker: Worker, message: Extract<ToPrimary, { type: 'bsc:token-wanted' | 'bsc:rejected' }>): void;
}

/**
 * The token sources in force and being closed, by their number: every change of one is pushed to
 * every worker; a worker without a token asks, and a worker that saw a 401 reports it; both are
 * answered by the same TokenSource calls as in one process.
 */
function tokenRelay(broadcast: (message: ToWorker) => void): TokenRelay {
  const sources = new Map<number, TokenSource>();
  const numbers = new WeakMap<object, number>();
  let lastNumber = 0;

  function push(number: number, source: TokenSource, closed = false): TokenPush {
    const held = closed ? undefined : source.held();
    return { type: 'bsc:token', tokenSource: number, ...(held ? { token: held.value, usableUntil: held.usableUntil } : {}), status: source.status() };
  }

  /**
   * Answers an ask to the worker that asked, never to its slot's next worker: a restarted worker
   * numbers its asks from 1 again, so an answer meant for its predecessor (another route's token,
   * perhaps) would settle one of its own asks.
   */
  async function answerToken(worker: Worker, id: number, number: number): Promise<void> {
    const answer = (message: ToWorker) => send(worker, message);
    const source = sources.get(number);
    try {
      if (!source) throw new TokenError('BSC_TOKEN_UNAVAILABLE', 'no valid token: its auth settings changed in a config reload; retry the request', { retryable: true, retryAfterMs: 1000 });
      const token = await source.getToken();
      const held = source.held();
      answer({ type: 'bsc:token-answer', id, tokenSource: number, token, ...(held?.value === token ? { usableUntil: held.usableUntil } : {}) });
    } catch (err) {
      const error = err instanceof TokenError ? err : new TokenError('BSC_TOKEN_UNAVAILABLE', (err as Error).message, { retryable: true });
      answer({ type: 'bsc:token-answer', id, tokenSource: number, error: { code: error.code, message: error.message, retryable: error.retryable, ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }) } });
    }
  }

  /**
   * A worker's upstream rejected `token` (401): the one-process rule (TokenSource.invalidate). When
   * that drops the token, every worker hears it at once, as one process's requests would: none
   * sends the rejected token again, and each waits for the refresh (or gets the 503) instead.
   */
  function rejected(number: number, token: string): void {
    const source = sources.get(number);
    if (!source) return;
    const before = source.held()?.value;
    void source.invalidate(token);
    if (source.held()?.value !== before) broadcast(push(number, source));
  }

  return {
    tokens(_route, standard) {
      const number = ++lastNumber;
      const tokens = standard(() => broadcast(push(number, tokens.source as TokenSource)));
      const source = tokens.source as TokenSource;
      sources.set(number, source);
      numbers.set(source, number);
      return {
        source,
        async close(reason) {
          await tokens.close(reason);
          broadcast(push(number, source, true));
          sources.delete(number);
        },
      };
    },
    numberOf: (source) => (source ? numbers.get(source) : undefined) ?? 0,
    pushAll(worker) {
      for (const [number, source] of sources) send(worker, push(number, source));
    },
    answer(worker, message) {
      if (message.type === 'bsc:token-wanted') void answerToken(worker, message.id, message.tokenSource);
      else rejected(message.tokenSource, message.token);
    },
  };
}

interface SupervisorParts {
  readonly logger: Logger;
  /** The runtime settings each worker starts with (runtime/settings.ts), as this process has them. */
  readonly tuning: TuningName;
  readonly restarts: Counter;
  /** How long stop() waits for the workers to drain before it kills them, ms. */
  drainBoundMs(): number;
  /** A (re)started worker said hello: what it needs before it listens. */
  greet(worker: Worker): void;
  /** A worker's token message. */
  tokenMessage: TokenRelay['answer'];
}

/**
 * Forks a worker per slot; one that exits unexpectedly is logged, counted and restarted with
 * backoff; stop() has every worker drain (drainTimeoutMs), no more restarts.
 */
function superviseWorkers(slots: Slot[], { logger, tuning, restarts, drainBoundMs, greet, tokenMessage }: SupervisorParts): {
  /** Prepares the shared socket and forks every worker; resolves once all have listened, rejects (after stopping them) if one fails. */
  start(listen: SidecarConfig['listen']): Promise<void>;
  stop(): Promise<void>;
  /** Every worker has listened once (start-up is over). */
  allListened(): boolean;
} {
  let stopping = false;
  let allListened = false;
  /** Resolves once the first fork has listened (or failed: rejects). */
  let firstListening: { resolve(): void; reject(err: Error): void } | undefined;
  let socket: { opened(): void } = { opened() {} };
  // Each worker starts with this process's node flags and the profile's settings it lacks (a
  // primary on a Node without process.execve runs without them; its workers need not).
  const settings = launchPlan(tuning, process.execArgv, process.env);

  function fork(slot: Slot): void {
    slot.timer = undefined;
    slot.state = 'starting';
    slot.config = undefined;
    slot.startedAt = Date.now();
    const worker = cluster.fork(workerEnvironment(process.env, { ...settings.environment, [tuningVariable]: tuning, [workerSlotVariable]: slot.id }));
    slot.worker = worker;
    worker.on('message', (message: unknown) => {
      if (!isOurs<ToPrimary>(message)) return;
      switch (message.type) {
        case 'bsc:hello':
          greet(worker);
          break;
        case 'bsc:token-wanted':
        case 'bsc:rejected':
          tokenMessage(worker, message);
          break;
        case 'bsc:listening':
          slot.state = 'listening';
          slot.config = message.hash;
          socket.opened();
          checkAllListening();
          break;
        case 'bsc:applied':
          slot.config = message.hash;
          break;
        case 'bsc:failed':
          if (firstListening) {
            const error = Object.assign(new Error(`worker ${slot.id}: ${message.reason}`), message.code ? { code: message.code } : {});
            firstListening.reject(error);
            firstListening = undefined;
          }
          break;
      }
    });
    worker.once('exit', (code, signal) => {
      if (slot.worker !== worker) return;
      slot.worker = undefined;
      if (stopping || firstListening) {
        slot.state = 'stopping';
        // Before every worker listened: the start fails (a worker that could not listen said why first).
        firstListening?.reject(new Error(`worker ${slot.id} exited while starting (${signal ?? `code ${code}`})`));
        firstListening = undefined;
        return;
      }
      slot.state = 'restarting';
      const delayMs = restartDelayMs(slot.delayMs, Date.now() - slot.startedAt);
      slot.delayMs = delayMs;
      logger.warn({ worker: slot.id, pid: worker.process.pid, code, signal, restartInMs: delayMs }, 'worker exited unexpectedly; restarting it');
      restarts.inc();
      slot.timer = setTimeout(() => fork(slot), delayMs);
    });
  }

  function checkAllListening(): void {
    if (slots.every((slot) => slot.state === 'listening')) allListened = true;
    if (firstListening && allListened) {
      firstListening.resolve();
      firstListening = undefined;
    }
  }

  async function stop(): Promise<void> {
    stopping = true;
    const exits: Promise<void>[] = [];
    for (const slot of slots) {
      if (slot.timer) clearTimeout(slot.timer);
      slot.timer = undefined;
      const worker = slot.worker;
      if (!worker || worker.isDead()) continue;
      slot.state = 'stopping';
      exits.push(new Promise<void>((resolve) => worker.once('exit', () => resolve())));
      send(worker, { type: 'bsc:shutdown' });
    }
    // Each worker bounds its own drain by drainTimeoutMs; this only catches one that hangs.
    const boundMs = drainBoundMs();
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([Promise.all(exits).then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), boundMs)))]);
    clearTimeout(timer);
    if (late) {
      for (const slot of slots) if (slot.worker && !slot.worker.isDead()) slot.worker.process.kill('SIGKILL');
      logger.error({ boundMs }, 'workers did not stop in time; killed');
    }
  }

  return {
    async start(listen) {
      // Once, here: the workers only listen on the socket the primary holds for them.
      socket = await prepareSharedSocket(listen);
      cluster.setupPrimary({ execArgv: [...process.execArgv, ...settings.nodeFlags] });
      const listening = new Promise<void>((resolve, reject) => (firstListening = { resolve, reject }));
      for (const slot of slots) fork(slot);
      try {
        await listening;
      } catch (err) {
        await stop();
        throw err;
      }
    },
    stop,
    allListened: () => allListened,
  };
}
