// For the security tests: exact bytes over a socket (fetch and node:http normalise or refuse what
// an attacker would send), a "foreign" server that records any request that reaches it, and a
// stack with a base-path upstream behind a root route and a prefixed route.

import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { closeServer } from '../../src/demo/token-server.js';
import { signingKey, startScriptedTokenServer, type ScriptedTokenServer } from './servers.js';
import { startSidecar, type TestSidecar } from './sidecar.js';

export interface RawResponse {
  /** 0 when the connection closed without an answer. */
  readonly status: number;
  readonly head: string;
  readonly body: string;
  /** Everything received, latin1. */
  readonly text: string;
}

/**
 * Writes `bytes` to host:port and collects what comes back until the server closes or
 * `idleMs` pass without data after the first answer (keep-alive), at most `timeoutMs` in all.
 */
export function rawRequest(port: number, bytes: string | Buffer, { idleMs = 150, timeoutMs = 5000 } = {}): Promise<RawResponse> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let idle: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(idle);
      clearTimeout(overall);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const head = split < 0 ? text : text.slice(0, split);
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1];
      resolve({ status: status ? Number(status) : 0, head, body: split < 0 ? '' : text.slice(split + 4), text });
    };
    const overall = setTimeout(finish, timeoutMs);
    socket.on('data', (data: Buffer) => {
      chunks.push(data);
      clearTimeout(idle);
      idle = setTimeout(finish, idleMs);
    });
    socket.on('error', () => {});
    socket.on('close', finish);
    socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  });
}

/** A GET over a fresh socket with exactly this request target. */
export function rawGet(port: number, target: string, headers = ''): Promise<RawResponse> {
  return rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${headers}Connection: close\r\n\r\n`);
}

/** The body of a raw response, de-chunked when it is chunked. */
export function decodeChunked(response: { head: string; body: string }): string {
  if (!/transfer-encoding: chunked/i.test(response.head)) return response.body;
  let out = '';
  let rest = response.body;
  for (let guard = 0; guard < 10_000; guard++) {
    const line = rest.indexOf('\r\n');
    const size = Number.parseInt(rest.slice(0, line), 16);
    if (!size) break;
    out += rest.slice(line + 2, line + 2 + size);
    rest = rest.slice(line + 2 + size + 2);
  }
  return out;
}

export interface ForeignServer {
  readonly url: string;
  readonly port: number;
  /** Every request that reached it, with its Authorization header if any. */
  readonly hits: { method: string; url: string; authorization: string | undefined }[];
  readonly server: Server;
  close(): Promise<void>;
}

/** The host a caller must never be able to reach through the sidecar. */
export async function startForeignServer(): Promise<ForeignServer> {
  const hits: ForeignServer['hits'] = [];
  const server = createServer((req: IncomingMessage, res) => {
    hits.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
    req.resume();
    res.end('foreign');
  });
  // A CONNECT that got through would arrive here as a 'connect' event.
  server.on('connect', (req: IncomingMessage, socket) => {
    hits.push({ method: 'CONNECT', url: req.url ?? '', authorization: req.headers.authorization });
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, hits, server, close: () => closeServer(server) };
}

export interface SecurityStack {
  readonly tokens: ScriptedTokenServer;
  readonly upstream: EchoUpstream;
  readonly foreign: ForeignServer;
  readonly sidecar: TestSidecar;
  /** The sidecar's proxy port. */
  readonly port: number;
  /** Paths the upstream received (raw request targets). */
  upstreamPaths(): string[];
  close(): Promise<void>;
}

/**
 * Token server, echo upstream with base path /base behind two routes ("root" at / and "api" at
 * /api), a foreign server, and a sidecar. `listen` and `routeExtra` are merged into the config.
 */
export async function startSecurityStack(options: { listen?: Record<string, unknown>; routeExtra?: Record<string, unknown>; logLevel?: string } = {}): Promise<SecurityStack> {
  const tokens = await startScriptedTokenServer();
  const upstream = await startEchoUpstream({ signingKey });
  const foreign = await startForeignServer();
  const auth = { tokenUrl: tokens.url, clientId: 'test-client', clientSecret: 'test-secret-value' };
  const sidecar = await startSidecar(
    {
      ...(options.listen ? { listen: { port: 0, ...options.listen } } : {}),
      routes: [
        { name: 'api', prefix: '/api', upstream: `${upstream.url}/base`, auth, ...options.routeExtra },
        { name: 'root', prefix: '/', upstream: `${upstream.url}/base`, auth, ...options.routeExtra },
      ],
    },
    options.logLevel ? { logLevel: options.logLevel } : {},
  );
  return {
    tokens,
    upstream,
    foreign,
    sidecar,
    port: Number(new URL(sidecar.proxyUrl).port),
    upstreamPaths: () => upstream.received.map((r) => r.url),
    async close() {
      await sidecar.close();
      await Promise.all([tokens.close(), upstream.close(), foreign.close()]);
    },
  };
}

/** Runs `test` against a fresh security stack and closes it whatever happens. */
export async function withSecurityStack(options: Parameters<typeof startSecurityStack>[0], test: (stack: SecurityStack) => Promise<void>): Promise<void> {
  const stack = await startSecurityStack(options);
  try {
    await test(stack);
  } finally {
    await stack.close();
  }
}

/** True when an upstream request target stays under /base. */
export function underBase(target: string): boolean {
  const path = target.split('?', 1)[0] as string;
  if (path !== '/base' && !path.startsWith('/base/')) return false;
  // And stays there once the upstream resolves it as a URL.
  return new URL(path, 'http://upstream.invalid').pathname.startsWith('/base');
}
