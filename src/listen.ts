// Where the proxy listens: host and port, or a Unix domain socket whose file mode decides who may
// use the token (in a pod, only containers sharing the socket's volume, and only users the mode
// lets in). A socket file left by a process that died is replaced; a live one, or a file that is no
// socket, stops the start. The socket file is removed when the server closes (libuv unlinks it).

import type { FastifyInstance } from 'fastify';
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { connect, type AddressInfo } from 'node:net';
import type { ProxyListenConfig } from './config/types.js';
import { SidecarError } from './errors.js';

/**
 * Whether this Node can give each cluster worker its own listening socket on the same port
 * (SO_REUSEPORT: `reusePort` of server.listen, Node 22.12+ and 23.1+, on Linux), so that the kernel
 * spreads new connections over the workers instead of the primary accepting each one and handing
 * it over (node:cluster's round-robin).
 */
export function reusePortAvailable(version = process.versions.node, platform = process.platform): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return platform === 'linux' && (major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12));
}

/**
 * `shared`: a cluster worker's listener. On a TCP port, with SO_REUSEPORT where Node has it (a
 * socket of its own, `exclusive`: the kernel balances); else, and on a Unix socket, the socket
 * the primary holds (round-robin), whose file the primary prepares once (prepareSharedSocket), so
 * the workers neither remove nor chmod it. Port 0 stays shared: each socket of its own would get a
 * port of its own.
 */
export async function listenProxy(app: FastifyInstance, listen: ProxyListenConfig, { shared = false } = {}): Promise<void> {
  const listenTextResolver = (address: string) => `proxy listening at ${address}`;
  if (listen.socket === undefined) {
    const ownSocket = shared && listen.port !== 0 && reusePortAvailable();
    // reusePort reaches net.Server#listen through fastify's listen options (not in its types).
    await app.listen({ host: listen.host, port: listen.port, listenTextResolver, ...(ownSocket ? ({ reusePort: true, exclusive: true } as object) : {}) });
    return;
  }
  if (shared) {
    await app.listen({ path: listen.socket, listenTextResolver });
    return;
  }
  await removeStaleSocket(listen.socket);
  await app.ready();
  // Created owner-only, then opened up to `mode`: never more open than asked, not even briefly.
  const umask = process.umask(0o177);
  try {
    await app.listen({ path: listen.socket, listenTextResolver });
  } finally {
    process.umask(umask);
  }
  chmodSync(listen.socket, listen.mode ?? 0o660);
}

/**
 * The primary of cluster workers holds their shared listener, so it creates the socket file, when
 * the first worker listens. Before forking: a stale file is removed and the file is made owner-only
 * (this process's umask); `opened()`, once a worker listens, opens it up to the configured mode.
 */
export async function prepareSharedSocket(listen: ProxyListenConfig): Promise<{ opened(): void }> {
  if (listen.socket === undefined) return { opened() {} };
  const socket = listen.socket;
  await removeStaleSocket(socket);
  const umask = process.umask(0o177);
  let done = false;
  return {
    opened() {
      if (done) return;
      done = true;
      process.umask(umask);
      chmodSync(socket, listen.mode ?? 0o660);
    },
  };
}

/** The proxy's URL as the config names it (the primary of workers does not listen on it itself). */
export function configuredUrl(listen: ProxyListenConfig): string {
  return listen.socket === undefined ? `http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}` : `unix:${listen.socket}`;
}

/** Removes a socket file nobody answers on; refuses a live socket and anything that is no socket. */
export async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket) throw new SidecarError('BSC_SOCKET_PATH_OCCUPIED', `listen.socket: ${path} exists and is not a socket; remove it or choose another path`);
  if (await answers(path)) throw new SidecarError('BSC_SOCKET_IN_USE', `listen.socket: another process is listening on ${path} (is a sidecar already running?)`);
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** True when a process accepts connections on the socket; false when none listens (ECONNREFUSED). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const probe = connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (err: NodeJS.ErrnoException) => {
      probe.destroy();
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') resolve(false);
      else reject(new SidecarError('BSC_SOCKET_IN_USE', `listen.socket: cannot tell whether ${path} is in use (${err.code ?? err.message})`, { cause: err }));
    });
  });
}

/** http://host:port for TCP listeners, unix:/path for socket ones (as curl's --unix-socket takes it). */
export function listenerUrl(app: FastifyInstance): string {
  const address = app.server.address() as AddressInfo | string;
  if (typeof address === 'string') return `unix:${address}`;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}
