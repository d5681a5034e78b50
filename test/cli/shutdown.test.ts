// Shutdown bounds of the real process (dist/cli.js): a request longer than drainTimeoutMs is cut
// at the bound and the process still exits 0; a second signal during the drain exits at once
// with 1. Logs at trace level hold no secret or token.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { closeServer } from '../../src/demo/token-server.js';
import { audit } from '../helpers/audit.js';
import { run, type Running } from '../helpers/process.js';
import { freePort, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';

const secret = 'shutdown-secret-9f8e';
const dir = mkdtempSync(join(tmpdir(), 'bsc-shutdown-'));

describe('shutdown bounds', () => {
  let tokens: ScriptedTokenServer;
  let slow: Server;
  /** Whether the upstream saw each request cut before it answered. */
  const cut: boolean[] = [];
  let sawRequest: () => void = () => {};
  before(async () => {
    tokens = await startScriptedTokenServer();
    audit.addSecret(secret);
    // Answers after 30 s: longer than any drain here.
    slow = createServer((_req, res) => {
      sawRequest();
      const timer = setTimeout(() => res.end('late'), 30_000);
      res.on('close', () => {
        clearTimeout(timer);
        cut.push(!res.writableFinished);
      });
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    await Promise.all([tokens.close(), closeServer(slow)]);
  });

  async function start(name: string, drainTimeoutMs: number): Promise<{ sidecar: Running; port: number; inFlight: Promise<string> }> {
    const port = await freePort();
    const path = join(dir, `${name}.yaml`);
    writeFileSync(
      path,
      `listen: { port: ${port} }\nadmin: { port: 0 }\nlogLevel: trace\ndrainTimeoutMs: ${drainTimeoutMs}\nroutes:\n  - name: api\n    upstream: http://127.0.0.1:${(slow.address() as AddressInfo).port}\n    auth: { tokenUrl: ${tokens.url}, clientId: cli-client, clientSecret: ${secret} }\n`,
    );
    const sidecar = run(['--config', path]);
    await sidecar.waitFor(/"msg":"token refreshed"/);
    const seen = new Promise<void>((resolve) => (sawRequest = resolve));
    // node:http, so the outcome (answer or cut connection) is plain to see.
    const inFlight = new Promise<string>((resolve) => {
      httpRequest(`http://127.0.0.1:${port}/slow`, { agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(`answered ${res.statusCode}`));
        res.on('error', () => resolve('cut'));
      })
        .on('error', () => resolve('cut'))
        .end();
    });
    await seen;
    return { sidecar, port, inFlight };
  }

  test('a request longer than drainTimeoutMs is cut at the bound; the upstream request is aborted; exit 0', async () => {
    const { sidecar, inFlight } = await start('drain-bound', 600);
    try {
      const started = Date.now();
      sidecar.child.kill('SIGTERM');
      assert.equal(await sidecar.exited, 0);
      const tookMs = Date.now() - started;
      assert.ok(tookMs >= 500 && tookMs < 5000, `exited after ${tookMs} ms`);
      assert.equal(await inFlight, 'cut');
      assert.match(sidecar.output(), /drain time over/);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(cut.at(-1), true, 'the upstream saw its request aborted');
      audit.assertNothingLeaked([sidecar.output()]);
    } finally {
      sidecar.child.kill('SIGKILL');
    }
  });

  test('a second SIGTERM during the drain exits at once, with 1', async () => {
    const { sidecar, inFlight } = await start('second-signal', 20_000);
    try {
      sidecar.child.kill('SIGTERM');
      await sidecar.waitFor(/shutting down/);
      const started = Date.now();
      sidecar.child.kill('SIGTERM');
      assert.equal(await sidecar.exited, 1);
      assert.ok(Date.now() - started < 3000, `exited ${Date.now() - started} ms after the second signal`);
      assert.equal(await inFlight, 'cut');
      assert.match(sidecar.output(), /second signal; exiting now/);
      audit.assertNothingLeaked([sidecar.output()]);
    } finally {
      sidecar.child.kill('SIGKILL');
    }
  });
});
