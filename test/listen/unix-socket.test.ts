// The proxy on a Unix domain socket: requests through the socket (node:http and curl), its file
// mode (checked as another user), a stale socket replaced, a live one or a plain file refused, the
// file removed at exit. Sockets live in temp directories.

import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { startTokenServer, type TokenServer } from '../../src/demo/token-server.js';
import { SidecarError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { createSidecar } from '../../src/server.js';
import { run } from '../helpers/process.js';
import { signingKey } from '../helpers/servers.js';
import { startSidecar } from '../helpers/sidecar.js';
import { echo, openSocket } from '../helpers/websocket.js';

const nobody = 65534;
const isRoot = process.getuid?.() === 0;
const hasCurl = spawnSync('curl', ['--version']).status === 0;

/** A fresh directory any user may enter (mkdtemp's 0700 would deny access before the socket's mode does). */
function socketDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bsc-sock-'));
  chmodSync(dir, 0o755);
  return dir;
}

function getVia(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ socketPath, path, headers: { authorization: 'Bearer caller-token' } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

/**
 * This node binary where another user may run it: the test's own may sit in a checkout that only its
 * owner may enter (a clone in mkdtemp's 0700 directory, with scripts/node24 inside it).
 */
function nodeForAnyUser(dir: string): string {
  const path = join(dir, 'node');
  copyFileSync(process.execPath, path);
  chmodSync(path, 0o755);
  return path;
}

/** Connects to the socket as another user, with `node` (nodeForAnyUser); resolves with 'connected' or the error code. */
function connectAs(uid: number, socketPath: string, node: string): Promise<string> {
  const script = `require('node:net').connect({ path: ${JSON.stringify(socketPath)} })
    .on('connect', () => { console.log('connected'); process.exit(0); })
    .on('error', (err) => { console.log(err.code); process.exit(0); });`;
  return new Promise((resolve, reject) => {
    const child = spawn(node, ['-e', script], { uid, gid: uid, cwd: '/', stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', () => resolve(out.trim()));
  });
}

/** Leaves a socket file behind whose process has died (SIGKILL: no chance to remove it). */
function staleSocket(path: string): void {
  const script = `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'));`;
  spawnSync(process.execPath, ['-e', script]);
  assert.ok(lstatSync(path).isSocket(), 'a stale socket file was left');
}

describe('the proxy on a Unix domain socket', () => {
  let tokens: TokenServer;
  let upstream: EchoUpstream;
  const auth = () => ({ tokenUrl: tokens.url, clientId: 'sock-client', clientSecret: 'sock-secret' });
  const config = (socket: string, mode?: string) => ({ listen: { socket, ...(mode ? { mode } : {}) }, routes: [{ name: 'api', upstream: `${upstream.url}/api`, websocket: true, auth: auth() }] });
  before(async () => {
    tokens = await startTokenServer({ clients: [{ id: 'sock-client', secret: 'sock-secret' }], signingKey });
    upstream = await startEchoUpstream({ signingKey });
  });
  after(async () => {
    await Promise.all([tokens.close(), upstream.close()]);
  });

  test('requests through the socket carry the token; the file has the configured mode; admin stays on TCP; the file goes at exit', async () => {
    const path = join(socketDir(), 'proxy.sock');
    const sidecar = await startSidecar(config(path, '0640'));
    try {
      assert.equal(sidecar.proxyUrl, `unix:${path}`);
      const stat = lstatSync(path);
      assert.ok(stat.isSocket());
      assert.equal(stat.mode & 0o777, 0o640);
      const { status, body } = await getVia(path, '/hello?x=1');
      assert.equal(status, 200);
      const echo = JSON.parse(body) as { path: string; query: string; headers: Record<string, string> };
      assert.deepEqual([echo.path, echo.query], ['/api/hello', '?x=1']);
      assert.match(echo.headers.authorization ?? '', /^Bearer ey/);
      assert.equal((await fetch(`${sidecar.adminUrl}/readyz`)).status, 200);
      assert.ok(sidecar.logs.some((line) => line.includes(`"proxy":"unix:${path}"`)), 'the listening line names the socket');
    } finally {
      await sidecar.close();
    }
    assert.equal(existsSync(path), false, 'the socket file is removed at exit');
  });

  test('curl --unix-socket works', { skip: hasCurl ? false : 'curl is not installed' }, async () => {
    const path = join(socketDir(), 'proxy.sock');
    const sidecar = await startSidecar(config(path));
    try {
      const { stdout: out } = await promisify(execFile)('curl', ['-sS', '--max-time', '10', '--unix-socket', path, 'http://localhost/from-curl'], { encoding: 'utf8' });
      const echo = JSON.parse(out) as { path: string; headers: Record<string, string> };
      assert.equal(echo.path, '/api/from-curl');
      assert.match(echo.headers.authorization ?? '', /^Bearer ey/);
    } finally {
      await sidecar.close();
    }
  });

  test('WebSockets work through the socket too', async () => {
    const path = join(socketDir(), 'proxy.sock');
    const sidecar = await startSidecar(config(path));
    try {
      const socket = await openSocket(`ws+unix://${path}:/echo`);
      assert.equal((await echo(socket, 'over a unix socket')).data.toString(), 'over a unix socket');
      socket.close();
    } finally {
      await sidecar.close();
    }
  });

  test('the mode decides who may connect: 0600 denies another user (EACCES), 0666 lets it in', { skip: isRoot ? false : 'needs root to run a client as another user' }, async () => {
    const dir = socketDir();
    const closed = join(dir, 'closed.sock');
    const open = join(dir, 'open.sock');
    const first = await startSidecar(config(closed, '0600'));
    const second = await startSidecar(config(open, '0666'));
    try {
      const node = nodeForAnyUser(dir);
      assert.equal(await connectAs(nobody, closed, node), 'EACCES');
      assert.equal(await connectAs(nobody, open, node), 'connected', 'the same user gets in when the mode allows it');
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  test('a stale socket file (its process died) is replaced at start', async () => {
    const path = join(socketDir(), 'proxy.sock');
    staleSocket(path);
    const sidecar = await startSidecar(config(path));
    try {
      assert.equal((await getVia(path, '/after-stale')).status, 200);
    } finally {
      await sidecar.close();
    }
  });

  test('a socket another process answers on, or a file that is no socket, stops the start and is left alone', async () => {
    const dir = socketDir();
    const live = join(dir, 'live.sock');
    // The start-up probe connects and leaves at once: that reset is expected.
    const other: Server = createServer((socket) => socket.on('error', () => {}).end('still mine'));
    await new Promise<void>((resolve) => other.listen(live, resolve));
    const plain = join(dir, 'notes.txt');
    writeFileSync(plain, 'not a socket');
    try {
      for (const [path, code, message] of [
        [live, 'BSC_SOCKET_IN_USE', /another process is listening on .*live\.sock/],
        [plain, 'BSC_SOCKET_PATH_OCCUPIED', /notes\.txt exists and is not a socket/],
      ] as const) {
        const sidecar = await createSidecar(resolveConfig({ ...config(path), admin: { port: 0 } }), { logger: createLogger({ level: 'silent' }) });
        try {
          await assert.rejects(sidecar.listen(), (err: unknown) => err instanceof SidecarError && err.code === code && message.test(err.message));
        } finally {
          await sidecar.close();
        }
      }
      assert.equal(readFileSync(plain, 'utf8'), 'not a socket');
      const reply = await new Promise<string>((resolve, reject) => {
        connect({ path: live })
          .on('data', (d) => resolve(d.toString()))
          .on('error', reject);
      });
      assert.equal(reply, 'still mine', 'the live socket still belongs to its process');
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });

  test('the CLI: a socket in use fails at start-up with exit 1 and a line that says why', async () => {
    const dir = socketDir();
    const live = join(dir, 'live.sock');
    const other = createServer((socket) => socket.on('error', () => {}).end());
    await new Promise<void>((resolve) => other.listen(live, resolve));
    const file = join(dir, 'config.yaml');
    writeFileSync(file, `listen: { socket: ${live} }\nadmin: { port: 0 }\nroutes:\n  - name: api\n    upstream: ${upstream.url}\n    auth: { tokenUrl: ${tokens.url}, clientId: sock-client, clientSecret: sock-secret }\n`);
    try {
      const sidecar = run(['--config', file]);
      assert.equal(await sidecar.exited, 1);
      assert.match(sidecar.output(), /"code":"BSC_SOCKET_IN_USE".*another process is listening on/);
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });
});
