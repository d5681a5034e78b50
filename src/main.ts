// The command line: serve (default), check and token. Each verb composes the pieces; none adds
// behaviour of its own. Started by cli.ts; in dist/ this file is the bundle of the CLI (see cli.ts).

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { envVariables } from './config/env.js';
import { tracingVariables } from './config/tracing-names.js';
import type { RouteConfig, SidecarConfig } from './config/types.js';
import { ConfigError } from './errors.js';
import { launchOutcome, notAppliedMessage, requestedTuning } from './runtime/launch.js';
import { badTuningMessage, isTuningName, tuning as tuningOf, tuningVariable, type Tuning } from './runtime/settings.js';
import { takeEarlyHangups } from './runtime/early-hangups.js';
import type { LiveConfig } from './server.js';
import type { TokenFetcher } from './token/fetcher.js';

// What only some verbs need is imported when it is needed: --help and --version load neither the
// config schema (zod, yaml) nor the server; `check` and `token` do not load the server's
// dependencies (fastify, prom-client, pino, close-with-grace). In the bundle (dist/main.js) these
// modules are still parsed, but their top-level code is not run.

const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const usage = `bearer-sidecar ${version}
A localhost proxy that adds OAuth2 client-credentials bearer tokens to every request it forwards.

Usage:
  bearer-sidecar [serve] [--config FILE] [--watch-config]
                                             run the proxy (the default); SIGHUP reloads the config
  bearer-sidecar check   [--config FILE]     fetch one token per route (and ask the shared token cache, if any); print ok or the reason; exit 1 on failure
  bearer-sidecar token   [--config FILE] [--route NAME]
                                             print a fresh access token to stdout, for scripts
Options:
  -c, --config FILE   YAML or JSON config file (default: $BEARER_SIDECAR_CONFIG, else the variables below)
      --watch-config  reload when the config file changes (also BEARER_SIDECAR_WATCH_CONFIG=true);
                      SIGHUP reloads in any case: routes change without dropping a connection,
                      a config that does not load changes nothing; listen, admin and workers
                      need a restart
      --route NAME    with "token": which route (needed when there are several)
      --tuning NAME   runtime settings (also ${tuningVariable}): default; lean (less memory,
                      slower large bodies); none (V8's and glibc's defaults)
  -h, --help          show this help
  -v, --version       print the version

Without a config file, one route is read from the environment:
${envVariables.map((v) => `  ${v.name.padEnd(40)} ${v.description}`).join('\n')}

With or without a file, outbound connections (token, upstream, WebSocket) honour, unless the
config's outboundProxy says otherwise (the lower-case form of each wins, as in curl):
  HTTPS_PROXY                              proxy for https:// targets, e.g. http://user:pass@proxy:3128
  HTTP_PROXY                               proxy for http:// targets
  NO_PROXY                                 targets that go direct: hosts, .domains, IPs, CIDRs, host:port, *

Traces (OpenTelemetry, OTLP over HTTP) are off unless an endpoint is set, here or in the config's
tracing block (whose fields win over these):
${tracingVariables.map((v) => `  ${v.name.padEnd(40)} ${v.description}`).join('\n')}

Config values may use \${VAR} and \${VAR:-default}. Presets: megaport, megaport-staging, cyxtera.
Exit codes: 0 ok, 1 failure, 2 bad usage or configuration.`;

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  // A worker of `workers: N` (forked with an IPC channel and its slot number; worker.ts checks that
  // node:cluster agrees): its config comes from the primary.
  if (env.BSC_WORKER_SLOT !== undefined && typeof process.send === 'function') {
    const { runWorker } = await import('./workers/worker.js');
    process.exit(await runWorker(env.BSC_WORKER_SLOT));
  }
  let values: { config?: string | undefined; route?: string | undefined; tuning?: string | undefined; 'watch-config'?: boolean | undefined; help?: boolean | undefined; version?: boolean | undefined };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        route: { type: 'string' },
        tuning: { type: 'string' },
        'watch-config': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
      allowPositionals: true,
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`bearer-sidecar: ${(err as Error).message}\nRun bearer-sidecar --help for usage.\n`);
    return 2;
  }
  if (values.help) return print(usage, 0);
  if (values.version) return print(version, 0);
  const verb = positionals[0] ?? 'serve';
  if (positionals.length > 1 || !['serve', 'check', 'token'].includes(verb)) {
    process.stderr.write(`bearer-sidecar: unknown command "${positionals.join(' ')}"\nRun bearer-sidecar --help for usage.\n`);
    return 2;
  }
  // Applied already where it can be (cli.ts, runtime/launch.ts); checked here, where usage errors are reported.
  const tuningName = requestedTuning(values.tuning, env);
  if (!isTuningName(tuningName)) {
    process.stderr.write(`bearer-sidecar: ${badTuningMessage(tuningName, values.tuning === undefined ? tuningVariable : '--tuning')}\n`);
    return 2;
  }

  // Before anything slow (loading modules, reading the config, listening): SIGHUP's default
  // action ends the process, and a service manager's reload may come right after its start.
  const hangups = verb === 'serve' ? catchHangups() : undefined;
  // A short-lived command ends on SIGHUP as any program does, one that came already included.
  if (verb !== 'serve' && takeEarlyHangups()) process.kill(process.pid, 'SIGHUP');
  const { configFile, loadConfig, watchConfigVariable } = await import('./config/index.js');
  const watchValue = env[watchConfigVariable] ?? '';
  if (!['', 'true', 'false'].includes(watchValue)) {
    process.stderr.write(`bearer-sidecar: ${watchConfigVariable} must be true or false\n`);
    return 2;
  }
  const watch = values['watch-config'] === true || watchValue === 'true';
  const file = configFile(values.config, env);
  if (watch && verb === 'serve' && !file) {
    process.stderr.write(`bearer-sidecar: --watch-config (${watchConfigVariable}) needs a config file (--config or BEARER_SIDECAR_CONFIG); the environment cannot change under a running process\n`);
    return 2;
  }
  // The text the config is loaded from, read first: the watch, which starts once the sidecar
  // listens, then sees an edit made in between (at worst one reload too many, never one too few).
  let loadedText: string | undefined;
  if (watch && verb === 'serve' && file) {
    try {
      loadedText = readFileSync(file, 'utf8');
    } catch {
      // loadConfig says what is wrong with it
    }
  }
  let config: SidecarConfig;
  try {
    config = loadConfig(values.config, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`bearer-sidecar: ${err.message}\n`);
      return 2;
    }
    throw err;
  }

  if (verb === 'check') return check(config);
  if (verb === 'token') return token(config, values.route);
  return serve(config, () => loadConfig(values.config, env), watch && file ? { file, loadedText } : undefined, hangups ?? catchHangups(), tuningOf(tuningName));
}

interface Hangups {
  /** From now on SIGHUP calls `reload`; it is called at once if one came before. */
  deliverTo(reload: () => void): void;
}

/**
 * Catches SIGHUP from now on. One that comes before the sidecar listens (`systemctl reload` just
 * after `systemctl start`: a Type=simple unit is active as soon as it is started) is kept and
 * delivered once the sidecar listens, instead of ending the process, which systemd would count as
 * a clean exit and not restart.
 */
function catchHangups(): Hangups {
  let reload: (() => void) | undefined;
  let pending = false;
  process.on('SIGHUP', () => {
    if (reload) reload();
    else pending = true;
  });
  // One that came while the executable loaded this module (cli.ts caught it).
  if (takeEarlyHangups()) pending = true;
  return {
    deliverTo(handler) {
      reload = handler;
      if (pending) {
        pending = false;
        handler();
      }
    },
  };
}

/** Runs the proxy until a signal stops it; `load` reads the config again on SIGHUP (and when the watched file changes). */
async function serve(config: SidecarConfig, load: () => SidecarConfig, watch: { file: string; loadedText: string | undefined } | undefined, hangups: Hangups, tuning: Tuning): Promise<number> {
  const [{ default: closeWithGrace }, { setLogLevel }, { createLogger }, { createSidecar }, { startIdleGc }, { startStreamGc }] = await Promise.all([
    import('close-with-grace'),
    import('./admin.js'),
    import('./logger.js'),
    import('./server.js'),
    import('./runtime/idle-gc.js'),
    import('./runtime/stream-gc.js'),
  ]);
  const logger = createLogger({ level: config.logLevel });
  // One line when this process runs without settings it needed a re-execution for (Node without process.execve).
  const outcome = launchOutcome();
  const notApplied = outcome && notAppliedMessage(outcome, fileURLToPath(new URL('cli.js', import.meta.url)));
  if (notApplied) logger.warn({ tuning: tuning.name, notApplied: outcome?.notApplied }, notApplied);
  const options = { logger, loadConfig: load, ...(watch ? { watchConfigFile: watch.file, ...(watch.loadedText === undefined ? {} : { watchConfigLoadedText: watch.loadedText }) } : {}) };
  // workers: 1 (the default) is one process, as ever; more: a primary and its workers (src/workers/).
  const workers = config.workers === 1 ? 1 : (await import('./runtime/cpus.js')).workerCount(config.workers);
  let levelChanged: (level: string) => void = () => {};
  let sidecar: { readonly live: LiveConfig; listen(): Promise<unknown>; reload(): Promise<unknown>; close(): Promise<void> };
  if (workers > 1) {
    const primary = await (await import('./workers/primary.js')).createPrimary(config, workers, { ...options, tuning: tuning.name });
    levelChanged = (level) => primary.logLevelChanged(level);
    sidecar = primary;
  } else sidecar = await createSidecar(config, options);
  // SIGUSR2 cycles info → debug → trace → info, for a look at a live problem without a restart.
  // Before listening: whoever sees the "listening" line may signal at once, and a SIGUSR2 that comes
  // before the handler ends the process (seen in CI under load).
  const cycle = ['info', 'debug', 'trace'];
  process.on('SIGUSR2', () => {
    setLogLevel(logger, cycle[(cycle.indexOf(logger.level) + 1) % cycle.length] as string);
    levelChanged(logger.level);
  });
  // Started once listening (below); the shutdown stops them.
  let idleGc: ReturnType<typeof startIdleGc> | undefined;
  let streamGc: ReturnType<typeof startStreamGc> | undefined;
  // SIGTERM and SIGINT drain and exit 0. Installed before listening, as SIGUSR2's is: the "listening"
  // line goes out at once (server.ts), and a SIGTERM sent on seeing it could otherwise arrive before
  // the handler and end the process by the signal (seen once in CI, Node 20 under load).
  const shutdown = closeWithGrace(
    {
      // No bound of its own (it would be fixed at start): the one below reads drainTimeoutMs when the signal comes, as a reload may change it.
      delay: null,
      // close-with-grace would treat SIGUSR2 (nodemon's restart signal) as a shutdown, and SIGHUP too.
      skip: ['SIGUSR2', 'SIGHUP'],
      logger: { error: (message: unknown) => logger.error(typeof message === 'string' ? message : { err: message }, 'shutdown') },
      onSecondSignal: (signal: string) => {
        logger.warn({ signal }, 'second signal; exiting now');
        logger.flush();
      },
    },
    async ({ signal, err }: { signal?: string; err?: Error }) => {
      if (err) logger.error({ err }, 'unexpected error; shutting down');
      else logger.info({ signal }, 'shutting down; draining in-flight requests');
      // Our own drain bound comes first; this one only catches a close that hangs.
      const boundMs = sidecar.live.config.drainTimeoutMs + 5_000;
      const hung = setTimeout(() => {
        logger.error({ boundMs }, 'shutdown did not finish in time; exiting');
        logger.flush();
        process.exit(1);
      }, boundMs);
      idleGc?.stop();
      streamGc?.stop();
      await sidecar.close();
      clearTimeout(hung);
      logger.info('stopped');
      await new Promise<void>((resolve) => logger.flush(() => resolve()));
    },
  );
  try {
    await sidecar.listen();
  } catch (err) {
    logger.fatal({ code: (err as NodeJS.ErrnoException).code, reason: (err as Error).message }, 'cannot start');
    logger.flush();
    // Its handlers go: close-with-grace would also run at beforeExit and end the process with 0.
    shutdown.uninstall();
    await sidecar.close().catch(() => {});
    return 1;
  }
  // SIGHUP reloads the config (systemd's ExecReload, kill -HUP); a bad one is logged and changes nothing.
  hangups.deliverTo(() => void sidecar.reload());
  // Memory back after a burst of traffic, and after start-up (see runtime/idle-gc.ts); its timer is unref'd.
  // Started after the signal handlers: it builds a V8 context (milliseconds), and a caller that saw
  // the "listening" line may signal at once (a SIGTERM or SIGUSR2 with no handler ends the process).
  idleGc = tuning.idleCollection ? startIdleGc() : undefined;
  // A stream's finished chunks freed as it goes (see runtime/stream-gc.ts).
  streamGc = tuning.streamCollection ? startStreamGc() : undefined;
  return -1; // keeps running
}

async function check(config: SidecarConfig): Promise<number> {
  let failed = 0;
  for (const route of config.routes) {
    await withTokenFetcher(route, async (fetcher) => {
      try {
        const t = await fetcher.fetch();
        const endpoint = fetcher.endpoint;
        const from = endpoint?.issuer ? `${endpoint.url} (discovered from issuer ${endpoint.issuer})` : endpoint?.url;
        if (endpoint?.warning) process.stdout.write(`warning ${route.name}: ${endpoint.warning}\n`);
        const via = endpoint && fetcher.via(endpoint.url);
        process.stdout.write(`ok      ${route.name}: token valid for ${Math.round(t.lifetimeSeconds)} s (from ${t.lifetimeFrom}) from ${from}${via ? ` through the outbound proxy ${via}` : ''}\n`);
      } catch (err) {
        failed += 1;
        const code = (err as { code?: unknown }).code;
        process.stdout.write(`FAILED  ${route.name}: ${(err as Error).message}${typeof code === 'string' && code.startsWith('BSC_') ? ` (${code})` : ''}\n`);
      }
    });
  }
  if (config.tokenCache) failed += await checkTokenCache(config.tokenCache);
  return failed === 0 ? 0 : 1;
}

/** The shared token cache answers (a sidecar would serve without it, each replica fetching its own tokens: worth knowing before a rollout). 1 if not. */
async function checkTokenCache(tokenCache: NonNullable<SidecarConfig['tokenCache']>): Promise<number> {
  const { openSharedTokenCache } = await import('./token/shared-cache/open.js');
  const cache = await openSharedTokenCache(tokenCache);
  try {
    process.stdout.write(`ok      token cache: ${await cache.check()}\n`);
    return 0;
  } catch (err) {
    process.stdout.write(`FAILED  token cache: ${(err as Error).message} (the sidecar serves without it, each replica fetching its own tokens)\n`);
    return 1;
  } finally {
    await cache.close();
  }
}

async function token(config: SidecarConfig, routeName: string | undefined): Promise<number> {
  let route: RouteConfig | undefined;
  if (routeName) route = config.routes.find((r) => r.name === routeName);
  else if (config.routes.length === 1) route = config.routes[0];
  if (!route) {
    const names = config.routes.map((r) => r.name).join(', ');
    process.stderr.write(`bearer-sidecar: ${routeName ? `no route named "${routeName}"` : 'several routes; pick one with --route'} (routes: ${names})\n`);
    return 2;
  }
  return withTokenFetcher(route, async (fetcher) => {
    try {
      const t = await fetcher.fetch();
      process.stdout.write(`${t.accessToken}\n`);
      return 0;
    } catch (err) {
      process.stderr.write(`bearer-sidecar: ${route.name}: ${(err as Error).message}\n`);
      return 1;
    }
  });
}

/** Runs `use` with the route's token fetcher, as the server makes it: its TLS settings and outbound proxy, discovery when auth.issuer is set. */
async function withTokenFetcher<T>(route: RouteConfig, use: (fetcher: TokenFetcher) => Promise<T>): Promise<T> {
  const [{ TokenFetcher }, { tokenDispatcher }] = await Promise.all([import('./token/fetcher.js'), import('./outbound/dispatcher.js')]);
  const dispatcher = tokenDispatcher(route.outboundProxy, route.auth.tls, route.auth.timeoutMs);
  try {
    return await use(new TokenFetcher(route.auth, { dispatcher, outboundProxy: route.outboundProxy }));
  } finally {
    await dispatcher?.close();
  }
}

function print(text: string, code: number): number {
  process.stdout.write(`${text}\n`);
  return code;
}

const code = await main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`bearer-sidecar: ${(err as Error).stack ?? String(err)}\n`);
  return 1;
});
if (code >= 0) process.exitCode = code;
