// The entra-workload-identity preset: a route from the variables AKS's workload identity webhook
// injects plus a scope, each settable in the config instead, and what is missing named by the
// variable that should have set it. The token request goes, end to end, to a token endpoint at
// {authority}{tenant}/oauth2/v2.0/token with the projected token as its client assertion.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { startEchoUpstream } from '../../src/demo/echo-upstream.js';
import { loadConfig } from '../../src/config/index.js';
import { resolveConfig, resolveInProcessOptions } from '../../src/config/load.js';
import { createTokenSource } from '../../src/index.js';
import { audit, call } from '../helpers/audit.js';
import { problems, secretVolume, tempFiles } from '../helpers/config.js';
import { platformToken } from '../helpers/jwt-files.js';
import { issue, signingKey, startScriptedTokenServer } from '../helpers/servers.js';
import { startSidecar } from '../helpers/sidecar.js';

const files = tempFiles('bsc-workload-identity-');
const tokenFile = files.file('azure-identity-token', platformToken(Date.now(), 3600));
const tenant = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const webhook = { AZURE_CLIENT_ID: '11111111-2222-3333-4444-555555555555', AZURE_TENANT_ID: tenant, AZURE_FEDERATED_TOKEN_FILE: tokenFile, AZURE_AUTHORITY_HOST: 'https://login.microsoftonline.com/' };
const route = (auth: Record<string, unknown>) => ({ routes: [{ name: 'graph', upstream: 'https://graph.microsoft.com', auth: { preset: 'entra-workload-identity', ...auth } }] });

describe('entra-workload-identity preset', () => {
  test("the webhook's variables and a scope make the route: token endpoint, client id, assertion file, method", () => {
    const auth = resolveConfig(route({ scope: 'https://graph.microsoft.com/.default' }), { env: webhook }).routes[0]?.auth;
    assert.equal(auth?.tokenUrl, `https://login.microsoftonline.com/${tenant}/oauth2/v2.0/token`);
    assert.equal(auth?.method, 'client_assertion');
    assert.equal(auth?.clientId?.read(), webhook.AZURE_CLIENT_ID);
    assert.equal(auth?.clientAssertion?.file, tokenFile);
    assert.equal(auth?.clientSecret, undefined);
    assert.equal(auth?.scope, 'https://graph.microsoft.com/.default');
  });

  test('AZURE_AUTHORITY_HOST defaults to the public cloud; a sovereign cloud is followed, with or without its trailing slash', () => {
    const { AZURE_AUTHORITY_HOST: _, ...withoutAuthority } = webhook;
    assert.equal(resolveConfig(route({ scope: 's' }), { env: withoutAuthority }).routes[0]?.auth.tokenUrl, `https://login.microsoftonline.com/${tenant}/oauth2/v2.0/token`);
    assert.equal(resolveConfig(route({ scope: 's' }), { env: { ...webhook, AZURE_AUTHORITY_HOST: 'https://login.microsoftonline.us' } }).routes[0]?.auth.tokenUrl, `https://login.microsoftonline.us/${tenant}/oauth2/v2.0/token`);
  });

  test('each can be set in the config instead, and the config wins', () => {
    const other = files.file('other-token', platformToken(Date.now(), 3600));
    const auth = resolveConfig(route({ scope: 's', clientId: 'from-config', tenantId: 'contoso.onmicrosoft.com', clientAssertionFile: other, authorityHost: 'https://login.partner.microsoftonline.cn/' }), { env: webhook }).routes[0]?.auth;
    assert.equal(auth?.tokenUrl, 'https://login.partner.microsoftonline.cn/contoso.onmicrosoft.com/oauth2/v2.0/token');
    assert.equal(auth?.clientId?.read(), 'from-config');
    assert.equal(auth?.clientAssertion?.file, other);
    // No webhook at all: the config alone.
    assert.equal(resolveConfig(route({ scope: 's', clientId: 'c', tenantId: tenant, clientAssertionFile: other }), { env: {} }).routes[0]?.auth.tokenUrl, `https://login.microsoftonline.com/${tenant}/oauth2/v2.0/token`);
  });

  test('without the webhook, each missing value is named with the variable that sets it; scope and upstream are the user\'s', () => {
    assert.deepEqual(problems(() => resolveConfig({ routes: [{ name: 'g', auth: { preset: 'entra-workload-identity' } }] }, { env: {} })), [
      'routes[0].auth.tenantId: is required with preset entra-workload-identity (AZURE_TENANT_ID, which the workload identity webhook sets; or set tokenUrl)',
      "routes[0].auth.scope: is required with preset entra-workload-identity: the resource's scope, such as https://graph.microsoft.com/.default",
      'routes[0].auth.clientId: is required (or clientIdFile) (AZURE_CLIENT_ID, which the workload identity webhook sets)',
      'routes[0].auth.clientAssertionFile: is required with method: client_assertion (the file holding the JWT to present, AZURE_FEDERATED_TOKEN_FILE, which the workload identity webhook sets)',
      'routes[0].upstream: is required (the entra-workload-identity preset has none)',
    ]);
    assert.deepEqual(problems(() => resolveConfig(route({ scope: 's', method: 'client_secret_post', clientSecret: 'x' }), { env: webhook })), [
      'routes[0].auth.method: must be client_assertion with preset entra-workload-identity (or leave it out)',
    ]);
    // A bad value from a variable is named by the variable.
    assert.deepEqual(problems(() => resolveConfig(route({ scope: 's' }), { env: { ...webhook, AZURE_TENANT_ID: 'a/b', AZURE_FEDERATED_TOKEN_FILE: '/nonexistent/token' } })), [
      'AZURE_TENANT_ID (routes[0].auth.tenantId: must be a tenant id (a GUID) or a domain such as contoso.onmicrosoft.com)',
    ]);
    assert.deepEqual(problems(() => resolveConfig(route({ scope: 's' }), { env: { ...webhook, AZURE_FEDERATED_TOKEN_FILE: '/nonexistent/token' } })), [
      'AZURE_FEDERATED_TOKEN_FILE (routes[0].auth.clientAssertionFile: cannot read /nonexistent/token (ENOENT))',
    ]);
    // tenantId and authorityHost belong to the preset.
    assert.deepEqual(problems(() => resolveConfig({ routes: [{ name: 'g', upstream: 'https://x.example', auth: { tokenUrl: 'https://idp.example/t', clientId: 'c', clientSecret: 's', tenantId: tenant } }] })), [
      'routes[0].auth.tenantId: applies only with preset entra-workload-identity',
    ]);
  });

  test('the environment-only config (BEARER_SIDECAR_*) takes the preset too', () => {
    const config = loadConfig(undefined, { ...webhook, BEARER_SIDECAR_PRESET: 'entra-workload-identity', BEARER_SIDECAR_SCOPE: 'https://management.azure.com/.default', BEARER_SIDECAR_UPSTREAM: 'https://management.azure.com' });
    assert.equal(config.routes[0]?.name, 'entra-workload-identity');
    assert.equal(config.routes[0]?.auth.method, 'client_assertion');
    assert.equal(config.routes[0]?.upstreamOrigin, 'https://management.azure.com');
  });

  test('in process (createTokenSource) the preset reads the same variables', () => {
    const resolved = resolveInProcessOptions({ auth: { preset: 'entra-workload-identity', scope: 's' } }, webhook);
    assert.equal(resolved.auth.tokenUrl, `https://login.microsoftonline.com/${tenant}/oauth2/v2.0/token`);
  });

  test('end to end: the token request goes to {authority}{tenant}/oauth2/v2.0/token with the projected token, and the route serves', async () => {
    const entra = await startScriptedTokenServer();
    const upstream = await startEchoUpstream({ signingKey });
    const volume = secretVolume({ 'azure-identity-token': platformToken(Date.now(), 3600) });
    const authority = new URL(entra.url).origin;
    const env = { ...webhook, AZURE_AUTHORITY_HOST: `${authority}/`, AZURE_FEDERATED_TOKEN_FILE: join(volume.dir, 'azure-identity-token') };
    const sidecar = await startSidecar({ routes: [{ name: 'graph', upstream: upstream.url, auth: { preset: 'entra-workload-identity', scope: 'https://graph.microsoft.com/.default' } }] }, { env });
    try {
      assert.equal((await call(`${sidecar.proxyUrl}/v1.0/users`)).status, 200);
      const request = entra.requests.at(-1);
      assert.equal(request?.path, `/${tenant}/oauth2/v2.0/token`);
      assert.deepEqual(request?.form, {
        grant_type: 'client_credentials',
        scope: 'https://graph.microsoft.com/.default',
        client_id: webhook.AZURE_CLIENT_ID,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: readFileSync(join(volume.dir, 'azure-identity-token'), 'utf8'),
      });
      assert.equal(request?.headers.authorization, undefined);
    } finally {
      await sidecar.close();
      await Promise.all([entra.close(), upstream.close()]);
    }
    audit.assertNothingLeaked(sidecar.logs);
  });

  test('createTokenSource with the preset and a scope, from the variables alone', async () => {
    const entra = await startScriptedTokenServer();
    const saved = { ...process.env };
    Object.assign(process.env, { ...webhook, AZURE_AUTHORITY_HOST: `${new URL(entra.url).origin}/` });
    try {
      const source = createTokenSource({ preset: 'entra-workload-identity', scope: 'api://orders/.default' });
      try {
        assert.equal(await source.getToken(), entra.issued.at(-1));
        assert.equal(entra.requests.at(-1)?.form.client_assertion_type, 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
      } finally {
        await source.close();
      }
    } finally {
      for (const name of Object.keys(webhook)) if (saved[name] === undefined) delete process.env[name];
      Object.assign(process.env, saved);
      await entra.close();
    }
  });
});
