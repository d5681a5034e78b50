// In-process sidecars with a shared token cache, for the shared-cache tests: one route (prefix
// /api) against a token endpoint, the cache at `url`, short bounds (300 ms a call, 500 ms to
// connect), the given key file; and the series of a metric on its /metrics.

import assert from 'node:assert/strict';
import { call } from './audit.js';
import { route, startSidecar, type TestSidecar } from './sidecar.js';

/** A sidecar of one route against `tokensUrl`, sharing tokens through `url`. */
export async function cachedSidecar(url: string, tokensUrl: string, keyFile: string, extra: Record<string, unknown> = {}): Promise<TestSidecar> {
  return startSidecar({ tokenCache: { url, encryptionKeyFile: keyFile, timeoutMs: 300, connectTimeoutMs: 500 }, routes: [route(tokensUrl, 'http://127.0.0.1:9', { prefix: '/api' })], ...extra });
}

/** The lines of `name`'s series on /metrics. */
export async function metric(adminUrl: string, name: string): Promise<string[]> {
  const text = (await call(`${adminUrl}/metrics`)).text;
  return text.split('\n').filter((line) => line.startsWith(`${name}{`));
}

/** Waits until `check` is true, polling every 20 ms; fails after `timeoutMs`. */
export async function waitFor(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    assert.ok(Date.now() < deadline, 'condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
