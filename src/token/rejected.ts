// The one rule for a token the upstream rejected (401), shared by the sidecar (forward.ts), the
// Fastify plugin and the undici interceptor: the source is told, and the request may go again only
// with a different token. The source fetches one new token however many requests report the same
// one, and ignores reports within its cooldown (then the same token comes back: no replay).

import type { TokenSource } from './token-source.js';

/** The token to send the rejected request again with, or undefined when there is no other. Never rejects. */
export async function tokenAfterRejection(source: Pick<TokenSource, 'getToken' | 'invalidate'>, rejected: string): Promise<string | undefined> {
  // Not awaited: a failing token endpoint may keep the refresh busy for long; getToken waits at most tokenWaitMs.
  void source.invalidate(rejected);
  const fresh = await source.getToken().catch(() => undefined);
  return fresh !== undefined && fresh !== rejected ? fresh : undefined;
}
