// Reload with auth read from files: credentials in clientIdFile / clientSecretFile, a client
// certificate and CA for the token endpoint, a private_key_jwt key and certificate, and a token
// endpoint discovered from an issuer. Files are compared by path (their content is read again at
// every use anyway), so a reload that changes only the rest of the route keeps the token source
// and its token; another key file is another source.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { audit } from '../helpers/audit.js';
import { makeSigningKey, makeTestPki, opensslMissing, selfSignedCertificate } from '../helpers/certs.js';
import { tempFiles } from '../helpers/config.js';
import { document, serveIssuer, startScriptedTokenServer } from '../helpers/servers.js';
import { apiRoute, startRig } from './rig.js';

after(() => audit.assertNothingLeaked());

describe('reload: auth from files', { skip: opensslMissing }, () => {
  test('unchanged file-based auth, private_key_jwt and issuer: the same token source and token; another key file: a new source', async () => {
    const files = tempFiles('bsc-reload-files-');
    const key = makeSigningKey('P-256');
    const otherKey = makeSigningKey('P-256');
    for (const pem of [key.pem.pkcs8, otherKey.pem.pkcs8]) audit.addPrivateKey(pem);
    const keyFile = files.file('client.key', key.pem.pkcs8);
    const otherKeyFile = files.file('other.key', otherKey.pem.pkcs8);
    const certificateFile = files.file('client.pem', selfSignedCertificate(key.pem.pkcs8));
    const idFile = files.file('client-id', 'reload-client\n');
    const secretFile = files.file('client-secret', 'reload-secret-1\n');
    const pki = makeTestPki();
    const client = pki.client('reload-client');

    const idp = await startScriptedTokenServer();
    const origin = new URL(idp.url).origin;
    serveIssuer(idp, { '/realms/x/.well-known/openid-configuration': document(`${origin}/realms/x`, `${origin}/realms/x/token`, { token_endpoint_auth_methods_supported: ['private_key_jwt'] }) });
    const grants = () => idp.requests.filter((request) => request.method === 'POST').length;

    const routes = (tokenUrl: string, upstream: string, jwtKey = { privateKeyFile: keyFile, certificateFile } as Record<string, string>) => [
      apiRoute('files', tokenUrl, upstream, { prefix: '/files' }, { clientId: undefined, clientSecret: undefined, clientIdFile: idFile, clientSecretFile: secretFile, tls: { caFile: pki.caFile, certFile: client.certFile, keyFile: client.keyFile } }),
      apiRoute('jwt', tokenUrl, upstream, { prefix: '/jwt' }, { tokenUrl: undefined, issuer: `${origin}/realms/x`, method: 'private_key_jwt', clientSecret: undefined, keyId: 'k1', ...jwtKey }),
    ];
    const r = await startRig(({ tokenUrl, a }) => ({ routes: routes(tokenUrl, a) }));
    try {
      assert.equal((await r.get('/files/x')).status, 200);
      assert.equal((await r.get('/jwt/x')).status, 200);
      assert.equal(r.tokens.requests.length, 1);
      assert.equal(grants(), 1);
      const before = new Map(r.sidecar.sidecar.tokenSources);

      // Another upstream for both routes, the same auth.
      const moved = await r.sidecar.reload({ routes: routes(r.tokens.url, r.b.url) });
      assert.equal(moved.outcome, 'success');
      assert.deepEqual(r.lines('config reloaded')[0]?.newTokenSources, []);
      for (const name of ['files', 'jwt']) assert.equal(r.sidecar.sidecar.tokenSources.get(name), before.get(name), `${name}: the same token source`);
      assert.equal((await r.get('/files/y')).status, 200);
      assert.equal((await r.get('/jwt/y')).status, 200);
      assert.deepEqual(r.tokensSeen(r.b), [r.tokens.issued[0], idp.issued[0]], 'the tokens of before the reload, on the new upstream');
      assert.equal(r.tokens.requests.length, 1, 'no new grant');
      assert.equal(grants(), 1, 'no new grant');

      // Another private key file: a new source for that route only.
      await r.sidecar.reload({ routes: routes(r.tokens.url, r.b.url, { privateKeyFile: otherKeyFile }) });
      assert.deepEqual(r.lines('config reloaded')[1]?.newTokenSources, ['jwt']);
      assert.equal(before.get('jwt')?.status().state, 'closed');
      assert.equal(r.sidecar.sidecar.tokenSources.get('files'), before.get('files'));
      assert.equal((await r.get('/jwt/z')).status, 200);
      assert.equal(grants(), 2);
      assert.equal(r.tokensSeen(r.b).at(-1), idp.issued[1]);
    } finally {
      await r.close();
      await idp.close();
    }
  });
});
