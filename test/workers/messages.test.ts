// The config as it crosses to the workers (messages.ts): without the routes' credentials, each
// route's auth a reference to the primary's token source; what a worker needs (the shared-secret
// header's value, an outbound proxy's credentials) crosses and is rebuilt.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import { decodeConfig, encodeConfig, remoteAuth } from '../../src/workers/messages.js';

describe('the config sent to the workers', () => {
  const secret = 'client-secret-never-crosses-9a7b';
  const config = resolveConfig(
    {
      workers: 2,
      listen: { sharedSecretHeader: { name: 'x-sidecar-key', value: 'shared-secret-value-1234' } },
      outboundProxy: { url: 'http://user:proxy-pass@proxy.example:3128', noProxy: ['.corp.example'] },
      routes: [
        { name: 'a', upstream: 'http://127.0.0.1:1', auth: { tokenUrl: 'http://127.0.0.1:2/t', clientId: 'id-a', clientSecret: secret, tokenWaitMs: 1234 } },
        { name: 'b', prefix: '/b', upstream: 'http://127.0.0.1:3', auth: { tokenUrl: 'http://127.0.0.1:2/t', clientId: 'id-b', clientSecret: secret } },
      ],
    },
    { env: {} },
  );

  test('holds no client id or secret; each auth names the token source and keeps the wait', () => {
    const wire = encodeConfig(config, (route) => (route === 'a' ? 7 : 8));
    const text = JSON.stringify(wire);
    assert.ok(!text.includes(secret));
    assert.ok(!text.includes('id-a') && !text.includes('tokenUrl'));
    const decoded = decodeConfig(JSON.parse(text));
    assert.deepEqual(decoded.routes.map((route) => remoteAuth(route.auth)), [
      { tokenSource: 7, tokenWaitMs: 1234 },
      { tokenSource: 8, tokenWaitMs: 10_000 },
    ]);
    assert.equal(decoded.routes[1]?.upstreamOrigin, 'http://127.0.0.1:3');
    assert.equal(decoded.workers, 2);
    assert.ok(Object.isFrozen(decoded.routes[0]));
  });

  test('what a worker needs crosses and is rebuilt: the shared-secret header, the outbound proxy with its credentials', () => {
    const decoded = decodeConfig(JSON.parse(JSON.stringify(encodeConfig(config, () => 1))));
    assert.equal(decoded.inbound.sharedSecretHeader?.name, 'x-sidecar-key');
    assert.equal(decoded.inbound.sharedSecretHeader?.value.read(), 'shared-secret-value-1234');
    const proxy = decoded.routes[0]?.outboundProxy;
    assert.equal(proxy?.http?.proxyAuthorization(), config.routes[0]?.outboundProxy?.http?.proxyAuthorization());
    assert.ok(proxy?.http?.proxyAuthorization());
    assert.equal(proxy?.noProxy.bypasses('api.corp.example', 443), true);
    assert.equal(proxy?.noProxy.bypasses('api.example', 443), false);
  });
});
