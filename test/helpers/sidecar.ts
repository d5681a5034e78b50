// Starts the sidecar in-process on ephemeral ports with its log lines captured, for tests.

import { Writable } from 'node:stream';
import { resolveConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/logger.js';
import { createSidecar, type ReloadResult, type Sidecar, type SidecarOptions } from '../../src/server.js';
import { audit } from './audit.js';

export interface TestSidecar {
  readonly sidecar: Sidecar;
  readonly proxyUrl: string;
  readonly adminUrl: string;
  /** Every log line written so far, raw. */
  readonly logs: string[];
  /** Reloads with `raw`, completed with the same defaults as at the start (ports 0 and all). */
  reload(raw: Record<string, unknown>): Promise<ReloadResult>;
  close(): Promise<void>;
}

/**
 * `env`: what ${VAR} and HTTPS_PROXY / HTTP_PROXY / NO_PROXY are read from (at start and at a
 * reload); by default the test's environment without those three, so that a proxy set on the
 * machine does not carry the tests' traffic.
 */
export async function startSidecar(raw: Record<string, unknown>, { env, ...options }: Omit<SidecarOptions, 'logger'> & { logLevel?: string; env?: NodeJS.ProcessEnv } = {}): Promise<TestSidecar> {
  const environment = env ?? Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(https?|no)_proxy$/i.test(name)));
  const resolve = (raw: Record<string, unknown>) => {
    const traces = audit.tracesTo === undefined ? {} : { tracing: { endpoint: audit.tracesTo, protocol: 'http/json' } };
    const config = resolveConfig({ listen: { port: 0 }, admin: { port: 0 }, drainTimeoutMs: 2000, logLevel: options.logLevel ?? audit.logLevel, ...traces, ...raw }, { env: environment });
    for (const route of config.routes) {
      const { clientSecret, privateKey } = route.auth;
      if (clientSecret) audit.addSecret(clientSecret.read());
      for (const key of [privateKey, route.auth.tls.clientCertificate?.key, route.tls.clientCertificate?.key]) if (key) audit.addPrivateKey(key.read());
    }
    return config;
  };
  const config = resolve(raw);
  const logs: string[] = [];
  audit.addOutput(logs);
  audit.ranAt(config.logLevel);
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logs.push(...chunk.toString().split('\n').filter(Boolean));
      callback();
    },
  });
  const sidecar = await createSidecar(config, { ...options, logger: createLogger({ level: config.logLevel, destination }) });
  const { proxyUrl, adminUrl } = await sidecar.listen();
  // What /metrics shows at the end belongs in the secret audit too (same text as the endpoint).
  const close = async () => {
    audit.addOutput([await sidecar.metrics.registry.metrics()]);
    await sidecar.close();
  };
  return { sidecar, proxyUrl, adminUrl, logs, reload: (next) => sidecar.reload(() => resolve(next)), close };
}

/** A route whose credentials the demo/scripted token server accepts; without a tokenUrl, `auth` names an issuer. */
export function route(tokenUrl: string | undefined, upstream: string, extra: Record<string, unknown> = {}, auth: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'api',
    upstream,
    auth: { ...(tokenUrl === undefined ? {} : { tokenUrl }), clientId: 'test-client', clientSecret: 'test-secret', retry: { retries: 2, minDelayMs: 10, maxDelayMs: 50, maxTimeMs: 2000 }, ...auth },
    ...extra,
  };
}

/** Waits until `check` returns true, polling; fails after `timeoutMs`. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The value of one series of the sidecar's metric (0 when it has none): `labels` are the series' own, or some of them. */
export async function metricValue(sidecar: TestSidecar, name: string, labels: Record<string, string>): Promise<number> {
  const metric = await sidecar.sidecar.metrics.registry.getSingleMetric(name)?.get();
  return metric?.values.find((v) => Object.entries(labels).every(([key, value]) => v.labels[key] === value))?.value ?? 0;
}
