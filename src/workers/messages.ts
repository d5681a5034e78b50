// What the primary and its workers say to each other over the cluster's IPC channel, and the
// config as it crosses it. The channel is the only way a token leaves the primary: never a file,
// an environment variable or a log line.
//
// The config is sent rather than read again by each worker, so one config is in force everywhere
// (a file edited between two reads cannot split them). It is sent without the routes' credentials:
// a worker never fetches a token, so each route's `auth` becomes a reference to the primary's token
// source for it (and the wait a request may spend on a token). What a worker does need crosses as
// it is: the shared-secret header's value, the outbound proxy's Proxy-Authorization, the upstream
// client certificate's files. Class instances are sent as tagged values and rebuilt (decodeConfig).

import type { AuthConfig, SidecarConfig } from '../config/types.js';
import { SecretSource } from '../config/secret.js';
import type { ErrorCode } from '../errors.js';
import { NoProxy } from '../config/no-proxy.js';
import { ProxyEndpoint } from '../config/proxy-endpoint.js';
import type { TokenStatus } from '../token/token-source.js';

/** A route's `auth` in a worker: which of the primary's token sources serves it. */
export interface RemoteAuth {
  /** Numbers the primary's token sources; a reload that makes a new one gives a new number. */
  readonly tokenSource: number;
  readonly tokenWaitMs: number;
}

/** The state of one token source, pushed to every worker on every change. */
export interface TokenPush {
  readonly type: 'bsc:token';
  readonly tokenSource: number;
  /** Absent when there is no token to send (starting, failed without one, closed). */
  readonly token?: string;
  /** Epoch ms: the last moment the token may be sent. */
  readonly usableUntil?: number;
  readonly status: TokenStatus;
}

export interface WireTokenError {
  readonly code: ErrorCode;
  readonly message: string;
  readonly retryable: boolean;
  readonly retryAfterMs?: number;
}

export type ToWorker =
  | { readonly type: 'bsc:config'; readonly config: unknown; readonly hash: string; readonly loadedAt: string }
  | TokenPush
  /** The answer to a bsc:token-wanted, naming the token source asked for (a worker checks it). */
  | { readonly type: 'bsc:token-answer'; readonly id: number; readonly tokenSource: number; readonly token?: string; readonly usableUntil?: number; readonly error?: WireTokenError }
  | { readonly type: 'bsc:metrics'; readonly id: number }
  | { readonly type: 'bsc:loglevel'; readonly level: string }
  | { readonly type: 'bsc:shutdown' };

export type ToPrimary =
  /** The worker listens for messages: the primary sends it the config and the tokens. */
  | { readonly type: 'bsc:hello' }
  | { readonly type: 'bsc:listening'; readonly hash: string }
  | { readonly type: 'bsc:applied'; readonly hash: string }
  | { readonly type: 'bsc:failed'; readonly code?: string; readonly reason: string }
  | { readonly type: 'bsc:token-wanted'; readonly id: number; readonly tokenSource: number }
  | { readonly type: 'bsc:rejected'; readonly tokenSource: number; readonly token: string }
  | { readonly type: 'bsc:metrics-answer'; readonly id: number; readonly metrics: unknown };

/** True for the messages of this protocol (prom-client and Node send their own on the channel). */
export function isOurs<T extends { type: string }>(message: unknown): message is T {
  return typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string' && (message as { type: string }).type.startsWith('bsc:');
}

/** The config a worker applies: every route's auth replaced by the number of its token source. */
export function encodeConfig(config: SidecarConfig, tokenSourceOf: (route: string) => number): unknown {
  // The shared token cache is the primary's (it holds the token sources): its URL and keys stay there.
  const { tokenCache: _primarys, ...shared } = config;
  return encode({
    ...shared,
    routes: config.routes.map((route) => ({ ...route, auth: { tokenSource: tokenSourceOf(route.name), tokenWaitMs: route.auth.tokenWaitMs } satisfies RemoteAuth })),
  });
}

export function decodeConfig(wire: unknown): SidecarConfig {
  return freeze(decode(wire)) as SidecarConfig;
}

/** The worker's view of a route's auth (see encodeConfig). */
export function remoteAuth(auth: AuthConfig): RemoteAuth {
  return auth as unknown as RemoteAuth;
}

function encode(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(encode);
  if (value instanceof SecretSource) return { $secret: value.file === undefined ? { value: value.read() } : { file: value.file } };
  if (value instanceof ProxyEndpoint) return { $proxy: { origin: value.origin, authorization: value.proxyAuthorization() } };
  if (value instanceof NoProxy) return { $noProxy: value.entries };
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) throw new Error(`the config holds a ${String(prototype?.constructor?.name)} that cannot be sent to the workers`);
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, encode(item)]));
}

function decode(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(decode);
  const tagged = value as { $secret?: { value?: string; file?: string }; $proxy?: { origin: string; authorization?: string }; $noProxy?: string[] };
  if (tagged.$secret) return tagged.$secret.file === undefined ? SecretSource.inline(tagged.$secret.value as string) : SecretSource.fromFile(tagged.$secret.file);
  if (tagged.$proxy) return ProxyEndpoint.fromParts(tagged.$proxy.origin, tagged.$proxy.authorization);
  if (tagged.$noProxy) return NoProxy.parse(tagged.$noProxy);
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, decode(item)]));
}

function freeze(value: unknown): unknown {
  if (value && typeof value === 'object' && !Object.isFrozen(value) && (Array.isArray(value) || Object.getPrototypeOf(value) === Object.prototype)) {
    Object.freeze(value);
    for (const item of Object.values(value)) freeze(item);
  }
  return value;
}
