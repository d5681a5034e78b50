// CONNECT tunnels through an outbound proxy (RFC 9110 §9.3.6): for https:// targets of undici
// pools (token requests, upstreams) and for WebSocket dials. The tunnel carries TLS end to end:
// the sidecar checks the target's certificate against the target's name with the route's TLS
// settings, as it does without a proxy; the proxy only sees host:port.
//
// Each tunnel is one undici Client.connect() (the call undici's ProxyAgent makes), with the
// proxy's connection and its answer bounded by the caller's connect timeout. Own code rather
// than ProxyAgent: a proxy that closes the connection before answering CONNECT made ProxyAgent
// reconnect in a loop (thousands of connections a second) while the request never ended, and its
// refusals only carry the status in the message text.

import type { ClientRequestArgs } from 'node:http';
import { isIP, isIPv6, type Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { buildConnector, Client } from 'undici';
import { nodeTls } from '../tls.js';
import { proxyFailure, proxyRefusal } from './errors.js';
import type { ProxyEndpoint } from '../config/proxy-endpoint.js';

/** Opens a tunnel to host:port through `proxy`; resolves with the raw socket (TLS to the target is the caller's). */
export async function openTunnel(proxy: ProxyEndpoint, host: string, port: number, timeoutMs: number): Promise<Socket> {
  const authority = `${isIPv6(host) ? `[${host}]` : host}:${port}`;
  const headers: Record<string, string> = { host: authority };
  const authorization = proxy.proxyAuthorization();
  if (authorization) headers['proxy-authorization'] = authorization;
  // One connection to the proxy per tunnel: once CONNECT succeeds the socket is the tunnel's, and the client has nothing left.
  const client = new Client(proxy.origin, { connect: proxyConnector(proxy, authority, timeoutMs), headersTimeout: timeoutMs });
  try {
    const { statusCode, socket } = await client.connect({ path: authority, headers });
    if (statusCode < 200 || statusCode > 299) {
      socket.destroy();
      throw proxyRefusal(statusCode, proxy, authority);
    }
    return socket as Socket;
  } catch (err) {
    throw proxyFailure(err, proxy, authority, timeoutMs);
  } finally {
    client.destroy().catch(() => {});
  }
}

/**
 * undici's connector for connections to the proxy itself (for CONNECT, and for absolute-form
 * requests), failures named for the proxy. An https:// proxy's certificate is checked against the
 * proxy's own name: undici would take the TLS name from the request's Host header, which names
 * the target (ProxyAgent passes the proxy's name for the same reason).
 */
export function proxyConnector(proxy: ProxyEndpoint, target: string, timeoutMs: number): buildConnector.connector {
  const connect = buildConnector({ timeout: timeoutMs } as buildConnector.BuildOptions);
  return (options, callback) =>
    // Without a servername, undici takes it from the connection's host: the proxy's name, or none for an IP address.
    connect({ ...options, servername: undefined }, (err, socket) => {
      if (err) callback(proxyFailure(err, proxy, target, timeoutMs), null);
      else callback(null, socket as NonNullable<typeof socket>);
    });
}

/**
 * An undici connector whose connections are tunnels through `proxy`, with TLS to the target inside
 * for https:// origins: `tls` is the route's (tls.ts undiciConnect: options, or a connector of its
 * own when a client certificate may change).
 */
export function tunnelConnector(proxy: ProxyEndpoint, tls: ConnectionOptions | buildConnector.connector, timeoutMs: number): buildConnector.connector {
  const secure = typeof tls === 'function' ? tls : buildConnector({ ...(tls as buildConnector.BuildOptions), timeout: timeoutMs });
  return (options, callback) => {
    const https = options.protocol === 'https:';
    const port = Number(options.port) || (https ? 443 : 80);
    openTunnel(proxy, options.hostname, port, timeoutMs).then(
      (socket) => (https ? secure({ ...options, httpSocket: socket }, callback) : callback(null, socket)),
      (err: Error) => callback(err, null),
    );
  };
}

/** What ws (through node:http) calls to open a WebSocket's connection: `createConnection(options, callback)`. */
export type WebSocketConnector = NonNullable<ClientRequestArgs['createConnection']>;

/**
 * A WebSocket dial's connection through `proxy`: always a CONNECT tunnel (an Upgrade does not
 * pass a proxy in absolute form), then TLS to the target for wss:// with the options ws passes
 * (the route's TLS settings among them), as ws's own connector does.
 */
export function webSocketConnector(proxy: ProxyEndpoint, secure: boolean, timeoutMs: number): WebSocketConnector {
  return (options, callback) => {
    const host = String(options.host ?? options.hostname);
    openTunnel(proxy, host, Number(options.port), timeoutMs).then(
      (socket) => {
        if (!secure) return callback(null, socket);
        // `path` would make tls.connect open a Unix socket; ws clears it for the same reason.
        const tlsOptions = { ...(options as ConnectionOptions), path: undefined, socket };
        tlsOptions.servername ??= isIP(host) === 0 ? host : undefined;
        callback(null, nodeTls().connect(tlsOptions));
      },
      // node:http reads only the error when there is one.
      (err: Error) => callback(err, undefined as never),
    );
    return undefined;
  };
}
