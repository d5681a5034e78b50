// A real redis-server for the shared token cache's tests: its own process on a free loopback port
// (never the default one, never a system service), with a password, no persistence; killed and
// started again on the same port by the tests that take the cache away mid-traffic. Where
// redis-server is not installed the tests that need it are skipped by name, except in CI (CI=true),
// where .ci/run installs it and a missing one is a failure.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { audit } from './audit.js';
import { freePort } from './servers.js';

const installed = spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).status === 0;

/** The `skip` option of a test that needs redis-server: a reason on a developer machine without it, never in CI. */
export const redisMissing: string | false = installed || process.env.CI === 'true' ? false : 'redis-server is not installed (apt-get install redis-server); skipping the shared token cache tests that need it';

export interface TestRedis {
  readonly port: number;
  readonly password: string;
  /** redis://:password@127.0.0.1:port/0, the password URL-escaped. */
  readonly url: string;
  /** Ends the server now (SIGKILL: no goodbye to its clients), its contents with it. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty). */
  start(): Promise<void>;
  /** Every key and its value (SCAN, then GET), as a client with the password sees them. */
  contents(): Promise<Record<string, string>>;
  close(): Promise<void>;
}

/** A password with characters a URL must escape. */
function testPassword(): string {
  return `p@ss:${randomBytes(9).toString('base64url')}/%`;
}

/** `running: false`: its port and password are chosen, but it is started only by start(). */
export async function startRedis({ running = true }: { running?: boolean } = {}): Promise<TestRedis> {
  if (!installed) throw new Error('redis-server is not installed: .ci/run installs it (apt-get install redis-server)');
  const port = await freePort();
  const password = testPassword();
  audit.addSecret(password);
  audit.addSecret(encodeURIComponent(password));
  let child: ChildProcess | undefined;
  const start = async () => {
    const started = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', password, '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', '--loglevel', 'warning'], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = started;
    const client = new Redis({ port, host: '127.0.0.1', password, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    client.on('error', () => {});
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await client.connect();
        await client.ping();
        break;
      } catch {
        if (Date.now() > deadline || started.exitCode !== null) throw new Error(`redis-server did not start on port ${port}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    client.disconnect();
  };
  const kill = async () => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGKILL');
    await exited;
  };
  if (running) await start();
  return {
    port,
    password,
    url: `redis://:${encodeURIComponent(password)}@127.0.0.1:${port}/0`,
    kill,
    start,
    async contents() {
      const client = new Redis({ port, host: '127.0.0.1', password });
      try {
        const out: Record<string, string> = {};
        let cursor = '0';
        do {
          const [next, keys] = await client.scan(cursor, 'COUNT', 100);
          cursor = next;
          for (const key of keys) out[key] = (await client.get(key)) ?? '';
        } while (cursor !== '0');
        return out;
      } finally {
        client.disconnect();
      }
    },
    close: kill,
  };
}

/** A key file with `count` fresh keys (base64 of 32 bytes a line), each registered as a secret for the audit. */
export function encryptionKeys(count = 1): string {
  const keys = Array.from({ length: count }, () => randomBytes(32).toString('base64'));
  for (const key of keys) audit.addSecret(key);
  return `${keys.join('\n')}\n`;
}
