// Reload of the real process (dist/cli.js): SIGHUP reads the config file again and applies it;
// a bad file is logged and the process stays up serving the old config; a listen change is
// refused with a restart line. A SIGHUP that comes before it listens is kept for when it does
// (its default action would end it). BEARER_SIDECAR_WATCH_CONFIG=true reloads on a file change without
// a signal; asking to watch with no file to watch is a usage error.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, writeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { audit, call } from '../helpers/audit.js';
import { tempFiles } from '../helpers/config.js';
import { run, runToEnd, type Running } from '../helpers/process.js';
import { freePort, signingKey, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';
import { eventually } from '../helpers/sidecar.js';

const secret = 'cli-reload-secret-7c1d';
audit.addSecret(secret);
const files = tempFiles('bsc-cli-reload-');

describe('reload of the running CLI', () => {
  let tokens: ScriptedTokenServer;
  let a: EchoUpstream;
  let b: EchoUpstream;
  before(async () => {
    tokens = await startScriptedTokenServer();
    [a, b] = await Promise.all([startEchoUpstream({ signingKey }), startEchoUpstream({ signingKey })]);
  });
  after(async () => {
    await Promise.all([tokens.close(), a.close(), b.close()]);
  });

  const yaml = (port: number, adminPort: number, upstream: string) =>
    `listen: { port: ${port} }\nadmin: { port: ${adminPort} }\nlogLevel: debug\nroutes:\n  - name: api\n    upstream: ${upstream}\n    auth: { tokenUrl: ${tokens.url}, clientId: cli-client, clientSecret: ${secret} }\n`;
  /** Waits until `pattern` has appeared `count` times in the output. */
  const seen = (sidecar: Running, pattern: RegExp, count: number) => eventually(() => (sidecar.output().match(new RegExp(pattern, 'g')) ?? []).length >= count, 15_000);

  test('SIGHUP applies a changed file; a bad file leaves the old config serving and the process up; a listen change needs a restart', async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    const file = join(files.dir, 'hup.yaml');
    writeFileSync(file, yaml(port, adminPort, a.url));
    const sidecar = run(['--config', file]);
    try {
      await sidecar.waitFor(/"msg":"token refreshed"/);
      const proxy = `http://127.0.0.1:${port}`;
      const readyz = async () => (await call(`http://127.0.0.1:${adminPort}/readyz`)).json<{ config: { hash: string; loadedAt: string } }>().config;
      assert.equal((await call(`${proxy}/x`)).status, 200);
      assert.equal(a.received.length, 1);
      const first = await readyz();

      writeFileSync(file, yaml(port, adminPort, b.url));
      sidecar.child.kill('SIGHUP');
      await seen(sidecar, /"msg":"config reloaded"/, 1);
      assert.equal((await call(`${proxy}/y`)).status, 200);
      assert.equal(b.received.length, 1, 'the new upstream');
      const second = await readyz();
      assert.notEqual(second.hash, first.hash);
      assert.match(sidecar.output(), new RegExp(`"config":"${second.hash}"`));

      writeFileSync(file, 'routes:\n  - name: api\n    upstream: nowhere\n');
      sidecar.child.kill('SIGHUP');
      await seen(sidecar, /"msg":"config reload failed; the previous config stays in force"/, 1);
      assert.match(sidecar.output(), /"problems":\["routes\[0\]\.upstream: must be an absolute http/);
      assert.equal(sidecar.child.exitCode, null, 'still running');
      assert.equal((await call(`${proxy}/z`)).status, 200);
      assert.equal(b.received.length, 2, 'the old config serves');
      assert.equal((await readyz()).hash, second.hash);

      writeFileSync(file, yaml(await freePort(), adminPort, a.url));
      sidecar.child.kill('SIGHUP');
      await seen(sidecar, /"msg":"config reloaded"/, 2);
      assert.match(sidecar.output(), /"fields":\["listen\.port"\],"msg":"these settings need a new socket: restart the sidecar to apply them/);
      assert.equal((await call(`${proxy}/w`)).status, 200, 'still on the old port');
      assert.equal(a.received.length, 2, 'the route change applied');
      assert.equal(tokens.requests.length, 1, 'one token throughout');

      sidecar.child.kill('SIGTERM');
      assert.equal(await sidecar.exited, 0);
      audit.assertNothingLeaked([sidecar.output()]);
    } finally {
      sidecar.child.kill('SIGKILL');
    }
  });

  test('a SIGHUP before the sidecar listens (systemctl reload just after start) does not end it: the reload comes once it listens', async (t) => {
    const [port, adminPort] = [await freePort(), await freePort()];
    // The config is a FIFO: the CLI waits in reading it (after catching SIGHUP, before listening) until the test writes it.
    const fifo = join(files.dir, 'early.yaml');
    try {
      execFileSync('mkfifo', [fifo]);
    } catch {
      return void t.skip('mkfifo is not available');
    }
    const text = yaml(port, adminPort, a.url);
    /** Opens the FIFO for writing once the CLI has it open for reading (never blocks), writes the config and closes it. */
    const feed = async () => {
      let fd: number | undefined;
      await eventually(() => {
        try {
          fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
          return true;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw err;
          return false;
        }
      }, 15_000);
      return fd as number;
    };
    const sidecar = run(['--config', fifo]);
    try {
      const first = await feed();
      sidecar.child.kill('SIGHUP'); // while it reads its config
      try {
        writeSync(first, text);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw err; // the signal ended it: said below
      } finally {
        closeSync(first);
      }
      await Promise.race([
        sidecar.waitFor(/"msg":"listening"/, 15_000),
        sidecar.exited.then((end) => assert.fail(`the process ended (${end}) instead of listening:\n${sidecar.output()}`)),
      ]);
      // The SIGHUP it kept: the config is read again (from the FIFO once more), and nothing changed.
      const again = await feed();
      writeSync(again, text);
      closeSync(again);
      await seen(sidecar, /"msg":"config reloaded: nothing changed"/, 1);
      assert.equal((await call(`http://127.0.0.1:${port}/x`)).status, 200);
      sidecar.child.kill('SIGTERM');
      assert.equal(await sidecar.exited, 0);
      audit.assertNothingLeaked([sidecar.output()]);
    } finally {
      sidecar.child.kill('SIGKILL');
    }
  });

  test('a SIGHUP while the executable still loads the CLI (before main runs) does not end it either: the reload comes once it listens', async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    const file = join(files.dir, 'boot.yaml');
    writeFileSync(file, yaml(port, adminPort, a.url));
    // A module hook holds the loading of main.js (the bundle) for a moment and says when: the
    // window between cli.js's first line and main()'s own SIGHUP handler, made wide enough to hit.
    const hooks = `data:text/javascript,${encodeURIComponent(
      "import { writeSync } from 'node:fs'; export async function load(url, context, next) { if (/\\/main\\.js$/.test(url)) { writeSync(2, 'loading main.js\\n'); await new Promise((r) => setTimeout(r, 1500)); } return next(url, context); }",
    )}`;
    const preload = `data:text/javascript,${encodeURIComponent(`import { register } from 'node:module'; register(${JSON.stringify(hooks)});`)}`;
    const sidecar = run(['--config', file], { NODE_OPTIONS: `--import=${preload}` });
    try {
      await sidecar.waitFor(/loading main\.js/, 15_000);
      sidecar.child.kill('SIGHUP');
      await Promise.race([
        sidecar.waitFor(/"msg":"listening"/, 15_000),
        sidecar.exited.then((end) => assert.fail(`the process ended (${end}) instead of listening:\n${sidecar.output()}`)),
      ]);
      await seen(sidecar, /"msg":"config reloaded: nothing changed"/, 1);
      assert.equal((await call(`http://127.0.0.1:${port}/x`)).status, 200);
      sidecar.child.kill('SIGTERM');
      assert.equal(await sidecar.exited, 0);
    } finally {
      sidecar.child.kill('SIGKILL');
    }
  });

  test('BEARER_SIDECAR_WATCH_CONFIG=true: a change of the file reloads without a signal', async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    const file = join(files.dir, 'watch.yaml');
    writeFileSync(file, yaml(port, adminPort, a.url));
    const sidecar = run([], { BEARER_SIDECAR_CONFIG: file, BEARER_SIDECAR_WATCH_CONFIG: 'true' });
    try {
      await sidecar.waitFor(/"msg":"listening"/);
      const before = b.received.length;
      writeFileSync(file, yaml(port, adminPort, b.url));
      await seen(sidecar, /"msg":"config reloaded"/, 1);
      assert.match(sidecar.output(), /"msg":"config file changed; reloading"/);
      assert.equal((await call(`http://127.0.0.1:${port}/x`)).status, 200);
      assert.equal(b.received.length, before + 1);
      sidecar.child.kill('SIGTERM');
      assert.equal(await sidecar.exited, 0);
      audit.assertNothingLeaked([sidecar.output()]);
    } finally {
      sidecar.child.kill('SIGKILL');
    }
  });

  test('watching without a config file, or a watch variable that is not true or false, is a usage error (exit 2)', async () => {
    const env = { BEARER_SIDECAR_UPSTREAM: a.url, BEARER_SIDECAR_TOKEN_URL: tokens.url, BEARER_SIDECAR_CLIENT_ID: 'id', BEARER_SIDECAR_CLIENT_SECRET: secret };
    const flag = await runToEnd(['--watch-config'], env);
    assert.equal(flag.code, 2);
    assert.match(flag.output, /--watch-config \(BEARER_SIDECAR_WATCH_CONFIG\) needs a config file/);
    const variable = await runToEnd([], { ...env, BEARER_SIDECAR_WATCH_CONFIG: 'yes' });
    assert.equal(variable.code, 2);
    assert.match(variable.output, /BEARER_SIDECAR_WATCH_CONFIG must be true or false/);
  });
});
