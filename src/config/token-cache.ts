// Resolves the top-level `tokenCache`: the cache's URL (inline or from a file) and the encryption
// key file, both checked at load so a wrong one fails at start-up with its field's path. The URL's
// password and the keys are never part of a message: a problem names the field and the file.

import type { RawTokenCache } from './schema.js';
import { SecretSource } from './secret.js';
import { resolveTls } from './security.js';
import type { TokenCacheConfig } from './types.js';

/** Where the cache is, as the client library takes it. `password` is URL-decoded. */
export interface CacheAddress {
  readonly tls: boolean;
  readonly host: string;
  readonly port: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly db: number;
}

/** Reads redis://[user[:password]@]host[:port][/db] or rediss://... Throws an Error whose message never holds the URL. */
export function parseCacheUrl(text: string): CacheAddress {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new Error('is not a URL; use redis://[user:password@]host:6379/0 or rediss://... (escape reserved characters of the password with %XX)');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new Error(`must be a redis:// or rediss:// URL, not ${url.protocol}//`);
  if (url.hostname === '') throw new Error('must name the cache host');
  if (url.search || url.hash) throw new Error('must not carry a query string or fragment');
  const path = url.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d{1,2}$/.test(path)) throw new Error('its path must be a database number such as /0');
  const decode = (part: string) => (part === '' ? undefined : decodeURIComponent(part));
  return {
    tls: url.protocol === 'rediss:',
    // [::1] comes as "[::1]"; the socket wants "::1".
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? 6379 : Number(url.port),
    username: decode(url.username),
    password: decode(url.password),
    db: path === '' ? 0 : Number(path),
  };
}

/** Bytes of an AES-256 key. */
const keyBytes = 32;

/**
 * The keys of a key file: base64 of 32 bytes each, one a line (blank lines and # comments
 * skipped); the first encrypts, any decrypts. Throws an Error naming the line, never its content.
 */
export function parseEncryptionKeys(text: string): Buffer[] {
  const keys: Buffer[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const key = /^[A-Za-z0-9+/]+={0,2}$/.test(line) ? Buffer.from(line, 'base64') : undefined;
    if (key?.length !== keyBytes) throw new Error(`line ${index + 1} is not the base64 of ${keyBytes} bytes (make a key with: openssl rand -base64 32)`);
    keys.push(key);
  });
  if (keys.length === 0) throw new Error(`holds no key (make one with: openssl rand -base64 32)`);
  return keys;
}

export function resolveTokenCache(raw: RawTokenCache, at: string, problems: string[]): TokenCacheConfig {
  const url = raw.url === undefined ? SecretSource.fromFile(raw.urlFile as string) : SecretSource.inline(raw.url);
  const urlField = raw.url === undefined ? `${at}.urlFile` : `${at}.url`;
  try {
    const address = parseCacheUrl(url.read());
    if (!address.tls && (raw.tls.caFile || raw.tls.certFile)) problems.push(`${at}.tls: applies only to a rediss:// URL`);
  } catch (err) {
    problems.push(`${urlField}: ${(err as Error).message}`);
  }
  const encryptionKeys = SecretSource.fromFile(raw.encryptionKeyFile);
  try {
    parseEncryptionKeys(encryptionKeys.read());
  } catch (err) {
    problems.push(`${at}.encryptionKeyFile: ${(err as Error).message}`);
  }
  return {
    url,
    encryptionKeys,
    keyPrefix: raw.keyPrefix,
    timeoutMs: raw.timeoutMs,
    connectTimeoutMs: raw.connectTimeoutMs,
    tls: resolveTls(raw.tls, `${at}.tls`, problems),
  };
}
