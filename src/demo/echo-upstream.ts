// An upstream API for the demo, the dev stack and the tests. It answers 401 unless the request
// carries a valid bearer token from the demo token server, and otherwise echoes what it received:
// method, path, query, headers and the body's size and SHA-256 (counted while streaming, so large
// uploads cost no memory). GET /bytes/N streams N bytes back, for download tests. A WebSocket
// upgrade with a valid token becomes an echo: every message comes back as it was sent.

import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import { WebSocketServer } from 'ws';
import { verifyJwt } from './jwt-hs256.js';
import { closeServer } from './token-server.js';

export interface EchoUpstreamOptions {
  readonly host?: string;
  readonly port?: number;
  readonly signingKey: string;
  /** Tokens to refuse although validly signed (revoked), for tests of the 401 replay. */
  readonly isRevoked?: (token: string) => boolean;
  /** Where the token is read from (a route's inject): default `authorization` with `Bearer`; scheme "" for the bare token. */
  readonly tokenIn?: { readonly header: string; readonly scheme: string };
}

export interface EchoRecord {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
}

export interface EchoUpstream {
  readonly url: string;
  readonly server: Server;
  /** Every request received, accepted or not. */
  readonly received: EchoRecord[];
  close(): Promise<void>;
}

const chunk = Buffer.alloc(64 * 1024, 'x');

export async function startEchoUpstream(options: EchoUpstreamOptions): Promise<EchoUpstream> {
  const received: EchoRecord[] = [];
  const server = createServer((req, res) => handle(req, res));
  const websockets = new WebSocketServer({ noServer: true });
  websockets.on('connection', (socket) => socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })));
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (!claimsOf(req)) {
      const body = JSON.stringify({ error: 'invalid_token', message: req.headers[tokenHeader] ? 'bearer token rejected' : 'no bearer token' });
      socket.end(`HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    websockets.handleUpgrade(req, socket, head, (ws) => websockets.emit('connection', ws, req));
  });

  const tokenHeader = options.tokenIn?.header.toLowerCase() ?? 'authorization';
  const tokenPrefix = options.tokenIn ? (options.tokenIn.scheme ? `${options.tokenIn.scheme} ` : '') : 'Bearer ';

  function claimsOf(req: IncomingMessage): Record<string, unknown> | undefined {
    const value = req.headers[tokenHeader];
    const token = typeof value === 'string' && value.startsWith(tokenPrefix) ? value.slice(tokenPrefix.length) : '';
    return token && !options.isRevoked?.(token) ? verifyJwt(token, options.signingKey) : undefined;
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const claims = claimsOf(req);
    if (!claims) {
      req.resume();
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer error="invalid_token"' });
      res.end(JSON.stringify({ error: 'invalid_token', message: req.headers[tokenHeader] ? 'bearer token rejected' : 'no bearer token' }));
      return;
    }
    const url = new URL(req.url ?? '/', 'http://upstream');
    const bytes = /^\/bytes\/(\d+)$/.exec(url.pathname);
    if (bytes && req.method === 'GET') return streamBytes(res, Number(bytes[1]));

    const hash = createHash('sha256');
    let size = 0;
    req.on('data', (data: Buffer) => {
      size += data.length;
      hash.update(data);
    });
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          method: req.method,
          path: url.pathname,
          query: url.search,
          headers: req.headers,
          tokenSubject: claims.sub,
          body: { bytes: size, sha256: hash.digest('hex') },
        }),
      );
    });
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const address = server.address() as AddressInfo;
  const close = async () => {
    for (const socket of websockets.clients) socket.terminate();
    await closeServer(server);
  };
  return { url: `http://${options.host ?? '127.0.0.1'}:${address.port}`, server, received, close };
}

function streamBytes(res: ServerResponse, total: number): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
  let left = total;
  const write = () => {
    while (left > 0) {
      const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= part.length;
      if (!res.write(part)) return void res.once('drain', write);
    }
    res.end();
  };
  write();
}

// Run on its own (docker-compose): DEMO_SIGNING_KEY, PORT, HOST.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const upstream = await startEchoUpstream({
    host: process.env.HOST ?? '127.0.0.1',
    port: Number(process.env.PORT ?? 9100),
    signingKey: process.env.DEMO_SIGNING_KEY ?? 'demo-signing-key',
  });
  console.log(`demo echo upstream on ${upstream.url}`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void upstream.close().then(() => process.exit(0)));
}
