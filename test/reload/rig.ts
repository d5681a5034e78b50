// A test stand for reloads: a scripted token endpoint that issues a distinct token per grant, two
// echo upstreams (A and B), and an in-process sidecar whose config the test reloads.

import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { audit, call, type Answer } from '../helpers/audit.js';
import { issue, signingKey, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';
import { startSidecar, type TestSidecar } from '../helpers/sidecar.js';
import type { SidecarOptions } from '../../src/server.js';

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

/** A route whose credentials the scripted token endpoint accepts; `auth` overrides its auth fields. */
export function apiRoute(name: string, tokenUrl: string, upstream: string, extra: Record<string, unknown> = {}, auth: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    upstream,
    auth: { tokenUrl, clientId: 'reload-client', clientSecret: 'reload-secret-1', retry: { retries: 1, minDelayMs: 10, maxDelayMs: 50, maxTimeMs: 2000 }, ...auth },
    ...extra,
  };
}

/** A promise the test resolves by hand. */
export function gate<T = void>(): { promise: Promise<T>; open(value: T): void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

for (const secret of ['reload-secret-1', 'reload-secret-2']) audit.addSecret(secret);
