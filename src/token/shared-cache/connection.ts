// The one connection of a process to the shared token cache (Redis or Valkey, through ioredis).
// Every call is bounded (timeoutMs) and fails at once while the cache is not connected (no queue
// of commands waiting for it): the caller then steps aside and fetches its own token. It reconnects
// by itself with backoff (0.1 s doubling to 2 s), reading the URL file again each time; it logs
// one line per change of state (up, down) and tells its listeners. The password is never logged:
// the cache is named by host:port, and a server's message is scrubbed of the password.

import type { Redis, RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { parseCacheUrl, type CacheAddress } from '../../config/token-cache.js';
import type { TokenCacheConfig } from '../../config/types.js';
import { tlsConnectOptions } from '../../tls.js';

/** Deletes KEYS[1] only if it still holds ARGV[1], in one step: a token revoked, a lock released. */
const deleteIfEqualsScript = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

/** Reconnect backoff: 100 ms doubling to 2 s, so sharing is back within seconds of the cache. */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(100 * 2 ** Math.min(attempt - 1, 10), 2_000);
}

type ScriptedRedis = Redis & { bscDeleteIfEquals(key: string, value: string): Promise<number> };

export class CacheConnection {
  /** host:port, for logs: never the URL (it holds the password). */
  readonly name: string;
  readonly #config: TokenCacheConfig;
  readonly #logger: Logger | undefined;
  readonly #client: ScriptedRedis;
  #address: CacheAddress;
  /** Answering calls. False until the first connection, and after any failure until the cache answers again. */
  #up = false;
  /** Something failed since the start (before that, a first call may wait for the first connection). */
  #everFailed = false;
  #everUp = false;
  /** The down state was logged (one line per change of state, not per reconnect attempt). */
  #downLogged = false;
  #closed = false;
  readonly #listeners = new Set<(up: boolean) => void>();

  /** `Client`: ioredis's Redis class, which open.ts imports (by import(): an ES import would be hoisted to the bundle's start). */
  constructor(Client: typeof Redis, config: TokenCacheConfig, logger?: Logger) {
    this.#config = config;
    this.#logger = logger;
    this.#address = parseCacheUrl(config.url.read());
    this.name = `${this.#address.host}:${this.#address.port}`;
    const options: RedisOptions = {
      ...this.#addressOptions(this.#address),
      connectTimeout: config.connectTimeoutMs,
      commandTimeout: config.timeoutMs,
      // A call while disconnected fails at once; nothing waits for the cache to come back.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectionName: 'bearer-sidecar',
      retryStrategy: (attempt) => {
        this.#reloadUrl();
        return reconnectDelayMs(attempt);
      },
    };
    this.#client = new Client(options) as ScriptedRedis;
    this.#client.defineCommand('bscDeleteIfEquals', { numberOfKeys: 1, lua: deleteIfEqualsScript });
    this.#client.on('ready', () => this.#changed(true));
    this.#client.on('error', (err: Error) => {
      this.#failed(err);
      // Connected, but the ready check got no answer (a cache that accepts and never answers): start over.
      if (/timed out/i.test(err.message) && this.#client.status === 'connect') this.#client.disconnect(true);
    });
    this.#client.on('close', () => {
      if (!this.#closed) this.#failed(new Error('connection closed'));
    });
  }

  get up(): boolean {
    return this.#up;
  }

  /** Told of every change of state: true when the cache answers again, false when it stopped. */
  onChange(listener: (up: boolean) => void): void {
    this.#listeners.add(listener);
  }

  /**
   * Whether to use the cache now. At start-up, before anything failed, it waits for the first
   * connection (at most connectTimeoutMs), so a fleet started together shares its first tokens;
   * after that it never waits.
   */
  async usable(): Promise<boolean> {
    if (this.#up || this.#everFailed || this.#closed) return this.#up;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#listeners.delete(done);
        resolve();
      };
      const timer = setTimeout(done, this.#config.connectTimeoutMs);
      this.#listeners.add(done);
    });
    return this.#up;
  }

  get(key: string): Promise<string | null> {
    return this.#call(() => this.#client.get(key));
  }

  /** Sets `key` only if it is absent; true if it was set. */
  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    return (await this.#call(() => this.#client.set(key, value, 'PX', Math.max(1, Math.round(ttlMs)), 'NX'))) === 'OK';
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    await this.#call(() => this.#client.set(key, value, 'PX', Math.max(1, Math.round(ttlMs))));
  }

  /** Deletes `key` only if it holds `value` (compare and delete, one step in the cache); true if deleted. */
  async deleteIfEquals(key: string, value: string): Promise<boolean> {
    return (await this.#call(() => this.#client.bscDeleteIfEquals(key, value))) === 1;
  }

  /** Milliseconds a PING took. Throws when the cache does not answer. */
  async ping(): Promise<number> {
    const started = performance.now();
    await this.#call(() => this.#client.ping());
    return performance.now() - started;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    this.#client.disconnect();
  }

  async #call<T>(call: () => Promise<T>): Promise<T> {
    try {
      const result = await call();
      this.#changed(true);
      return result;
    } catch (err) {
      const error = new Error(this.#scrub((err as Error).message));
      this.#failed(error);
      // A slow cache: the connection is started again (with backoff); the 'ready' of the new one says it is back.
      if (/timed out/i.test(error.message) && this.#client.status === 'ready') this.#client.disconnect(true);
      throw error;
    }
  }

  /** Why the cache last failed (scrubbed), for `check`. */
  get lastFailure(): string | undefined {
    return this.#lastFailure;
  }

  #lastFailure: string | undefined;

  #failed(err: Error): void {
    this.#everFailed = true;
    this.#lastFailure = this.#scrub(err.message);
    this.#changed(false, this.#scrub(err.message));
  }

  #changed(up: boolean, reason?: string): void {
    if (this.#closed) return;
    // Down at start-up (never up yet) is a change too, logged once.
    if (up === this.#up && (up || this.#downLogged)) return;
    this.#up = up;
    this.#downLogged = !up;
    if (up) this.#logger?.info({ cache: this.name }, this.#everUp ? 'token cache reachable again; tokens are shared again' : 'token cache connected');
    else this.#logger?.warn({ cache: this.name, reason }, 'token cache unreachable; each replica fetches its own tokens until it is back');
    this.#everUp ||= up;
    for (const listener of [...this.#listeners]) listener(up);
  }

  /** A URL file read again before each reconnect: a rotated password or a moved cache is picked up. */
  #reloadUrl(): void {
    if (this.#config.url.file === undefined) return;
    try {
      const address = parseCacheUrl(this.#config.url.read());
      if (JSON.stringify(address) === JSON.stringify(this.#address)) return;
      this.#address = address;
      // ioredis connects with the options object it holds: the next attempt takes these.
      Object.assign(this.#client.options, this.#addressOptions(address));
      this.#logger?.info({ cache: `${address.host}:${address.port}` }, 'token cache URL file changed; reconnecting with it');
    } catch (err) {
      this.#logger?.warn({ file: this.#config.url.file, reason: (err as Error).message }, 'token cache URL file unusable; keeping the previous URL');
    }
  }

  #addressOptions(address: CacheAddress): RedisOptions {
    const tls = address.tls ? { ...tlsConnectOptions(this.#config.tls, this.#logger), servername: address.host } : undefined;
    return { host: address.host, port: address.port, username: address.username, password: address.password, db: address.db, tls };
  }

  /** A server's message with the password, should it ever be in one, replaced. */
  #scrub(message: string): string {
    const { password } = this.#address;
    return password ? message.replaceAll(password, '[password]') : message;
  }
}
