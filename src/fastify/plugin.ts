// bearerProxy: the sidecar's token handling for a Fastify app, on @fastify/http-proxy. The app
// registers it as it would register http-proxy, plus `auth` (a route's `auth` from the config
// file, validated by the same schema). Underneath, http-proxy (a peer dependency, loaded when the
// plugin is registered) forwards; this file adds what the sidecar does around forwarding:
// - a preHandler takes the token (waiting at most auth.tokenWaitMs for the first one, then 503
//   with the sidecar's JSON body, errors.ts);
// - the request headers get Authorization (the caller's replaced) in reply-from's
//   rewriteRequestHeaders, and lose hop-by-hop and proxy credentials, as the sidecar's do;
// - a 401 is replayed once with a new token (replay.ts);
// - TLS to the upstream is verified, set explicitly (reply-from's own default is not to verify);
// - closing the app closes the token source (its timers and file watch).
// The plugin is encapsulated: its hooks and http-proxy's routes stay inside the context it makes,
// under the prefix the app registers it with.

import type { FastifyHttpProxyOptions } from '@fastify/http-proxy';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { resolveInProcessOptions, type InProcessConfig } from '../config/load.js';
import { staticPreset } from '../config/presets.js';
import type { AuthOptions, OutboundProxyOptions, TlsOptions } from '../config/schema.js';
import type { TlsConfig } from '../config/types.js';
import { ConfigError, SidecarError } from '../errors.js';
import { dispatcherFor, webSocketDialer } from '../outbound/dispatcher.js';
import { proxyFor } from '../config/outbound-proxy.js';
import { errorReply } from '../proxy/errors.js';
import { hopByHopRequestHeaders } from '../proxy/headers.js';
import { tlsConnectOptions, undiciConnect, warnUnverifiedTls } from '../tls.js';
import { createRouteTokenSource } from '../token/create.js';
import type { TokenSource } from '../token/token-source.js';
import { ReplayOn401, type RequestState, type UpstreamResponse } from './replay.js';

type HttpProxyPlugin = typeof import('@fastify/http-proxy');
type HttpProxyOptions = Parameters<HttpProxyPlugin>[1];
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type ReplyOptions = NonNullable<FastifyHttpProxyOptions['replyOptions']>;
type ProxyHandler = NonNullable<FastifyHttpProxyOptions['handler']>;

/** @fastify/http-proxy's options, plus the token's. */
export type BearerProxyOptions = DistributiveOmit<HttpProxyOptions, 'upstream'> & {
  /** A route's `auth`, as in the config file (presets, secret files, retry, tokenWaitMs, ...). */
  readonly auth: AuthOptions;
  /** The upstream's origin and base path; defaults to the preset's when `auth.preset` is set. */
  readonly upstream?: string;
  /** TLS to the upstream, as a route's `tls`: verified unless `rejectUnauthorized: false`; `caFile` adds a private CA; `certFile` and `keyFile` present a client certificate (read again when its files change, on the next new connection). */
  readonly tls?: TlsOptions;
  /**
   * The outbound (forward) proxy of the token requests, the upstream's requests and WebSocket
   * dials, as a route's `outboundProxy`: `false` for none whatever the environment says. Default:
   * HTTPS_PROXY, HTTP_PROXY and NO_PROXY, as the sidecar reads them.
   */
  readonly outboundProxy?: OutboundProxyOptions;
  /** Request bodies up to this size are kept so a request answered 401 can be replayed; 0 keeps none. Default 65536. */
  readonly replayBodyLimitBytes?: number;
  /** Names the token source in log lines and error bodies. Default: the prefix. */
  readonly name?: string;
};

/** Request headers the upstream must not get from the caller: reply-from's Host stays. */
const dropped = new Set([...hopByHopRequestHeaders.filter((name) => name !== 'host'), 'authorization']);

export const bearerProxy: FastifyPluginAsync<BearerProxyOptions> = async function bearerProxy(fastify, options) {
  const { auth: authInput, tls: tlsInput, replayBodyLimitBytes: replayInput, outboundProxy: outboundInput, name: nameInput, ...proxyOptions } = options;
  const resolved = resolveInProcessOptions({ auth: authInput, tls: tlsInput, replayBodyLimitBytes: replayInput, outboundProxy: outboundInput });
  const upstream = proxyOptions.upstream || staticPreset(resolved.auth.preset)?.upstream;
  if (!upstream) throw new ConfigError([`upstream: is required${resolved.auth.preset ? ` (the ${resolved.auth.preset} preset has none)` : ' (or set auth.preset)'}`]);
  const httpProxy = await loadHttpProxy();

  const name = nameInput ?? (fastify.prefix || '/');
  const logger = fastify.log as unknown as Logger;
  const states = new WeakMap<FastifyRequest, RequestState>();
  const reply = proxyOptions.replyOptions ?? {};
  const outbound = upstreamDispatcher(proxyOptions, upstream, resolved, logger);
  const tls = outbound ? { options: { undici: outbound }, config: resolved.tls } : upstreamTls(proxyOptions, resolved.tls);
  warnUnverifiedTls(name, 'upstream', tls.config, logger);
  const tokens = createRouteTokenSource({ name, auth: resolved.auth, outboundProxy: resolved.outboundProxy }, { logger });
  const { source } = tokens;

  /** Our JSON answer for a failure before the upstream answered (errors.ts, as the sidecar's). */
  function fail(request: FastifyRequest, res: FastifyReply, err: unknown): FastifyReply {
    const { statusCode, body, retryAfterSeconds } = errorReply(err, name);
    request.log[statusCode >= 500 ? 'warn' : 'info']({ route: name, code: (err as { code?: string }).code, reason: (err as Error).message }, 'request failed');
    if (retryAfterSeconds !== undefined) res.header('retry-after', String(retryAfterSeconds));
    return res.code(statusCode).type('application/json').send({ ...body, requestId: request.id });
  }

  async function attachToken(request: FastifyRequest, res: FastifyReply): Promise<FastifyReply | undefined> {
    let token = source.peek();
    if (token === undefined) {
      try {
        token = await source.getToken();
      } catch (err) {
        return fail(request, res, err);
      }
    }
    states.set(request, { token, replayable: true, replayed: false });
    return undefined;
  }

  function rewriteRequestHeaders(request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders {
    const given = reply.rewriteRequestHeaders ? (reply.rewriteRequestHeaders(request, headers) as IncomingHttpHeaders) : headers;
    const out: IncomingHttpHeaders = {};
    for (const header in given) if (!dropped.has(header)) out[header] = given[header];
    const token = states.get(request)?.token;
    // Never reached without one (the preHandler answers first); but no request goes out with the caller's.
    if (token === undefined) throw new SidecarError('BSC_INTERNAL', 'no token for this request');
    out.authorization = `Bearer ${token}`;
    return out;
  }

  const replay = new ReplayOn401({
    name,
    source,
    bodyLimitBytes: resolved.replayBodyLimitBytes,
    states,
    deliver: (request, res, upstreamResponse) => {
      if (reply.onResponse) reply.onResponse(request, res, upstreamResponse as unknown as Parameters<NonNullable<ReplyOptions['onResponse']>>[2]);
      else res.send(upstreamResponse.stream);
    },
  });

  const appHandler = proxyOptions.handler;
  const handler: ProxyHandler = (request, res, dest, handlerOptions) => {
    const send = appHandler ? () => appHandler(request, res, dest, handlerOptions) : () => res.from(dest, handlerOptions);
    return replay.prepare(request, res, send).then(
      () => res,
      (err: unknown) => fail(request, res, err),
    );
  };

  const appPreHandlers = [proxyOptions.preHandler ?? proxyOptions.beforeHandler ?? []].flat();
  const registered = {
    ...proxyOptions,
    ...tls.options,
    upstream,
    // The app registered this plugin with its prefix: http-proxy, inside it, is under it already.
    prefix: undefined,
    // The app's checks first: a refused request costs no wait for a token.
    preHandler: [...appPreHandlers, attachToken],
    beforeHandler: undefined,
    handler,
    replyOptions: {
      ...reply,
      rewriteRequestHeaders,
      onResponse: replay.onResponse,
      onError: reply.onError ?? ((res: FastifyReply, { error }: { error: Error }) => void fail(res.request, res, error)),
    },
    ...(proxyOptions.websocket
      ? { wsClientOptions: websocketClientOptions(proxyOptions.wsClientOptions as Record<string, unknown> | undefined, resolved, String(proxyOptions.wsUpstream || upstream), states, source) }
      : {}),
  } as unknown as HttpProxyOptions;

  fastify.addHook('onClose', async () => {
    await tokens.close();
    await outbound?.close();
  });
  source.start();
  try {
    await fastify.register(httpProxy, registered);
  } catch (err) {
    await tokens.close();
    await outbound?.close();
    throw err;
  }
};

/**
 * The upstream's connections through an outbound proxy, when one applies to it (outboundProxy, or
 * HTTPS_PROXY / NO_PROXY): the sidecar's own dispatcher (CONNECT tunnel, TLS end to end with `tls`,
 * rotated client certificates on new connections), given to reply-from as its undici dispatcher.
 * Undefined when the upstream goes direct, or when the app chose its client (`undici` dispatcher,
 * `http`, `http2`): then nothing changes.
 */
function upstreamDispatcher(proxyOptions: Record<string, unknown>, upstream: string, resolved: InProcessConfig, logger: Logger): Dispatcher | undefined {
  const { http, http2, undici } = proxyOptions as { http?: unknown; http2?: unknown; undici?: unknown };
  if (http || http2 || undici !== undefined || !proxyFor(upstream, resolved.outboundProxy)) return undefined;
  return dispatcherFor(new URL(upstream).origin, resolved.outboundProxy, { tls: resolved.tls, connectTimeoutMs: 10_000, logger });
}

// Plugin metadata, as fastify-plugin would set it (without `skip-override`: the plugin keeps its
// own encapsulated context).
Object.assign(bearerProxy, {
  [Symbol.for('fastify.display-name')]: 'bearer-sidecar/fastify',
  [Symbol.for('plugin-meta')]: { name: 'bearer-sidecar/fastify', fastify: '5.x' },
});

/** @fastify/http-proxy, or an error that says how to get it. */
async function loadHttpProxy(): Promise<HttpProxyPlugin> {
  try {
    const module = (await import('@fastify/http-proxy')) as { default: HttpProxyPlugin };
    return module.default;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((err as Error).message).includes('@fastify/http-proxy')) {
      throw new SidecarError(
        'BSC_DEPENDENCY_MISSING',
        'bearer-sidecar/fastify forwards with @fastify/http-proxy, which is not installed: run `npm install @fastify/http-proxy@^11` in your app (a peer dependency)',
        { cause: err },
      );
    }
    throw err;
  }
}

/**
 * TLS to the upstream, for whichever client reply-from will use (undici by default, or node:http
 * and http2 when the app asks for them): verification and the private CA from `tls`, set
 * explicitly, since reply-from turns verification off unless told. TLS options the app sets
 * itself win, and count when deciding whether to warn. An undici dispatcher of the app's own
 * (`undici: dispatcher`) keeps its own TLS.
 */
function upstreamTls(proxyOptions: Record<string, unknown>, tls: TlsConfig): { options: Record<string, unknown>; config: TlsConfig } {
  const ours = tlsConnectOptions(tls);
  const mergedWith = (given: unknown) => ({ ...ours, ...(given && typeof given === 'object' ? given : {}) }) as Record<string, unknown>;
  const verdict = (merged: Record<string, unknown>) => ({ ...tls, rejectUnauthorized: merged.rejectUnauthorized !== false });
  const { http, http2, undici } = proxyOptions as { http?: Record<string, unknown>; http2?: boolean | Record<string, unknown>; undici?: false | Record<string, unknown> };
  // reply-from's own order (lib/request.js buildRequest): http2 first, then node:http when `http`
  // is set or `undici: false`, else undici. Each sets rejectUnauthorized: false unless told.
  if (http2) {
    const given = typeof http2 === 'object' ? http2 : {};
    const sessionOptions = mergedWith(given.sessionOptions);
    return { options: { http2: { ...given, sessionOptions } }, config: verdict(sessionOptions) };
  }
  if (http || undici === false) {
    const given = http ?? {};
    const requestOptions = mergedWith(given.requestOptions);
    return { options: { http: { ...given, requestOptions } }, config: verdict(requestOptions) };
  }
  if (undici && typeof undici.request === 'function') return { options: {}, config: tls };
  const given = undici ?? {};
  // The app's connect options merged with ours; else the sidecar's own connect, which with a client
  // certificate is a connector that presents rotated certificate files on the next new connection.
  const appTls = { ...(given.tls as object | undefined), ...(given.connect as object | undefined) };
  const connect = typeof given.connect === 'function' ? given.connect : Object.keys(appTls).length > 0 ? mergedWith(appTls) : undiciConnect(tls);
  return {
    options: {
      undici: {
        ...given,
        // undici builds its connector from `tls` and then `connect`; reply-from sets tls.rejectUnauthorized: false.
        tls: mergedWith(given.tls),
        connect,
        ...(given.proxy ? { requestTls: mergedWith(given.requestTls) } : {}),
      },
    },
    config: typeof connect === 'function' ? tls : verdict(connect as Record<string, unknown>),
  };
}

/**
 * How WebSocket dials connect, when the plugin must take part: through the outbound proxy that
 * applies to the upstream, or with the client certificate of `tls` as its files are at each dial.
 * Undefined (ws connects as http-proxy tells it) otherwise, or when the app brings its own TLS
 * material or connection.
 */
function webSocketDial(wsUpstream: string, { tls, outboundProxy }: InProcessConfig, given: Record<string, unknown> | undefined): ReturnType<typeof webSocketDialer> | undefined {
  const appOwn = ['createConnection', 'secureContext', 'cert', 'key', 'pfx'].some((field) => given?.[field] !== undefined);
  if (appOwn || (!tls.clientCertificate && !proxyFor(wsUpstream.replace(/^ws/, 'http'), outboundProxy))) return undefined;
  return webSocketDialer(wsUpstream, outboundProxy, tls, 10_000);
}

/**
 * The WebSocket dial: the token as Authorization, the caller's cookie as http-proxy does by
 * default, TLS verified, with the private CA and the client certificate of `tls` (read again when
 * its files change, through webSocketDial: http-proxy copies these options once, at registration).
 */
function websocketClientOptions(given: Record<string, unknown> | undefined, resolved: InProcessConfig, wsUpstream: string, states: WeakMap<FastifyRequest, RequestState>, source: TokenSource): Record<string, unknown> {
  const appRewrite = given?.rewriteRequestHeaders as ((headers: Record<string, unknown>, request: FastifyRequest) => Record<string, unknown>) | undefined;
  const { tls } = resolved;
  const dial = webSocketDial(wsUpstream, resolved, given);
  return {
    ...tlsConnectOptions(tls),
    ...(dial ? { createConnection: dial } : {}),
    ...given,
    rewriteRequestHeaders(headers: Record<string, unknown>, request: FastifyRequest) {
      const base = appRewrite ? appRewrite(headers, request) : { ...headers, ...(request.headers.cookie ? { cookie: request.headers.cookie } : {}) };
      const out: Record<string, unknown> = {};
      for (const header in base) if (header.toLowerCase() !== 'authorization') out[header] = base[header];
      const token = states.get(request)?.token;
      if (token === undefined) throw new SidecarError('BSC_INTERNAL', 'no token for this request');
      // Read at each dial: http-proxy's wsReconnect dials again with these same headers, maybe
      // hours later, and must not send a token that has since been replaced or has expired.
      Object.defineProperty(out, 'authorization', { enumerable: true, get: () => `Bearer ${source.peek() ?? token}` });
      return out;
    },
  };
}
