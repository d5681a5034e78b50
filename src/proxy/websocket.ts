// WebSocket upgrades for routes with `websocket: true`. An upgrade request goes through the proxy
// app's router like any request, so its route's handler gets the token (503 JSON when there is
// none) before anything else happens. Then the upstream is dialled with the token, and only once it
// has accepted is the caller's upgrade answered with the subprotocol the upstream chose; an upstream
// that refuses or cannot be reached gives the caller an HTTP answer (its own, or 502/504 JSON)
// instead of a socket that opens and dies. Open links are tracked so shutdown can close them with
// 1001 (going away) when the drain time is over.
//
// Own code rather than @fastify/http-proxy's `websocket: true`: that answers the caller's 101 before
// it dials the upstream, closes every socket without a code as soon as the server starts closing,
// and leaves an upgrade to a route without websockets hanging.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ServerResponse, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import WebSocket, { WebSocketServer } from 'ws';
import type { RouteConfig } from '../config/types.js';
import { SidecarError } from '../errors.js';
import type { WebSocketConnector } from '../outbound/tunnel.js';
import { tlsConnectOptions } from '../tls.js';
import type { TokenProvider } from '../token/token-source.js';
import type { OutgoingHeaders, ResponseHeaderBuilder } from './headers.js';
import { upstreamPath } from './paths.js';
import { joinWebSockets, type LinkClose, type WebSocketLink } from './websocket-link.js';

/** Headers of the caller's handshake that the upstream handshake makes afresh. */
const handshakeHeaders = ['host', 'connection', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol', 'sec-websocket-accept', 'content-length', 'transfer-encoding'];

/** What an upgrade needs from its route: the same header rewrites as its plain requests. */
export interface UpgradeRoute {
  readonly route: RouteConfig;
  readonly tokens: TokenProvider;
  /** Opens the upstream connection through the route's outbound proxy; undefined: ws connects directly. */
  readonly connect?: WebSocketConnector | undefined;
  /** The headers a plain request of this route would carry upstream (headers.ts), token and request id included. */
  readonly rewriteRequestHeaders: (request: FastifyRequest) => OutgoingHeaders;
  /** The response header policy, for an upstream refusal relayed to the caller. */
  readonly rewriteResponseHeaders: ResponseHeaderBuilder;
  /** The upstream answered the upgrade's first 401, and what became of it (metrics). */
  readonly onUpstream401?: ((outcome: 'replayed' | 'no_new_token') => void) | undefined;
}

type Dialled = { readonly open: WebSocket } | { readonly refused: IncomingMessage; readonly upstream: WebSocket } | { readonly callerGone: true };

export class WebSocketProxy {
  readonly #logger: Logger;
  readonly #links = new Set<WebSocketLink>();
  readonly #idle: (() => void)[] = [];
  /** Bytes that arrived after an upgrade request's head; ws needs them at the upgrade. */
  readonly #heads = new WeakMap<IncomingMessage, Buffer>();
  /** The subprotocol the upstream chose, for the answer to the caller. */
  readonly #chosen = new WeakMap<IncomingMessage, string>();
  readonly #server: WebSocketServer;
  /** Set by closeAll(): a handshake that completes after it is closed at once. */
  #goingAway: { code: number; reason: string } | undefined;

  constructor(logger: Logger) {
    this.#logger = logger;
    this.#server = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      autoPong: false,
      // Compression is negotiated with the upstream; on loopback to the caller it would only cost CPU.
      perMessageDeflate: false,
      handleProtocols: (_offered, request) => this.#chosen.get(request) ?? false,
    });
  }

  /**
   * Sends the app's upgrade requests through its router, so routes, hooks and the error handler
   * apply to them as to any request. The socket is the caller's; any answer but the 101 ends it.
   * Adds no hook, so it may be called after the app listens (a reload that adds the first
   * WebSocket route).
   */
  attach(app: FastifyInstance): void {
    app.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', (err) => this.#logger.debug({ reason: err.message }, 'websocket caller socket error'));
      this.#heads.set(request, head);
      const response = new ServerResponse(request);
      response.assignSocket(socket as ServerResponse['socket'] & Duplex);
      // The socket no longer belongs to the HTTP server: it cannot serve another request.
      response.shouldKeepAlive = false;
      response.on('finish', () => socket.destroy());
      app.routing(request, response);
    });
    // Node hands an upgrade over with its head only: guard.ts refuses one whose body would be lost.
  }

  /** Open links. */
  get size(): number {
    return this.#links.size;
  }

  /** Resolves once no link is open. */
  idle(): Promise<void> {
    if (this.#links.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Closes every open link with `code` and waits (boundedly) for the close handshakes. */
  async closeAll(code: number, reason: string): Promise<void> {
    this.#goingAway = { code, reason };
    await Promise.all([...this.#links].map((link) => link.close(code, reason)));
  }

  /**
   * Dials the upstream for an upgrade request that holds its token, then answers the caller. A
   * 401 is retried once with a new token, as plain requests are (forward.ts). Throws (for the app's
   * error handler) while no answer has been sent.
   */
  async forward(request: FastifyRequest, reply: FastifyReply, target: UpgradeRoute): Promise<void> {
    const { route, tokens } = target;
    const raw = request.raw;
    checkHandshake(raw);
    const url = upstreamUrl(route, request.url);
    let dialled = await this.#dial(request, target, url);
    if ('refused' in dialled && dialled.refused.statusCode === 401) {
      const rejected = request.bearerToken;
      void tokens.invalidate(rejected);
      const fresh = await tokens.getToken().catch(() => undefined);
      const replay = fresh !== undefined && fresh !== rejected && !raw.socket.destroyed;
      target.onUpstream401?.(replay ? 'replayed' : 'no_new_token');
      if (replay) {
        dialled.refused.resume();
        dialled.upstream.terminate();
        request.bearerToken = fresh;
        request.log.debug({ route: route.name }, 'upstream answered 401 to the upgrade; trying again with a new token');
        dialled = await this.#dial(request, target, url);
      }
    }
    // From here on the answer is written by hand: a reply.send() from a preHandler would let the
    // route's handler run as well.
    reply.hijack();
    if ('callerGone' in dialled) return;
    if ('refused' in dialled) {
      // The upstream's refusal (401, 403, 404...) reaches the caller unchanged, as for any request.
      const { refused, upstream } = dialled;
      const headers = target.rewriteResponseHeaders(refused.headers, request.id);
      reply.raw.writeHead(refused.statusCode ?? 502, headers);
      refused.once('close', () => upstream.terminate());
      refused.pipe(reply.raw);
      return;
    }
    const upstream = dialled.open;
    reply.code(101);
    const socket = raw.socket;
    if (socket.destroyed) {
      upstream.close(1001, 'the client went away');
      return;
    }
    this.#chosen.set(raw, upstream.protocol);
    // ws answers a handshake it cannot accept with 400 itself; the upstream must not outlive it.
    const abandoned = () => upstream.terminate();
    socket.once('close', abandoned);
    this.#server.handleUpgrade(raw, socket, this.#heads.get(raw) ?? Buffer.alloc(0), (client) => {
      socket.off('close', abandoned);
      this.#track(joinWebSockets(client, upstream), route, request);
    });
  }

  /**
   * Opens the upstream WebSocket with the request's token. Resolves once it is open, refused (its
   * non-101 answer), or the caller has left; rejects with a coded error (502/504 for the caller).
   */
  #dial(request: FastifyRequest, { route, rewriteRequestHeaders, connect }: UpgradeRoute, url: URL): Promise<Dialled> {
    const raw = request.raw;
    const caller = raw.socket;
    // The handshake's own headers are made afresh by ws for the upstream.
    const headers = rewriteRequestHeaders(request);
    for (const name of handshakeHeaders) delete headers[name];
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        caller.off('close', callerGone);
        outcome();
      };
      let upstream: WebSocket;
      try {
        upstream = new WebSocket(url, offeredProtocols(raw.headers), {
          headers: headers as Record<string, string>,
          autoPong: false,
          followRedirects: false,
          perMessageDeflate: true,
          ...tlsConnectOptions(route.tls, this.#logger),
          ...(connect ? { createConnection: connect } : {}),
        });
      } catch (err) {
        // ws refuses malformed subprotocol lists before dialling.
        reject(new SidecarError('BSC_BAD_REQUEST', `invalid Sec-WebSocket-Protocol: ${(err as Error).message}`));
        return;
      }
      const timer = setTimeout(() => {
        settle(() => reject(Object.assign(new Error('the upstream did not complete the WebSocket handshake in time'), { code: 'ETIMEDOUT' })));
        upstream.terminate();
      }, route.connectTimeoutMs + route.responseTimeoutMs);
      // A caller that leaves while the upstream is dialled takes the upstream connection with it.
      const callerGone = () => {
        settle(() => resolve({ callerGone: true }));
        upstream.terminate();
      };
      caller.once('close', callerGone);
      upstream.on('error', (err) => settle(() => reject(err)));
      // Paused until joined to the caller: a greeting the upstream sends at once must wait for it.
      upstream.once('open', () => {
        upstream.pause();
        settle(() => resolve({ open: upstream }));
      });
      upstream.once('unexpected-response', (_request, response) => settle(() => resolve({ refused: response, upstream })));
    });
  }

  #track(link: WebSocketLink, route: RouteConfig, request: FastifyRequest): void {
    this.#links.add(link);
    const log = request.log.child({ route: route.name, path: request.url.split('?', 1)[0] });
    log.debug('websocket open');
    if (this.#goingAway) void link.close(this.#goingAway.code, this.#goingAway.reason);
    void link.closed.then(({ code, by }: LinkClose) => {
      this.#links.delete(link);
      log.debug({ code, by }, 'websocket closed');
      if (this.#links.size === 0) for (const resolve of this.#idle.splice(0)) resolve();
    });
  }
}

/** The caller's handshake must be one ws can accept, checked before the upstream is dialled. */
function checkHandshake(raw: IncomingMessage): void {
  const key = raw.headers['sec-websocket-key'];
  if (raw.method !== 'GET' || typeof key !== 'string' || !/^[+/0-9A-Za-z]{22}==$/.test(key.trim()) || raw.headers['sec-websocket-version'] !== '13') {
    throw new SidecarError('BSC_BAD_REQUEST', 'not a valid WebSocket handshake (GET with Sec-WebSocket-Key and Sec-WebSocket-Version: 13)');
  }
}

/** The upstream ws:// or wss:// URL for a request: its path mapped as plain requests are (paths.ts), the query string as it came. */
export function upstreamUrl(route: RouteConfig, requestUrl: string): URL {
  const queryAt = requestUrl.indexOf('?');
  const path = upstreamPath(queryAt >= 0 ? requestUrl.slice(0, queryAt) : requestUrl, { prefix: route.prefix, basePath: route.upstreamBasePath });
  if (path === undefined) throw new SidecarError('BSC_NOT_FOUND', 'no route serves this path');
  const url = new URL(route.upstreamOrigin.replace(/^http/, 'ws'));
  url.pathname = path || '/';
  if (queryAt >= 0) url.search = requestUrl.slice(queryAt);
  return url;
}

function offeredProtocols(headers: IncomingHttpHeaders): string[] {
  const header = headers['sec-websocket-protocol'];
  return header ? header.split(',').map((p) => p.trim()).filter(Boolean) : [];
}
