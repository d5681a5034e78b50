// What the shared token cache holds for one credential, and under which key. The key is a hash of
// everything that changes the token (endpoint or issuer, client id, client authentication method,
// grant, scope, audience, extra parameters such as resource), never of a secret. The value is the
// token, its lifetime and when that began, sealed with AES-256-GCM under the first key of the key
// file, the entry's key as associated data (so a value copied under another credential's key does
// not open). Anyone who can read the cache sees only which credentials have an entry.

import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { AuthConfig } from '../../config/types.js';
import type { Token } from '../exchange.js';

/** The cache keys of one credential: its token entry, and the lock of the replica fetching it. */
export interface EntryKeys {
  readonly token: string;
  readonly lock: string;
}

/** Throws when the client id cannot be read (its file is missing): the caller then does without the cache. */
export function entryKeys(auth: AuthConfig, prefix: string): EntryKeys {
  const parts = {
    endpoint: auth.tokenUrl ?? `issuer ${auth.issuer ?? ''}`,
    clientId: auth.clientId?.read() ?? null,
    method: auth.method,
    grant: auth.grantType,
    scope: auth.scope ?? null,
    audience: auth.audience ?? null,
    extraParams: Object.entries(auth.extraParams).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  };
  const hash = createHash('sha256').update(JSON.stringify(parts)).digest('base64url');
  return { token: `${prefix}token:${hash}`, lock: `${prefix}lock:${hash}` };
}

/** A token as the cache holds it (before sealing). */
export interface SharedToken {
  readonly accessToken: string;
  readonly lifetimeSeconds: number;
  readonly lifetimeFrom: Token['lifetimeFrom'];
  readonly scope: string | undefined;
  /** When its life began (ms since the epoch). */
  readonly obtainedAt: number;
}

const version = 'v1';

/** A short, stable name of a key, so that an entry says which key sealed it (SHA-256 of the key, 8 hex digits: says nothing of it). */
function keyId(key: Buffer): string {
  return createHash('sha256').update('bearer-sidecar token cache key\0').update(key).digest('hex').slice(0, 8);
}

export class EntrySeal {
  readonly #keys: readonly { readonly id: string; readonly key: Buffer }[];

  /** `keys`: the key file's, in order; the first seals. */
  constructor(keys: readonly Buffer[]) {
    this.#keys = keys.map((key) => ({ id: keyId(key), key }));
  }

  /** `v1.<key id>.<base64url of iv, tag, ciphertext>`. */
  seal(entryKey: string, token: SharedToken): string {
    const { id, key } = this.#keys[0] as { id: string; key: Buffer };
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(entryKey));
    const plain = JSON.stringify({ t: token.accessToken, l: token.lifetimeSeconds, f: token.lifetimeFrom, s: token.scope ?? null, o: token.obtainedAt });
    const sealed = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `${version}.${id}.${Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString('base64url')}`;
  }

  /** The token in `value`, or undefined when it does not open (another key, tampered, moved) or does not parse. */
  open(entryKey: string, value: string): SharedToken | undefined {
    const [v, id, body] = value.split('.');
    const key = this.#keys.find((candidate) => candidate.id === id)?.key;
    if (v !== version || !key || !body) return undefined;
    try {
      const bytes = Buffer.from(body, 'base64url');
      const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, 12));
      decipher.setAAD(Buffer.from(entryKey));
      decipher.setAuthTag(bytes.subarray(12, 28));
      const plain = JSON.parse(Buffer.concat([decipher.update(bytes.subarray(28)), decipher.final()]).toString('utf8')) as Record<string, unknown>;
      const { t, l, f, s, o } = plain;
      if (typeof t !== 'string' || typeof l !== 'number' || typeof o !== 'number' || (f !== 'expires_in' && f !== 'jwt' && f !== 'default')) return undefined;
      return { accessToken: t, lifetimeSeconds: l, lifetimeFrom: f, scope: typeof s === 'string' ? s : undefined, obtainedAt: o };
    } catch {
      return undefined;
    }
  }
}
