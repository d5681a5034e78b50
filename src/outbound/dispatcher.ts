// The one factory for outbound connections: given a target origin and a route's settings, the
// undici dispatcher to use. Upstream pools, token requests (and what else fetches for a route)
// ask here; nothing else decides between direct and a proxy.
// - direct: the Pool a route had before proxies existed, with the same options, so the plain
//   path does no extra work per request;
// - https:// through a proxy: the same Pool, whose connections are CONNECT tunnels (tunnel.ts),
//   TLS end to end with the route's TLS settings; per request, nothing changes either;
// - http:// through a proxy: requests in absolute form (GET http://host/path) on a Pool to the
//   proxy, with Proxy-Authorization; a 407 answer becomes an error naming the proxy.

import { createConnection, isIP, type NetConnectOpts } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import { Agent, Pool, type Dispatcher } from 'undici';
import type { TlsConfig } from '../config/types.js';
import { nodeTls, tlsConnectOptions, undiciConnect } from '../tls.js';
import { proxyRefusal } from './errors.js';
import type { ProxyEndpoint } from '../config/proxy-endpoint.js';
import { proxyFor, type OutboundProxySettings } from '../config/outbound-proxy.js';
import { proxyConnector, tunnelConnector, webSocketConnector, type WebSocketConnector } from './tunnel.js';

export interface OutboundOptions {
  /** TLS to the target: the route's `tls` (upstream) or `auth.tls` (token endpoint). */
  readonly tls: TlsConfig;
  /** Bounds opening a connection: to the target, or to the proxy and its answer, then TLS through the tunnel. */
  readonly connectTimeoutMs: number;
  /** Told when a client certificate's files change (tls.ts). */
  readonly logger?: Logger | undefined;
  /** More undici Pool options for the target's connections (keep-alive, timeouts, connections). */
  readonly pool?: Omit<Pool.Options, 'connect' | 'connectTimeout'>;
}

/** The dispatcher for requests to `origin` under `settings`. The caller closes it. */
export function dispatcherFor(origin: string, settings: OutboundProxySettings, options: OutboundOptions): Dispatcher {
  const { tls, connectTimeoutMs, logger } = options;
  const poolOptions = { ...options.pool, connectTimeout: connectTimeoutMs };
  const proxy = proxyFor(origin, settings);
  if (!proxy) return new Pool(origin, { ...poolOptions, connect: undiciConnect(tls, { timeoutMs: connectTimeoutMs, logger }) });
  if (origin.startsWith('https:')) return new Pool(origin, { ...poolOptions, connect: tunnelConnector(proxy, undiciConnect(tls, { timeoutMs: connectTimeoutMs, logger }), connectTimeoutMs) });
  return new Pool(proxy.origin, { ...poolOptions, connect: proxyConnector(proxy, new URL(origin).host, connectTimeoutMs) }).compose(absoluteForm(origin, proxy));
}

/**
 * The dispatcher for a route's token requests, which may go to any origin (a discovered token
 * endpoint, say): one dispatcher per origin, from dispatcherFor. Undefined when undici's global
 * dispatcher does the same job (no proxy, default TLS).
 */
export function tokenDispatcher(settings: OutboundProxySettings, tls: TlsConfig, timeoutMs: number, logger?: Logger): Dispatcher | undefined {
  const anyProxy = settings.http !== undefined || settings.https !== undefined;
  if (!anyProxy && tls.ca === undefined && tls.rejectUnauthorized && !tls.clientCertificate) return undefined;
  if (!anyProxy) return new Agent({ connect: undiciConnect(tls, { logger }) });
  return new Agent({ factory: (origin) => dispatcherFor(String(origin), settings, { tls, connectTimeoutMs: timeoutMs, logger }) });
}

type Headers = Dispatcher.DispatchOptions['headers'];

/** Sends each request as an absolute-form request for `origin` to the proxy (RFC 9112 §3.2.2). */
function absoluteForm(origin: string, proxy: ProxyEndpoint): Dispatcher.DispatcherComposeInterceptor {
  const host = new URL(origin).host;
  const authorization = proxy.proxyAuthorization();
  const extra: Record<string, string> = authorization ? { host, 'proxy-authorization': authorization } : { host };
  return (dispatch) => (options, handler) =>
    dispatch({ ...options, path: origin + options.path, headers: withHeaders(options.headers, extra) }, new ProxyAnswer(handler, proxy, host));
}

function withHeaders(headers: Headers, extra: Record<string, string>): Headers {
  if (headers == null) return extra;
  if (Array.isArray(headers)) return [...(headers as string[]), ...Object.entries(extra).flat()];
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') return { ...Object.fromEntries(headers as Iterable<[string, string]>), ...extra };
  return { ...(headers as Record<string, string>), ...extra };
}

/** Passes a response on, unless it is the proxy's 407: that is the proxy's refusal, not the target's answer. */
class ProxyAnswer implements Dispatcher.DispatchHandler {
  readonly #handler: Dispatcher.DispatchHandler;
  readonly #proxy: ProxyEndpoint;
  readonly #target: string;

  constructor(handler: Dispatcher.DispatchHandler, proxy: ProxyEndpoint, target: string) {
    this.#handler = handler;
    this.#proxy = proxy;
    this.#target = target;
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#handler.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(controller: Dispatcher.DispatchController, statusCode: number, headers: Parameters<NonNullable<Dispatcher.DispatchHandler['onRequestUpgrade']>>[2], socket: Parameters<NonNullable<Dispatcher.DispatchHandler['onRequestUpgrade']>>[3]): void {
    this.#handler.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    if (statusCode === 407) return controller.abort(proxyRefusal(407, this.#proxy, this.#target));
    this.#handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#handler.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: Record<string, string | string[] | undefined>): void {
    this.#handler.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: Dispatcher.DispatchController, err: Error): void {
    this.#handler.onResponseError?.(controller, err);
  }
}

/**
 * How WebSocket dials to `origin` (the route's http(s):// upstream) connect: through the proxy
 * that its plain requests use, or undefined to let ws connect directly.
 */
export function webSocketConnectorFor(origin: string, settings: OutboundProxySettings, connectTimeoutMs: number): WebSocketConnector | undefined {
  const proxy = proxyFor(origin, settings);
  return proxy && webSocketConnector(proxy, origin.startsWith('https:'), connectTimeoutMs);
}

/**
 * ws's `createConnection` for dials to `origin` (ws(s):// or http(s)://) by a client that fixes its
 * options once (@fastify/http-proxy's): the TLS settings are taken as they are at each dial, so a
 * rotated client certificate is presented, and the dial goes through the outbound proxy when one
 * applies to `origin`.
 */
export function webSocketDialer(origin: string, settings: OutboundProxySettings, tls: TlsConfig, connectTimeoutMs: number, logger?: Logger): WebSocketConnector {
  const httpOrigin = origin.replace(/^ws/, 'http');
  const secure = httpOrigin.startsWith('https:');
  const tunnel = webSocketConnectorFor(httpOrigin, settings, connectTimeoutMs);
  return (options, callback) => {
    const current = secure ? { ...options, ...tlsConnectOptions(tls, logger) } : options;
    if (tunnel) return tunnel(current, callback);
    if (!secure) return createConnection(current as NetConnectOpts);
    const host = String(options.host ?? options.hostname);
    // `path` would make tls.connect open a Unix socket (ws clears it for the same reason).
    return nodeTls().connect({ ...(current as ConnectionOptions), path: undefined, servername: isIP(host) === 0 ? host : undefined } as ConnectionOptions);
  };
}
