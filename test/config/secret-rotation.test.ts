// Credential rotation with a Kubernetes-style Secret volume: the files are symlinks through
// `..data`, which Kubernetes swaps atomically to a new timestamped directory. No request fails
// while the old token is valid, and the next token uses the new secret, without a restart.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { audit } from '../helpers/audit.js';
import { ManualClock } from '../helpers/clock.js';
import { secretVolume } from '../helpers/config.js';
import { issue, signingKey, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';
import { eventually, startSidecar, type TestSidecar } from '../helpers/sidecar.js';

interface Rig {
  tokens: ScriptedTokenServer;
  upstream: EchoUpstream;
  sidecar: TestSidecar;
  clock: ManualClock;
  volume: ReturnType<typeof secretVolume>;
  /** Secrets the token endpoint accepts now. */
  accepted: Set<string>;
  /** Every status the proxy answered. */
  statuses: number[];
  get(): Promise<number>;
  close(): Promise<void>;
}

async function rig(): Promise<Rig> {
  const volume = secretVolume({ 'client-id': 'rotating-client\n', 'client-secret': 'old-secret-1a2b\n' });
  const accepted = new Set(['old-secret-1a2b']);
  const tokens = await startScriptedTokenServer((r) =>
    r.form.client_id === 'rotating-client' && accepted.has(r.form.client_secret ?? '') ? { status: 200, body: issue(600, { n: r.n }) } : { status: 401, body: { error: 'invalid_client' } },
  );
  const upstream = await startEchoUpstream({ signingKey });
  const clock = new ManualClock();
  const sidecar = await startSidecar(
    {
      routes: [
        {
          name: 'api',
          upstream: upstream.url,
          auth: {
            tokenUrl: tokens.url,
            method: 'client_secret_post',
            clientIdFile: join(volume.dir, 'client-id'),
            clientSecretFile: join(volume.dir, 'client-secret'),
            retry: { retries: 1, minDelayMs: 10, maxDelayMs: 50, maxTimeMs: 2000 },
          },
        },
      ],
    },
    { clock },
  );
  const statuses: number[] = [];
  return {
    tokens,
    upstream,
    sidecar,
    clock,
    volume,
    accepted,
    statuses,
    async get() {
      const response = await fetch(`${sidecar.proxyUrl}/x`);
      await response.arrayBuffer();
      statuses.push(response.status);
      return response.status;
    },
    async close() {
      await sidecar.close();
      await Promise.all([tokens.close(), upstream.close()]);
      rmSync(volume.dir, { recursive: true, force: true });
    },
  };
}

const secretsUsed = (r: Rig) => r.tokens.requests.map((q) => q.form.client_secret);
const tokenSource = (r: Rig) => r.sidecar.sidecar.tokenSources.get('api')!;

for (const secret of ['old-secret-1a2b', 'new-secret-3c4d', 'new-secret-5e6f', 'plain-new-7a8b']) audit.addSecret(secret);

describe('credential rotation (Kubernetes Secret volume)', () => {
  test('the Secret is swapped before the refresh: the next token uses the new secret; no request fails', async () => {
    const r = await rig();
    try {
      assert.equal(await r.get(), 200);
      r.volume.rotate({ 'client-id': 'rotating-client\n', 'client-secret': 'new-secret-3c4d\n' });
      r.accepted.clear();
      r.accepted.add('new-secret-3c4d'); // the provider revoked the old secret at the same time
      assert.equal(await r.get(), 200, 'the old token is still valid');
      r.clock.advance(480_000); // refresh time of a 600 s token
      await eventually(() => r.tokens.issued.length === 2 && tokenSource(r).peek() === r.tokens.issued[1]);
      assert.deepEqual(secretsUsed(r), ['old-secret-1a2b', 'new-secret-3c4d']);
      assert.equal(tokenSource(r).status().lastError, undefined);
      assert.equal(await r.get(), 200);
      assert.equal(r.upstream.received.at(-1)?.headers.authorization, `Bearer ${r.tokens.issued[1]}`);
      assert.deepEqual([...new Set(r.statuses)], [200]);
    } finally {
      await r.close();
    }
  });

  test('the provider rotates first (invalid_client) and the Secret lands later: the change is noticed and retried at once, not after the backoff', async () => {
    const r = await rig();
    try {
      assert.equal(await r.get(), 200);
      r.accepted.clear();
      r.accepted.add('new-secret-5e6f');
      r.clock.advance(480_000);
      await eventually(() => tokenSource(r).status().lastError !== undefined);
      assert.match(tokenSource(r).status().lastError ?? '', /invalid_client/);
      assert.equal(await r.get(), 200, 'the old token keeps requests flowing');
      assert.ok((r.clock.nextTimerAt() ?? 0) > r.clock.now(), 'the next attempt would wait for the backoff');

      r.volume.rotate({ 'client-id': 'rotating-client\n', 'client-secret': 'new-secret-5e6f\n' });
      // The clock does not move: only the directory watch can start this attempt.
      await eventually(() => tokenSource(r).status().lastError === undefined, 5000);
      assert.equal(secretsUsed(r).at(-1), 'new-secret-5e6f');
      assert.equal(await r.get(), 200);
      assert.equal(r.upstream.received.at(-1)?.headers.authorization, `Bearer ${r.tokens.issued.at(-1)}`);
      assert.deepEqual([...new Set(r.statuses)], [200]);
      assert.ok(r.sidecar.logs.some((line) => line.includes('credential files changed')));
    } finally {
      await r.close();
    }
  });

  test('a plain secret file rewritten in place is noticed too', async () => {
    const r = await rig();
    const dir = mkdtempSync(join(tmpdir(), 'bsc-plain-'));
    try {
      // Same rig, but watch a plain file: point a second sidecar at it.
      const file = join(dir, 'secret');
      writeFileSync(file, 'old-secret-1a2b\n');
      const clock = new ManualClock();
      const sidecar = await startSidecar(
        { routes: [{ name: 'plain', upstream: r.upstream.url, auth: { tokenUrl: r.tokens.url, method: 'client_secret_post', clientId: 'rotating-client', clientSecretFile: file, retry: { retries: 0 } } }] },
        { clock },
      );
      try {
        const source = sidecar.sidecar.tokenSources.get('plain')!;
        await source.getToken();
        r.accepted.clear();
        r.accepted.add('plain-new-7a8b');
        clock.advance(480_000);
        await eventually(() => source.status().lastError !== undefined);
        writeFileSync(file, 'plain-new-7a8b\n');
        await eventually(() => source.status().lastError === undefined, 5000);
        assert.equal(secretsUsed(r).at(-1), 'plain-new-7a8b');
      } finally {
        await sidecar.close();
      }
    } finally {
      await r.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('no client secret or issued token in any log line or error body of the cases above', () => audit.assertNothingLeaked());
