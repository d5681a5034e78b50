// A test stand for reloads: a scripted token endpoint that issues a distinct token per grant, two
// echo upstreams (A and B), and an in-process sidecar whose config the test reloads.

import assert from 'node:assert/strict';
import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { audit, call, type Answer } from '../helpers/audit.js';
import { issue, signingKey, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';
import { eventually, startSidecar, type TestSidecar } from '../helpers/sidecar.js';
import type { SidecarOptions } from '../../src/server.js';
import type { TokenSource } from '../../src/token/token-source.js';

export interface Rig {
  readonly tokens: ScriptedTokenServer;
  /** Tokens both upstreams refuse (401), for the replay. */
  readonly revoked: Set<string>;
  /** The token of the n-th grant (from 1), once answered. */
  tokenOf(n: number): string | undefined;
  /** Holds the answer to the n-th token request until release(). */
  holdGrant(n: number): { release(): void };
  readonly a: EchoUpstream;
  readonly b: EchoUpstream;
  readonly sidecar: TestSidecar;
  /** A request through the proxy. */
  get(path: string, init?: RequestInit): Promise<Answer>;
  /** The bearer tokens `upstream` saw, from its `from`-th request on. */
  tokensSeen(upstream: EchoUpstream, from?: number): string[];
  /** Log lines whose message starts with `msg`, parsed. */
  lines(msg: string): Record<string, unknown>[];
  /** One value of /metrics, or undefined. */
  metric(series: string): Promise<number | undefined>;
  close(): Promise<void>;
}

export async function startRig(config: (urls: { tokenUrl: string; a: string; b: string }) => Record<string, unknown>, options: Omit<SidecarOptions, 'logger'> & { logLevel?: string } = {}): Promise<Rig> {
  const grants = new Map<number, string>();
  const held = new Map<number, Promise<void>>();
  const tokens = await startScriptedTokenServer(async (request) => {
    await held.get(request.n);
    const body = issue(3600, { grant: request.n });
    grants.set(request.n, body.access_token as string);
    return { status: 200, body };
  });
  const revoked = new Set<string>();
  const isRevoked = (token: string) => revoked.has(token);
  const [a, b] = await Promise.all([startEchoUpstream({ signingKey, isRevoked }), startEchoUpstream({ signingKey, isRevoked })]);
  const sidecar = await startSidecar(config({ tokenUrl: tokens.url, a: a.url, b: b.url }), options);
  return {
    tokens,
    revoked,
    tokenOf: (n) => grants.get(n),
    holdGrant(n) {
      const hold = gate();
      held.set(n, hold.promise);
      return { release: () => hold.open() };
    },
    a,
    b,
    sidecar,
    get: (path, init) => call(`${sidecar.proxyUrl}${path}`, init),
    tokensSeen: (upstream, from = 0) => upstream.received.slice(from).map((r) => (r.headers.authorization ?? '').slice(7)),
    lines: (msg) => sidecar.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => String(line.msg).startsWith(msg)),
    async metric(series) {
      const text = await sidecar.sidecar.metrics.registry.metrics();
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    },
    async close() {
      await sidecar.close();
      await Promise.all([tokens.close(), a.close(), b.close()]);
    },
  };
}

/** The usual config: route "api" at "/" to upstream A. */
export const oneRoute = ({ tokenUrl, a }: { tokenUrl: string; a: string }): Record<string, unknown> => ({ routes: [apiRoute('api', tokenUrl, a)] });

/** Starts a stand, runs `check` on it, and closes it whatever happens. */
export async function withRig(config: Parameters<typeof startRig>[0], check: (r: Rig) => Promise<void>, options: Parameters<typeof startRig>[1] = {}): Promise<void> {
  const r = await startRig(config, options);
  try {
    await check(r);
  } finally {
    await r.close();
  }
}

/** A route whose credentials the scripted token endpoint accepts; `auth` overrides its auth fields. */
export function apiRoute(name: string, tokenUrl: string, upstream: string, extra: Record<string, unknown> = {}, auth: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    upstream,
    auth: { tokenUrl, clientId: 'reload-client', clientSecret: 'reload-secret-1', retry: { retries: 1, minDelayMs: 10, maxDelayMs: 50, maxTimeMs: 2000 }, ...auth },
    ...extra,
  };
}

/** Open connections to a test server (an upstream the sidecar keeps a pool to). */
export function connections(server: { getConnections(cb: (err: Error | null, count: number) => void): void }): Promise<number> {
  return new Promise((resolve) => server.getConnections((_err, count) => resolve(count)));
}

/**
 * Route "api" of `r` had its first token; now the upstream rejects it: the token is dropped, the
 * refresh is held at the endpoint (grant 2) until release(), and a request waits for it.
 */
export async function waitingOnHeldRefresh(r: Rig): Promise<{ source: TokenSource; waiting: Promise<Answer>; release(): void }> {
  assert.equal((await r.get('/x')).status, 200);
  const source = r.sidecar.sidecar.tokenSources.get('api') as TokenSource;
  const { release } = r.holdGrant(2);
  void source.invalidate(r.tokenOf(1) as string);
  await eventually(() => r.tokens.requests.length === 2);
  const waiting = r.get('/waiting');
  await eventually(() => r.sidecar.sidecar.proxy.inFlightRequests === 1);
  return { source, waiting, release };
}

/** Route "api" of `r` had its first token; the upstream revokes it; a request answered 401 waits for the refresh held at the endpoint. */
export async function replayingOnHeldRefresh(r: Rig): Promise<{ replaying: Promise<Answer>; release(): void }> {
  assert.equal((await r.get('/warm')).status, 200);
  r.revoked.add(r.tokenOf(1) as string);
  const { release } = r.holdGrant(2);
  const replaying = r.get('/replay');
  await eventually(() => r.tokens.requests.length === 2);
  return { replaying, release };
}

/** A promise the test resolves by hand. */
export function gate<T = void>(): { promise: Promise<T>; open(value: T): void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

for (const secret of ['reload-secret-1', 'reload-secret-2']) audit.addSecret(secret);
