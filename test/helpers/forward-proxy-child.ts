// A real forward proxy (the `proxy` package) in a process of its own, started by forward-proxy.ts.
// It runs apart from the test so that it alone resolves the test's private host names
// (api.internal.test → 127.0.0.1): a request that reaches such a host went through the proxy.
// It tells its parent of every request it is asked (CONNECT host:port, or an absolute-form URL),
// before it answers.

import dns from 'node:dns';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createProxy } from 'proxy';

interface Options {
  /** The Proxy-Authorization value it accepts; none: it asks for nothing. */
  readonly authorization?: string;
  /** Host names only this process resolves, to IPv4 addresses. */
  readonly hosts: Record<string, string>;
  /** CONNECT targets (host:port) it refuses with 403. */
  readonly deny: string[];
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;

// Every lookup of this process (the proxy's net.connect and http.request) sees the private names.
const lookup = dns.lookup;
(dns as { lookup: unknown }).lookup = (hostname: string, opts: unknown, callback?: unknown) => {
  const address = options.hosts[hostname.toLowerCase()];
  const done = (typeof opts === 'function' ? opts : callback) as (err: Error | null, address: unknown, family?: number) => void;
  if (address === undefined) return (lookup as (...args: unknown[]) => void)(hostname, opts, callback);
  const all = typeof opts === 'object' && opts !== null && (opts as { all?: boolean }).all;
  process.nextTick(() => (all ? done(null, [{ address, family: 4 }]) : done(null, address, 4)));
};

const server = createProxy(createServer());
server.authenticate = (req: IncomingMessage) => {
  const given = req.headers['proxy-authorization'];
  const authorized = options.authorization === undefined || given === options.authorization;
  process.send?.({ type: 'request', method: req.method, url: req.url, authorized, withAuthorization: given !== undefined });
  return authorized;
};
// Refusals by policy (403) come before the package's own CONNECT handler.
const [onConnect] = server.listeners('connect') as ((req: IncomingMessage, socket: Socket, head: Buffer) => void)[];
server.removeAllListeners('connect');
server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
  if (!options.deny.includes(req.url ?? '')) return onConnect?.call(server, req, socket, head);
  process.send?.({ type: 'request', method: req.method, url: req.url, authorized: true, withAuthorization: req.headers['proxy-authorization'] !== undefined });
  socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
});

process.on('message', (message: { type: string; id?: number }) => {
  // Messages arrive in order: the answer to a sync comes after every request reported before it.
  if (message.type === 'sync') process.send?.({ type: 'synced', id: message.id });
  if (message.type === 'close') server.close(() => process.exit(0));
});
server.listen(0, '127.0.0.1', () => process.send?.({ type: 'listening', port: (server.address() as AddressInfo).port }));
