// A cluster worker (workers > 1): the same proxy as one process, with the primary's token sources
// behind a local copy (remote-token-source.ts) and no admin listener. It gets its config from the
// primary, listens on the shared proxy listener, applies each config the primary sends with the
// same reload path as one process, answers the primary's metrics requests and drains when told to
// (or on SIGTERM/SIGINT: a signal to the whole process group). When the primary has gone (killed),
// node:cluster ends the worker at once: no worker outlives its primary. SIGHUP is the primary's to act on.

import cluster from 'node:cluster';
import { setLogLevel } from '../admin.js';
import { createLogger } from '../logger.js';
import { primaryOnlyMetrics } from '../metrics.js';
import type { SidecarConfig } from '../config/types.js';
import { createSidecar, type Sidecar } from '../server.js';
import { decodeConfig, isOurs, remoteAuth, type ToPrimary, type ToWorker } from './messages.js';
import { RemoteTokens } from './remote-token-source.js';
import { startIdleGc } from '../runtime/idle-gc.js';
import { startStreamGc } from '../runtime/stream-gc.js';
import { isTuningName, tuning as tuningOf, tuningVariable } from '../runtime/settings.js';

/** Runs until told to stop; resolves with the exit code. */
export function runWorker(workerId: string): Promise<number> {
  if (!cluster.isWorker) {
    process.stderr.write('bearer-sidecar: BSC_WORKER_SLOT is set but this process is no cluster worker; unset it\n');
    return Promise.resolve(2);
  }
  /** False when the channel to the primary is closed (the message is not sent). */
  const send = (message: ToPrimary): boolean => {
    if (!process.connected || !process.send) return false;
    process.send(message, undefined, undefined, (err: Error | null) => {
      // The channel closed under the message: an ask will get no answer; the 'disconnect' that follows stops this worker.
      if (err) tokens.disconnected();
    });
    return true;
  };
  const tokens = new RemoteTokens(send);
  let sidecar: Sidecar | undefined;
  let starting: Promise<void> | undefined;
  let hash = '';
  let stopping: Promise<void> | undefined;
  let resolveExit: (code: number) => void = () => {};
  const exited = new Promise<number>((resolve) => (resolveExit = resolve));

  // The primary coordinates reloads; a SIGHUP sent to the whole process group is its to act on.
  process.on('SIGHUP', () => {});

  /** The primary's hash of each config it sent (this one lacks the credentials, so its own hash would differ). */
  const hashes = new WeakMap<SidecarConfig, string>();
  function decoded(wire: unknown, configHash: string): SidecarConfig {
    const config = decodeConfig(wire);
    hashes.set(config, configHash);
    return config;
  }

  async function start(wire: unknown, configHash: string): Promise<void> {
    const config = decoded(wire, configHash);
    const logger = createLogger({ level: config.logLevel }).child({ worker: workerId });
    let next: Sidecar;
    try {
      next = await createSidecar(config, {
        logger,
        listeners: 'proxy',
        sharedSocket: true,
        configHash: (config) => hashes.get(config),
        tokens: (route) => {
          const source = tokens.source(route.name, remoteAuth(route.auth));
          return { source, close: async (reason) => source.close(reason) };
        },
      });
      sidecar = next;
      await next.listen();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      logger.fatal({ code, reason: (err as Error).message }, 'cannot start');
      logger.flush();
      send({ type: 'bsc:failed', ...(code ? { code } : {}), reason: (err as Error).message });
      return stop(1);
    }
    hash = configHash;
    send({ type: 'bsc:listening', hash });
    // Each worker gives back the memory a burst grew and frees a stream's chunks as it goes, as a
    // single process does (runtime/idle-gc.ts, unref'd; runtime/stream-gc.ts).
    // The primary's profile (it sets the variable; its own check named a bad one).
    const profile = process.env[tuningVariable] ?? 'default';
    const tuning = tuningOf(isTuningName(profile) ? profile : 'default');
    if (tuning.idleCollection) startIdleGc();
    if (tuning.streamCollection) startStreamGc();
  }

  async function apply(wire: unknown, configHash: string): Promise<void> {
    await starting;
    if (!sidecar || stopping) return;
    const result = await sidecar.reload(() => decoded(wire, configHash));
    if (result.outcome !== 'failure' && result.outcome !== 'ignored') hash = configHash;
    send({ type: 'bsc:applied', hash });
  }

  async function metrics(id: number): Promise<void> {
    const all = (await sidecar?.metrics.registry.getMetricsAsJSON()) ?? [];
    send({ type: 'bsc:metrics-answer', id, metrics: all.filter((metric) => !primaryOnlyMetrics.has(metric.name)) });
  }

  function stop(code = 0): Promise<void> {
    stopping ??= (async () => {
      // While the primary is there it still answers asks: a request in the drain gets a token as in one process.
      if (!process.connected) tokens.disconnected();
      if (sidecar) {
        sidecar.logger.info('shutting down; draining in-flight requests');
        await sidecar.close().catch(() => {});
        await new Promise<void>((resolve) => sidecar?.logger.flush(() => resolve()));
      }
      resolveExit(code);
    })();
    return stopping;
  }

  process.on('message', (message: unknown) => {
    if (!isOurs<ToWorker>(message)) return;
    switch (message.type) {
      case 'bsc:token':
        tokens.update(message);
        break;
      case 'bsc:token-answer':
        tokens.answered(message);
        break;
      case 'bsc:config':
        if (!sidecar && !starting) starting = start(message.config, message.hash);
        else void apply(message.config, message.hash);
        break;
      case 'bsc:metrics':
        void metrics(message.id);
        break;
      case 'bsc:loglevel':
        // Before the worker has started, the level is set once it has.
        if (sidecar) setLogLevel(sidecar.logger, message.level);
        else void starting?.then(() => sidecar && setLogLevel(sidecar.logger, message.level));
        break;
      case 'bsc:shutdown':
        void stop();
        break;
    }
  });
  // A signal to the whole process group (Ctrl-C in a terminal): drain and exit; the primary does not restart it, as it is stopping too.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void stop());
  process.on('disconnect', () => {
    tokens.disconnected();
    void stop();
  });
  send({ type: 'bsc:hello' });
  return exited;
}
