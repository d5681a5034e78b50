// A real process tree for the workers tests: `node dist/cli.js serve` with `workers: 2`, a
// scriptable token endpoint and an upstream on 127.0.0.1, and helpers to read what the tree did
// (its log lines by worker, its admin endpoints, its process ids).

import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closeServer } from '../../src/demo/token-server.js';
import { tempFiles } from '../helpers/config.js';
import { run, type Running } from '../helpers/process.js';
import { freePort, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';

export const clientSecret = 'workers-client-secret-5c1d';

export interface Upstream {
  readonly url: string;
  /** The Authorization header of every request it saw, in order. */
  readonly seen: string[];
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  close(): Promise<void>;
}

export async function startUpstream(): Promise<Upstream> {
  const seen: string[] = [];
  const state: Upstream = {
    url: '',
    seen,
    handler: (_req, res) => res.end('ok'),
    close: () => closeServer(server),
  };
  const server: Server = createServer((req, res) => {
    seen.push(req.headers.authorization ?? '');
    state.handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (state as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

export interface Tree {
  readonly sidecar: Running;
  readonly configFile: string;
  readonly proxyPort: number;
  readonly adminUrl: string;
  /** The socket path, with `socket: true`. */
  readonly socket?: string;
  /** Parsed JSON log lines so far. */
  lines(): Record<string, unknown>[];
  /** GET on the admin listener: status and body. */
  admin(path: string): Promise<{ status: number; body: string }>;
  /** The pid of each worker, by worker number, as /livez reports them. */
  workerPids(): Promise<Record<string, number>>;
  /** SIGTERM, and the exit code. */
  stop(): Promise<number | string>;
}

export interface TreeOptions {
  readonly upstream: string;
  readonly tokenUrl: string;
  readonly extra?: string;
  readonly socket?: boolean;
  readonly env?: NodeJS.ProcessEnv;
  /** The client secret goes in through this variable (${VAR} in the file) instead of the file. */
  readonly secretVariable?: string;
  /** The `routes:` section in place of the one route `api` to `upstream` with a token from `tokenUrl`. */
  readonly routes?: string;
}

export function configText(options: TreeOptions & { proxyPort: number; adminPort: number; socketPath?: string }): string {
  const listen = options.socketPath ? `listen: { socket: ${options.socketPath}, mode: "0640" }` : `listen: { host: 127.0.0.1, port: ${options.proxyPort} }`;
  const secret = options.secretVariable ? `\${${options.secretVariable}}` : clientSecret;
  const routes = options.routes ?? `routes:\n  - name: api\n    upstream: ${options.upstream}\n    auth: { tokenUrl: ${options.tokenUrl}, clientId: workers-client, clientSecret: "${secret}" }\n`;
  return `workers: 2\n${listen}\nadmin: { port: ${options.adminPort} }\nlogLevel: info\n${options.extra ?? ''}${routes}`;
}

export async function startTree(options: TreeOptions): Promise<Tree> {
  const files = tempFiles('bsc-workers-');
  const [proxyPort, adminPort] = [await freePort(), await freePort()];
  const socketPath = options.socket ? `${files.dir}/proxy.sock` : undefined;
  const configFile = files.file('sidecar.yaml', configText({ ...options, proxyPort, adminPort, ...(socketPath ? { socketPath } : {}) }));
  const sidecar = run(['serve', '--config', configFile], options.env ?? {});
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const tree: Tree = {
    sidecar,
    configFile,
    proxyPort,
    adminUrl,
    ...(socketPath ? { socket: socketPath } : {}),
    lines: () =>
      sidecar
        .output()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    admin: async (path) => {
      const res = await fetch(adminUrl + path);
      return { status: res.status, body: await res.text() };
    },
    async workerPids() {
      const { body } = await tree.admin('/livez');
      const workers = (JSON.parse(body) as { workers: { worker: string; pid?: number }[] }).workers;
      return Object.fromEntries(workers.map((w) => [w.worker, w.pid as number]));
    },
    async stop() {
      if (sidecar.child.exitCode === null) sidecar.child.kill('SIGTERM');
      return sidecar.exited;
    },
  };
  try {
    await sidecar.waitFor(/"msg":"workers listening"/, 15_000);
  } catch (err) {
    // Not left running: its pipes would keep the test file's process alive after the failure.
    sidecar.child.kill('SIGKILL');
    throw err;
  }
  return tree;
}

/** The number of request log lines each worker wrote. */
export function requestsByWorker(tree: Tree): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of tree.lines()) if (line.msg === 'request') counts[String(line.worker)] = (counts[String(line.worker)] ?? 0) + 1;
  return counts;
}

/**
 * GETs on new connections, one at a time, until both workers have served one (each 200). The
 * primary's round-robin alternates; SO_REUSEPORT (listen.ts) spreads connections by a hash of
 * their addresses, so a few may all land on one worker.
 */
export async function untilBothWorkersServed(tree: Tree, prefix: string): Promise<void> {
  for (let i = 0; i < 60 && Object.keys(requestsByWorker(tree)).length < 2; i += 1) {
    const { status } = await get(tree, `${prefix}/${i}`);
    if (status !== 200) throw new Error(`${prefix}/${i}: ${status}`);
    await until(() => Object.values(requestsByWorker(tree)).reduce((a, b) => a + b, 0) > i, 5_000, 'the request line');
  }
  if (Object.keys(requestsByWorker(tree)).length < 2) throw new Error(`one worker served all 60 requests: ${JSON.stringify(requestsByWorker(tree))}`);
}

/** A GET through the proxy on a new connection each time (so the kernel and cluster spread them over the workers). */
export function get(tree: Tree, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const target = tree.socket ? { socketPath: tree.socket, path } : { host: '127.0.0.1', port: tree.proxyPort, path };
    httpRequest({ ...target, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

/** The value of one Prometheus series in a /metrics text, summed over the series matching `labels`. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => have[key] === value)) sum += Number(match[3]);
  }
  return sum;
}

/** Whether a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A process's environment and command line, as /proc has them. */
export function procText(pid: number): string {
  return `${readFileSync(`/proc/${pid}/environ`, 'latin1')}\n${readFileSync(`/proc/${pid}/cmdline`, 'latin1')}`;
}

export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export { startScriptedTokenServer, type ScriptedTokenServer };
