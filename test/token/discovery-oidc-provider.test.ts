// Discovery against a certified OpenID provider (panva's oidc-provider) on 127.0.0.1, mounted under
// an issuer with a path as Keycloak's realms are: a route with only `issuer` finds the token
// endpoint, authenticates with the method the provider registered for its client (basic, or post
// when configured), gets a token the provider knows, and the request is proxied with it.

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Provider from 'oidc-provider';
import { closeServer } from '../../src/demo/token-server.js';
import { audit, call } from '../helpers/audit.js';
import { startSidecar, type TestSidecar } from '../helpers/sidecar.js';

const realm = '/realms/test';
const clients = {
  basic: { id: 'basic-client', secret: 'basic-client-secret-1b7c9e' },
  post: { id: 'post-client', secret: 'post-client-secret-5d2a8f' },
};

describe('discovery against oidc-provider', () => {
  let idp: Server;
  let upstream: Server;
  let sidecar: TestSidecar;
  let issuer: string;
  /** Every token the upstream received, with the client the provider issued it to. */
  const seen: { token: string; clientId: string | undefined }[] = [];

  before(async () => {
    idp = createServer();
    await new Promise<void>((resolve) => idp.listen(0, '127.0.0.1', resolve));
    issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}${realm}`;
    const provider = new Provider(issuer, {
      clients: Object.values(clients).map(({ id, secret }) => ({
        client_id: id,
        client_secret: secret,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: id === clients.post.id ? 'client_secret_post' : 'client_secret_basic',
      })),
      features: { clientCredentials: { enabled: true }, devInteractions: { enabled: false } },
      cookies: { keys: ['a-cookie-signing-key-for-tests'] },
    });
    const callback = provider.callback();
    // Mounted under the issuer's path as Express's app.use(path, ...) would: the provider reads its
    // mount path from originalUrl (oidc-provider's "mounting" recipe).
    idp.on('request', (req: IncomingMessage & { originalUrl?: string }, res) => {
      if (!req.url?.startsWith(`${realm}/`)) return void res.writeHead(404).end();
      req.originalUrl = req.url;
      req.url = req.url.slice(realm.length);
      void callback(req, res);
    });

    // An upstream that accepts only tokens the provider issued, and says to which client.
    const issued = seen.map((s) => s.token);
    audit.addTokens(issued);
    upstream = createServer(async (req, res) => {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const found = token ? await provider.ClientCredentials.find(token) : undefined;
      if (token) {
        seen.push({ token, clientId: found?.clientId });
        issued.push(token);
      }
      res.writeHead(found ? 200 : 401, { 'content-type': 'application/json' }).end(JSON.stringify({ clientId: found?.clientId }));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

    sidecar = await startSidecar({
      routes: [
        { name: 'basic', prefix: '/basic', upstream: upstreamUrl, auth: { issuer, clientId: clients.basic.id, clientSecret: clients.basic.secret } },
        { name: 'post', prefix: '/post', upstream: upstreamUrl, auth: { issuer, method: 'client_secret_post', clientId: clients.post.id, clientSecret: clients.post.secret } },
      ],
    });
  });

  after(async () => {
    await sidecar?.close();
    await Promise.all([idp && closeServer(idp), upstream && closeServer(upstream)]);
    audit.assertNothingLeaked();
  });

  for (const [route, client] of [['basic', clients.basic], ['post', clients.post]] as const) {
    test(`only issuer set, ${client.id}: token from the discovered endpoint, request proxied with it`, async () => {
      const answer = await call(`${sidecar.proxyUrl}/${route}/things`);
      assert.equal(answer.status, 200, answer.text);
      assert.deepEqual(answer.json(), { clientId: client.id });
      assert.equal(seen.at(-1)?.clientId, client.id);
      const discovered = sidecar.logs.find((line) => line.includes('token endpoint discovered') && line.includes(`"route":"${route}"`));
      assert.ok(discovered?.includes(`"tokenEndpoint":"${issuer}/token"`), discovered);
      assert.ok(discovered?.includes(`"method":"client_secret_${route}"`), discovered);
      assert.ok(!sidecar.logs.some((line) => line.includes('"level":"warn"') && line.includes('token_endpoint_auth_methods_supported')), 'the provider lists both methods');
    });
  }

  test('/readyz: both routes ready', async () => {
    const ready = await call(`${sidecar.adminUrl}/readyz`);
    assert.equal(ready.status, 200, ready.text);
  });
});
