// The environment a worker is forked with (environment.ts): what Node and glibc read stays, so a
// worker runs as the primary does (malloc tuning included); credentials and everything else go.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { keptForWorkers, workerEnvironment } from '../../src/workers/environment.js';

describe('a worker\'s environment', () => {
  test('keeps what Node, glibc\'s malloc and the system read', () => {
    for (const name of ['NODE_OPTIONS', 'NODE_EXTRA_CA_CERTS', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_ARENA_MAX', 'MALLOC_TRIM_THRESHOLD_', 'GLIBC_TUNABLES', 'UV_THREADPOOL_SIZE', 'PATH', 'TZ', 'LC_ALL', 'SSL_CERT_FILE']) {
      assert.equal(keptForWorkers(name), true, name);
    }
  });

  test('drops the sidecar\'s variables, proxies, credentials, and credential-like NODE_ names', () => {
    for (const name of ['BEARER_SIDECAR_CLIENT_SECRET', 'BEARER_SIDECAR_WORKERS', 'HTTPS_PROXY', 'https_proxy', 'NO_PROXY', 'MY_SECRET', 'NODE_AUTH_TOKEN', 'NODE_REGISTRY_PASSWORD', 'AWS_SECRET_ACCESS_KEY', 'XMALLOC_ARENA_MAX']) {
      assert.equal(keptForWorkers(name), false, name);
    }
  });

  test('cluster.fork\'s argument: every dropped variable undefined (left out of the child), kept ones absent (inherited), extra set', () => {
    const env = { PATH: '/bin', MALLOC_MMAP_THRESHOLD_: '32768', GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=131072', BEARER_SIDECAR_CLIENT_SECRET: 's3cret', NODE_AUTH_TOKEN: 'npm-token' };
    const forked = workerEnvironment(env, { BSC_WORKER_SLOT: '2' });
    assert.deepEqual(forked, { BEARER_SIDECAR_CLIENT_SECRET: undefined, NODE_AUTH_TOKEN: undefined, BSC_WORKER_SLOT: '2' });
  });
});
