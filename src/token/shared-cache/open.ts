// Opens the shared token cache of a process: one connection (connection.ts), the encryption keys
// of the key file, the metrics when there is a registry, and a layer per route (layer.ts). Loaded
// by dynamic import only when the config has a `tokenCache` (server.ts, createTokenSource), so
// neither ioredis nor any of this is loaded by a sidecar without one.

import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { parseEncryptionKeys } from '../../config/token-cache.js';
import type { TokenCacheConfig } from '../../config/types.js';
import { CacheConnection } from './connection.js';
import { EntrySeal } from './entry.js';
import { SharedTokenLayer } from './layer.js';
import { cacheMetrics } from './metrics.js';
import type { SharedTokenCache } from './types.js';

export async function openSharedTokenCache(config: TokenCacheConfig, options: { logger?: Logger | undefined; registry?: Registry | undefined } = {}): Promise<SharedTokenCache> {
  const { logger, registry } = options;
  // Checked at load; read again here, as the process that uses them starts.
  const seal = new EntrySeal(parseEncryptionKeys(config.encryptionKeys.read()));
  const { Redis } = await import('ioredis');
  const connection = new CacheConnection(Redis, config, logger);
  const metrics = registry && cacheMetrics(registry);
  return {
    forRoute: (route, auth, clock) => new SharedTokenLayer({ route, auth, connection, seal, keyPrefix: config.keyPrefix, clock, metrics, logger }),
    async check() {
      if (!(await connection.usable())) throw new Error(`${connection.name} does not answer: ${connection.lastFailure ?? `no connection within ${config.connectTimeoutMs} ms`}`);
      const ms = await connection.ping();
      return `${connection.name} answers (PING in ${ms.toFixed(1)} ms)`;
    },
    close: () => connection.close(),
  };
}
