// A local OAuth2 token endpoint for the demo, the dev stack and the tests. It behaves as the
// Megaport and Cyxtera endpoints are documented to: client credentials as HTTP Basic or in the
// form, grant_type=client_credentials, and a JSON answer with access_token, expires_in and
// token_type (plus scope, Cyxtera-style, when configured). Tokens are HS256 JWTs.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { signJwt } from './jwt-hs256.js';

export interface DemoClient {
  readonly id: string;
  readonly secret: string;
}

export interface TokenServerOptions {
  readonly host?: string;
  readonly port?: number;
  readonly path?: string;
  readonly clients: readonly DemoClient[];
  readonly signingKey: string;
  readonly expiresInSeconds?: number;
  /** Returned as `scope` (Cyxtera returns one). */
  readonly scope?: string;
  /** Which client authentication methods are accepted; default both. */
  readonly methods?: readonly ('client_secret_basic' | 'client_secret_post')[];
}

export interface TokenRequestRecord {
  readonly method: 'client_secret_basic' | 'client_secret_post';
  readonly clientId: string;
  readonly form: Record<string, string>;
}

export interface TokenServer {
  readonly url: string;
  readonly server: Server;
  /** Every accepted or refused token request, in order. */
  readonly requests: TokenRequestRecord[];
  close(): Promise<void>;
}

export async function startTokenServer(options: TokenServerOptions): Promise<TokenServer> {
  const path = options.path ?? '/oauth2/token';
  const methods = new Set(options.methods ?? ['client_secret_basic', 'client_secret_post']);
  const requests: TokenRequestRecord[] = [];

  const server = createServer((req, res) => {
    void handle(req, res).catch(() => {
      if (!res.headersSent) send(res, 500, { error: 'server_error' });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST' || req.url?.split('?')[0] !== path) return send(res, 404, { error: 'not_found' });
    if (!String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded')) {
      return send(res, 400, { error: 'invalid_request', error_description: 'expected a URL-encoded form' });
    }
    const form = Object.fromEntries(new URLSearchParams(await readBody(req)));
    const basic = parseBasic(req.headers.authorization);
    const method = basic ? 'client_secret_basic' : 'client_secret_post';
    const clientId = basic?.id ?? form.client_id ?? '';
    const secret = basic?.secret ?? form.client_secret ?? '';
    const { client_secret: _omit, ...recordedForm } = form;
    requests.push({ method, clientId, form: recordedForm });
    if (form.grant_type !== 'client_credentials') return send(res, 400, { error: 'unsupported_grant_type' });
    const client = options.clients.find((c) => c.id === clientId && c.secret === secret);
    if (!client || !methods.has(method)) {
      res.setHeader('www-authenticate', 'Basic realm="token"');
      return send(res, 401, { error: 'invalid_client' });
    }
    const expiresIn = options.expiresInSeconds ?? 3600;
    const now = Math.floor(Date.now() / 1000);
    const accessToken = signJwt({ sub: client.id, iat: now, exp: now + expiresIn, scope: options.scope }, options.signingKey);
    send(res, 200, { access_token: accessToken, expires_in: expiresIn, token_type: 'Bearer', ...(options.scope ? { scope: options.scope } : {}) });
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const address = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${address.port}${path}`,
    server,
    requests,
    close: () => closeServer(server),
  };
}

/** RFC 6749 §2.3.1: the id and secret are form-urlencoded before base64. */
function parseBasic(header: string | undefined): { id: string; secret: string } | undefined {
  if (!header?.toLowerCase().startsWith('basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const formDecode = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
  return { id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

// Run on its own (docker-compose): DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_SIGNING_KEY, PORT, HOST.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const env = process.env;
  const server = await startTokenServer({
    host: env.HOST ?? '127.0.0.1',
    port: Number(env.PORT ?? 9000),
    clients: [{ id: env.DEMO_CLIENT_ID ?? 'demo-client', secret: env.DEMO_CLIENT_SECRET ?? 'demo-secret' }],
    signingKey: env.DEMO_SIGNING_KEY ?? 'demo-signing-key',
    expiresInSeconds: Number(env.DEMO_EXPIRES_IN ?? 3600),
  });
  console.log(`demo token endpoint on ${server.url}`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void server.close().then(() => process.exit(0)));
}
