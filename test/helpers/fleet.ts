// A fleet of sidecars for the shared token cache's tests: N real `node dist/cli.js` processes, each
// with its own config file and ports, started together; and an upstream that checks every token
// it is sent (a JWT of the scripted token server): expired ones and revoked ones get 401.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closeServer } from '../../src/demo/token-server.js';
import { tempFiles } from './config.js';
import { run, type Running } from './process.js';
import { freePort } from './servers.js';

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
