// Outbound proxies for tests: a real forward proxy (the `proxy` package, with Basic
// authentication switched on) in a child process that alone resolves the test's private host
// names, two broken ones in-process (one never answers, one closes every connection as soon as it
// is asked something), and the servers behind them, over HTTP and over TLS.

import { fork, type ChildProcess } from 'node:child_process';
import type { Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { closeServer } from '../../src/demo/token-server.js';
import { audit } from './audit.js';
import { makeTestPki, type TestPki } from './certs.js';
import { signingKey, startScriptedTokenServer, type ScriptedTokenServer } from './servers.js';

/** A host name that only the forward proxy resolves (to 127.0.0.1); the test process cannot. */
export const privateHost = 'api.internal.test';

export interface ProxyRequest {
  /** CONNECT, or the method of an absolute-form request. */
  readonly method: string;
  /** host:port for CONNECT, else the absolute URL. */
  readonly url: string;
  /** It carried the expected Proxy-Authorization. */
  readonly authorized: boolean;
  readonly withAuthorization: boolean;
}

export interface ForwardProxy {
  /** http://127.0.0.1:port, without credentials. */
  readonly origin: string;
  readonly port: number;
  /** The proxy URL with the test credentials (percent-encoded as a user would write them). */
  readonly url: string;
  /** Every request it was asked, once the child has reported them all. */
  requests(): Promise<ProxyRequest[]>;
  close(): Promise<void>;
}

export const proxyUser = 'proxy-user';
/** Has an @ and a :, so it only works percent-encoded in the URL. */
export const proxyPassword = 'p@ss:w0rd-proxy';

/**
 * Starts the forward proxy. With `credentials` (the default) it answers 407 unless
 * Proxy-Authorization is Basic proxyUser:proxyPassword. `deny`: CONNECT targets it refuses with 403.
 */
export async function startForwardProxy(options: { credentials?: boolean; deny?: string[] } = {}): Promise<ForwardProxy> {
  const credentials = options.credentials ?? true;
  const authorization = `Basic ${Buffer.from(`${proxyUser}:${proxyPassword}`).toString('base64')}`;
  const url = (port: number) => `http://${credentials ? `${proxyUser}:${encodeURIComponent(proxyPassword)}@` : ''}127.0.0.1:${port}`;
  // The password, as written and as sent, must never appear in what the sidecar lets out.
  audit.addSecret(proxyPassword);
  audit.addSecret(encodeURIComponent(proxyPassword));
  audit.addSecret(authorization.slice('Basic '.length));
  const child: ChildProcess = fork(new URL('./forward-proxy-child.ts', import.meta.url), [JSON.stringify({ authorization: credentials ? authorization : undefined, hosts: { [privateHost]: '127.0.0.1' }, deny: options.deny ?? [] })], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const seen: ProxyRequest[] = [];
  const syncs = new Map<number, () => void>();
  let nextSync = 0;
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the forward proxy exited (${code}) before listening`)));
    child.on('message', (message: { type: string; port?: number; id?: number } & ProxyRequest) => {
      if (message.type === 'listening') resolve(message.port as number);
      else if (message.type === 'request') seen.push({ method: message.method, url: message.url, authorized: message.authorized, withAuthorization: message.withAuthorization });
      else if (message.type === 'synced') syncs.get(message.id as number)?.();
    });
  });
  child.removeAllListeners('exit');
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    url: url(port),
    async requests() {
      const id = nextSync++;
      await new Promise<void>((resolve) => {
        syncs.set(id, resolve);
        child.send({ type: 'sync', id });
      });
      syncs.delete(id);
      return [...seen];
    },
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.send({ type: 'close' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface BrokenProxy {
  readonly origin: string;
  /** Connections it has accepted. */
  readonly connections: number;
  close(): Promise<void>;
}

/** A proxy that accepts connections and then `hang`s (never answers) or `close`s as soon as it is asked. */
export async function startBrokenProxy(behaviour: 'hang' | 'close'): Promise<BrokenProxy> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    if (behaviour === 'close') socket.once('data', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get connections() {
      return connections;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export interface ProxyTargets {
  /** The echo upstream (plain HTTP, WebSockets too) on 127.0.0.1; `received` records every request. */
  readonly upstream: EchoUpstream;
  /** The same upstream behind TLS, with a certificate for privateHost only. */
  readonly httpsPort: number;
  /** The same again, and it wants a client certificate from `pki` (mutual TLS). */
  readonly mutualTlsPort: number;
  readonly tokens: ScriptedTokenServer;
  /**
   * The same token endpoint behind TLS, with the same certificate; it also serves an OpenID
   * discovery document there, for the issuer https://privateHost:httpsTokensPort.
   */
  readonly httpsTokensPort: number;
  /** The CA that signed the certificates, for client certificates too. */
  readonly pki: TestPki;
  /** PEM file of that CA. */
  readonly caFile: string;
  close(): Promise<void>;
}

/**
 * What a proxy connects to: the demo echo upstream and a scripted token endpoint, each also behind
 * TLS with a certificate for privateHost (and no other name), made at test time.
 */
export async function startProxyTargets(): Promise<ProxyTargets> {
  const pki = makeTestPki();
  const certificates = pki.serverFor([`DNS:${privateHost}`]);
  const upstream = await startEchoUpstream({ signingKey });
  const tokens = await startScriptedTokenServer();
  const front = async (behind: HttpServer, options: { mutual?: boolean; discovery?: boolean } = {}): Promise<HttpsServer> => {
    // Keep-alive longer than any pause a loaded machine makes between a test's requests (tests count tunnels).
    const mutual = options.mutual ? { requestCert: true, rejectUnauthorized: true, ca: pki.ca } : {};
    const server = createHttpsServer({ key: certificates.key, cert: certificates.cert, keepAliveTimeout: 60_000, ...mutual });
    server.on('request', (req, res) => {
      if (!options.discovery || req.url !== '/.well-known/openid-configuration') return void behind.emit('request', req, res);
      const issuer = `https://${privateHost}:${(server.address() as AddressInfo).port}`;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer, token_endpoint: `${issuer}/oauth2/token`, token_endpoint_auth_methods_supported: ['client_secret_basic'] }));
    });
    server.on('upgrade', (req, socket, head) => behind.emit('upgrade', req, socket, head));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return server;
  };
  const httpsUpstream = await front(upstream.server);
  const mutualUpstream = await front(upstream.server, { mutual: true });
  const httpsTokens = await front(tokens.server, { discovery: true });
  const portOf = (server: HttpsServer) => (server.address() as AddressInfo).port;
  return {
    upstream,
    httpsPort: portOf(httpsUpstream),
    mutualTlsPort: portOf(mutualUpstream),
    tokens,
    httpsTokensPort: portOf(httpsTokens),
    pki,
    caFile: pki.caFile,
    async close() {
      const servers = [httpsUpstream, mutualUpstream, httpsTokens];
      for (const server of servers) server.closeAllConnections();
      await Promise.all([...servers.map((server) => closeServer(server)), upstream.close(), tokens.close()]);
    },
  };
}
