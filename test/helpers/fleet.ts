// A fleet of sidecars for the shared token cache's tests: N real `node dist/cli.js` processes, each
// with its own config file and ports, started together; and an upstream that checks every token
// it is sent (a JWT of the scripted token server): expired ones and revoked ones get 401.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closeServer } from '../../src/demo/token-server.js';
import { audit } from './audit.js';
import { tempFiles } from './config.js';
import { run, type Running } from './process.js';
import type { TestRedis } from './redis.js';
import { freePort, type ScriptedTokenServer } from './servers.js';

export interface Replica {
  readonly port: number;
  readonly adminPort: number;
  readonly process: Running;
  /** GET `path` through this replica: its status. Never throws (a failed connection is status 0). */
  get(path: string): Promise<number>;
  /** A metric's value on /metrics (the first series whose labels contain `labels`), or undefined. */
  metric(name: string, labels?: string): Promise<number | undefined>;
}

export interface Fleet {
  readonly replicas: readonly Replica[];
  /** Everything every replica printed. */
  output(): string[];
  close(): Promise<void>;
}

/**
 * Starts `count` sidecars with the config `configFor(port, adminPort)` (JSON is YAML), and waits
 * until every one prints `listening` (with workers: N, /"msg":"workers listening"/).
 */
export async function startFleet(count: number, configFor: (port: number, adminPort: number) => Record<string, unknown>, listening = /"msg":"listening"/): Promise<Fleet> {
  const files = tempFiles('bsc-fleet-');
  const replicas: Replica[] = [];
  for (let i = 0; i < count; i++) {
    const port = await freePort();
    let adminPort = await freePort();
    while (adminPort === port) adminPort = await freePort();
    const file = files.file(`replica-${i}.yaml`, JSON.stringify(configFor(port, adminPort)));
    const process = run(['--config', file]);
    replicas.push({
      port,
      adminPort,
      process,
      async get(path) {
        try {
          const response = await fetch(`http://127.0.0.1:${port}${path}`);
          await response.arrayBuffer();
          return response.status;
        } catch {
          return 0;
        }
      },
      async metric(name, labels = '') {
        const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
        const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{`) && candidate.includes(labels));
        return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
      },
    });
  }
  const fleet: Fleet = {
    replicas,
    output: () => replicas.map((replica) => replica.process.output()),
    async close() {
      await Promise.all(
        replicas.map(async (replica) => {
          replica.process.child.kill('SIGTERM');
          const timer = setTimeout(() => replica.process.child.kill('SIGKILL'), 10_000);
          await replica.process.exited;
          clearTimeout(timer);
        }),
      );
    },
  };
  try {
    await Promise.all(replicas.map((replica) => replica.process.waitFor(listening, 60_000)));
  } catch (err) {
    await fleet.close();
    throw err;
  }
  return fleet;
}

export interface CheckingUpstream {
  readonly url: string;
  /** Tokens answered 401 from now on. */
  readonly revoked: Set<string>;
  /** Every token seen, in order of arrival, with the path it came with. */
  readonly seen: { readonly token: string; readonly path: string }[];
  /** Requests whose token had expired on arrival (its JWT exp passed). */
  expired: number;
  close(): Promise<void>;
}

/** An upstream that answers 200 to a request with a live, unrevoked bearer JWT, else 401. */
export async function startCheckingUpstream(): Promise<CheckingUpstream> {
  const state = { url: '', revoked: new Set<string>(), seen: [] as { token: string; path: string }[], expired: 0, close: () => closeServer(server) };
  const server: Server = createServer((req, res) => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    let live = false;
    if (token) {
      state.seen.push({ token, path: req.url ?? '' });
      const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString() || '{}') as { exp?: number };
      live = typeof payload.exp === 'number' && payload.exp * 1000 > Date.now();
      if (!live) state.expired += 1;
    }
    const ok = live && !state.revoked.has(token as string);
    res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
    res.end(ok ? '{"ok":true}' : '{"error":"invalid_token"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

/** The fleet of the proofs. */
export const replicas = 8;
export const clientSecret = 'fleet-client-secret-0123';
audit.addSecret(clientSecret);

/**
 * The config of a fleet's replica: logging at trace level, the cache at `redis`, one route per
 * scope (prefix /SCOPE) to `upstream`, all with the same client.
 */
export function fleetConfig(redis: TestRedis, keyFile: string, tokens: ScriptedTokenServer, upstream: string, scopes: readonly string[]) {
  return (port: number, adminPort: number) => ({
    listen: { host: '127.0.0.1', port },
    admin: { host: '127.0.0.1', port: adminPort },
    logLevel: 'trace',
    // Generous bounds: 8 processes starting at once on a loaded 2-core machine can take seconds to
    // connect or to fetch, and a replica that gives up on the cache (connectTimeoutMs), or on the
    // replica fetching (half of tokenWaitMs), fetches its own token; the failing-cache tests prove
    // the short bounds.
    tokenCache: { url: redis.url, encryptionKeyFile: keyFile, timeoutMs: 2_000, connectTimeoutMs: 10_000 },
    routes: scopes.map((scope) => ({
      name: scope,
      prefix: `/${scope}`,
      upstream,
      auth: { tokenUrl: tokens.url, clientId: 'fleet-client', clientSecret, scope: `${scope}:things`, tokenWaitMs: 30_000, refreshOn401CooldownSeconds: 1, retry: { retries: 3, minDelayMs: 50, maxDelayMs: 200, maxTimeMs: 5_000 } },
    })),
  });
}

/** Grants by scope. */
export function grants(tokens: ScriptedTokenServer, scope: string): number {
  return tokens.requests.filter((request) => request.form.scope === `${scope}:things`).length;
}

/** Every token the upstream has seen with `path` (the route's prefix stripped) is revoked. */
export function revokeAll(upstream: CheckingUpstream, path: string): void {
  for (const seen of upstream.seen) if (seen.path === path) upstream.revoked.add(seen.token);
}

/** The replicas' log lines on tokens and the cache, for a failure's message. */
export function explain(fleet: Fleet): string {
  return fleet
    .output()
    .map((text, i) => text.split('\n').filter((line) => /token refreshed|token cache (connected|unreachable|reachable)|another replica/.test(line)).map((line) => `replica ${i}: ${line}`).join('\n'))
    .join('\n');
}

/** GET `path` `each` times at every replica at once: the statuses. */
export async function all(fleet: Fleet, path: string, each = 1): Promise<number[]> {
  return Promise.all(fleet.replicas.flatMap((replica) => Array.from({ length: each }, () => replica.get(path))));
}
