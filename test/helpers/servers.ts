// Real HTTP servers on 127.0.0.1 for tests: a scriptable token endpoint for fault injection, and
// the demo token server and echo upstream that ship with the project.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { signJwt } from '../../src/demo/jwt-hs256.js';
import { closeServer } from '../../src/demo/token-server.js';
import { audit } from './audit.js';

export const signingKey = 'test-signing-key';

export interface ScriptedRequest {
  readonly n: number;
  readonly method: string;
  /** The request target (path and query). */
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly form: Record<string, string>;
}

/** What the scripted endpoint does with one request. */
export type Answer =
  | { status: number; body?: unknown; headers?: Record<string, string> }
  | 'hang'
  | 'reset'
  /** A 200 that announces a full body, sends half of a valid token answer, then drops the connection. */
  | 'truncate';

export interface ScriptedTokenServer {
  readonly url: string;
  readonly requests: ScriptedRequest[];
  /** Every access_token the endpoint has sent, for tests that check none leaks. */
  readonly issued: string[];
  script: (request: ScriptedRequest) => Answer | Promise<Answer>;
  /** Its HTTP server (whose 'request' listener a TLS front can call). */
  readonly server: Server;
  close(): Promise<void>;
}

/**
 * A token endpoint whose every answer the test decides; by default it issues valid demo JWTs. It
 * answers any method and path (an issuer's discovery documents too: `request.method`, `request.path`).
 */
export async function startScriptedTokenServer(script?: ScriptedTokenServer['script'], options: { port?: number } = {}): Promise<ScriptedTokenServer> {
  const requests: ScriptedRequest[] = [];
  const issued: string[] = [];
  audit.addTokens(issued);
  const hanging: ServerResponse[] = [];
  const state: ScriptedTokenServer = {
    url: '',
    get server() {
      return server;
    },
    requests,
    issued,
    script: script ?? (() => ({ status: 200, body: issue(3600) })),
    close: async () => {
      for (const res of hanging) res.destroy();
      await closeServer(server);
    },
  };
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const request = { n: requests.length + 1, method: req.method ?? '', path: req.url ?? '', headers: req.headers, form: Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString())) };
    requests.push(request);
    // What a client presents from a file (assertions, subject and actor tokens) is as secret as a client secret.
    for (const field of ['client_assertion', 'subject_token', 'actor_token', 'client_secret']) {
      const value = request.form[field];
      if (value) audit.addSecret(value);
    }
    const answer = await state.script(request);
    if (answer === 'hang') return void hanging.push(res);
    if (answer === 'reset') return void req.socket.destroy();
    if (answer === 'truncate') {
      const full = JSON.stringify(issue(3600));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(full.length) });
      res.write(full.slice(0, full.length / 2));
      return void setTimeout(() => req.socket.destroy(), 20);
    }
    const body = answer.body === undefined ? '' : typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
    const token = (answer.body as { access_token?: unknown } | undefined)?.access_token;
    if (typeof token === 'string') issued.push(token);
    res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  (state as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/oauth2/token`;
  return state;
}

/** A token response body with a signed JWT the echo upstream accepts. */
export function issue(expiresIn: number | undefined, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    access_token: signJwt({ sub: 'test-client', iat: now, exp: now + (expiresIn ?? 3600) }, signingKey),
    token_type: 'Bearer',
    ...(expiresIn === undefined ? {} : { expires_in: expiresIn }),
    ...extra,
  };
}

/** A server that accepts connections and never answers (upstream timeout). */
export async function startSilentServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer(() => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => closeServer(server) };
}

/** A port with nothing listening on it, for a server a test starts in another process. */
export async function freePort(): Promise<number> {
  // Below Linux's ephemeral range (32768 and up): a port the kernel hands out for another test's
  // listen(0) or outgoing connection can never be this one between our check and the child's bind.
  for (let attempt = 0; ; attempt++) {
    const candidate = 20_000 + Math.floor(Math.random() * 12_000);
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(candidate, '127.0.0.1', () => resolve(true));
    });
    if (bound) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      return candidate;
    }
    if (attempt >= 50) throw new Error('no free port between 20000 and 32000 on 127.0.0.1');
  }
}

/** A discovery document for `issuer` naming `tokenEndpoint`. */
export function document(issuer: string, tokenEndpoint: string, extra: Record<string, unknown> = {}): Answer {
  return { status: 200, body: { issuer, token_endpoint: tokenEndpoint, token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'], ...extra } };
}

const notFound: Answer = { status: 404, body: { error: 'not_found' } };

/**
 * The scripted server as an issuer: GETs are answered from `documents` by path (404 otherwise),
 * everything else by `token` (a valid token by default).
 */
export function serveIssuer(server: ScriptedTokenServer, documents: Record<string, Answer | (() => Answer)>, token: (request: ScriptedRequest) => Answer = () => ({ status: 200, body: issue(3600) })): void {
  server.script = (request) => {
    if (request.method !== 'GET') return token(request);
    const answer = documents[request.path];
    return (typeof answer === 'function' ? answer() : answer) ?? notFound;
  };
}
