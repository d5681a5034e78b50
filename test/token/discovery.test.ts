// Discovery (auth.issuer): where the documents are looked for, what a document must say, how the
// method is chosen, and — end to end through the sidecar, against a scripted issuer on 127.0.0.1 —
// caching, re-reading after a failed token request, retries, and the errors /readyz, the proxy
// and `check` show.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { resolveConfig } from '../../src/config/load.js';
import { loadConfig } from '../../src/config/index.js';
import { startEchoUpstream, type EchoUpstream } from '../../src/demo/echo-upstream.js';
import { chooseMethod, discoveryUrls, parseMetadata, tokenEndpointFor } from '../../src/token/discovery.js';
import { TokenError } from '../../src/token/errors.js';
import type { TokenSource } from '../../src/token/token-source.js';
import { audit, call } from '../helpers/audit.js';
import { ManualClock } from '../helpers/clock.js';
import { problems, tempFiles } from '../helpers/config.js';
import { runToEnd } from '../helpers/process.js';
import { document, issue, serveIssuer, signingKey, startScriptedTokenServer, type Answer, type ScriptedRequest, type ScriptedTokenServer } from '../helpers/servers.js';
import { eventually, route, startSidecar, type TestSidecar } from '../helpers/sidecar.js';

after(() => audit.assertNothingLeaked());

describe('where the documents are', () => {
  const cases: [string, string, string][] = [
    ['https://idp.example/realms/x', 'https://idp.example/realms/x/.well-known/openid-configuration', 'https://idp.example/.well-known/oauth-authorization-server/realms/x'],
    ['https://idp.example/realms/x/', 'https://idp.example/realms/x/.well-known/openid-configuration', 'https://idp.example/.well-known/oauth-authorization-server/realms/x'],
    ['https://tenant.auth0.com/', 'https://tenant.auth0.com/.well-known/openid-configuration', 'https://tenant.auth0.com/.well-known/oauth-authorization-server'],
    ['https://idp.example', 'https://idp.example/.well-known/openid-configuration', 'https://idp.example/.well-known/oauth-authorization-server'],
    ['http://127.0.0.1:9000/tenant/v2.0', 'http://127.0.0.1:9000/tenant/v2.0/.well-known/openid-configuration', 'http://127.0.0.1:9000/.well-known/oauth-authorization-server/tenant/v2.0'],
  ];
  for (const [issuer, oidc, rfc8414] of cases) {
    test(issuer, () => assert.deepEqual(discoveryUrls(issuer), { oidc, rfc8414 }));
  }
});

describe('what a document must say', () => {
  const issuer = 'https://idp.example/realms/x';
  const at = 'https://idp.example/realms/x/.well-known/openid-configuration';
  const parse = (body: unknown, allowInsecure = false) => parseMetadata(typeof body === 'string' ? body : JSON.stringify(body), at, issuer, allowInsecure);
  const refusal = (body: unknown, allowInsecure = false): TokenError => {
    try {
      parse(body, allowInsecure);
    } catch (err) {
      assert.ok(err instanceof TokenError, String(err));
      return err;
    }
    assert.fail('the document was accepted');
  };

  test('a good document: its token endpoint and methods; the methods default to client_secret_basic (RFC 8414 §2)', () => {
    const metadata = parse({ issuer, token_endpoint: 'https://idp.example/realms/x/token', token_endpoint_auth_methods_supported: ['private_key_jwt', 'client_secret_post'] });
    assert.deepEqual(metadata, { issuer, tokenEndpoint: 'https://idp.example/realms/x/token', authMethods: ['private_key_jwt', 'client_secret_post'], documentUrl: at });
    assert.deepEqual(parse({ issuer, token_endpoint: 'https://idp.example/t' }).authMethods, ['client_secret_basic']);
  });

  test('the issuer must be equal to the character: a trailing slash, case or another host fails, naming both values', () => {
    for (const other of [`${issuer}/`, issuer.toUpperCase(), 'https://evil.example/realms/x', undefined]) {
      const err = refusal({ issuer: other, token_endpoint: 'https://idp.example/t' });
      assert.equal(err.code, 'BSC_DISCOVERY_ISSUER_MISMATCH');
      assert.equal(err.retryable, false);
      assert.ok(err.message.includes(JSON.stringify(issuer)), err.message);
      if (other) assert.ok(err.message.includes(JSON.stringify(other)), err.message);
      assert.match(err.message, /RFC 8414 §3\.3/);
    }
  });

  test('not JSON, not an object, no token_endpoint, a token_endpoint that is no http(s) URL: BSC_DISCOVERY_MALFORMED', () => {
    for (const [body, why] of [
      ['<html>login</html>', /is not JSON/],
      [['a'], /is not a JSON object/],
      [{ issuer }, /has no token_endpoint/],
      [{ issuer, token_endpoint: '' }, /has no token_endpoint/],
      [{ issuer, token_endpoint: '/token' }, /not a URL/],
      [{ issuer, token_endpoint: 'ftp://idp.example/token' }, /not http\(s\)/],
    ] as const) {
      const err = refusal(body);
      assert.equal(err.code, 'BSC_DISCOVERY_MALFORMED');
      assert.match(err.message, why);
      assert.ok(err.message.includes(at), 'names the document');
    }
  });

  test('an http:// token_endpoint off loopback is refused unless allowInsecureTokenUrl; credentials in it never echoed', () => {
    const err = refusal({ issuer, token_endpoint: 'http://idp.example/token' });
    assert.equal(err.code, 'BSC_DISCOVERY_INSECURE_ENDPOINT');
    assert.match(err.message, /http:\/\/idp\.example\/token, which http:\/\/ would send the client secret in clear text/);
    assert.equal(parse({ issuer, token_endpoint: 'http://idp.example/token' }, true).tokenEndpoint, 'http://idp.example/token');
    assert.equal(parse({ issuer, token_endpoint: 'http://127.0.0.1:9/token' }).tokenEndpoint, 'http://127.0.0.1:9/token');
    const withPassword = refusal({ issuer, token_endpoint: 'https://user:hunter2-password@idp.example/token' });
    assert.equal(withPassword.code, 'BSC_DISCOVERY_INSECURE_ENDPOINT');
    assert.doesNotMatch(withPassword.message, /hunter2/);
  });
});

describe('the mTLS alias of the token endpoint (RFC 8705 §5)', () => {
  const issuer = 'https://idp.example/realms/x';
  const at = 'https://idp.example/realms/x/.well-known/openid-configuration';
  const parse = (aliases: unknown) => parseMetadata(JSON.stringify({ issuer, token_endpoint: 'https://idp.example/token', mtls_endpoint_aliases: aliases }), at, issuer, false);

  test('read from mtls_endpoint_aliases.token_endpoint, held to the rule of token_endpoint; other aliases and odd shapes ignored', () => {
    assert.equal(parse({ token_endpoint: 'https://mtls.idp.example/token', userinfo_endpoint: 'https://mtls.idp.example/me' }).mtlsTokenEndpoint, 'https://mtls.idp.example/token');
    for (const none of [undefined, {}, ['https://mtls.idp.example/token'], 'https://mtls.idp.example/token']) assert.equal(parse(none).mtlsTokenEndpoint, undefined);
    assert.throws(() => parse({ token_endpoint: 'http://mtls.idp.example/token' }), (err: TokenError) => err.code === 'BSC_DISCOVERY_INSECURE_ENDPOINT' && /names mtls_endpoint_aliases\.token_endpoint http:\/\/mtls\.idp\.example\/token/.test(err.message));
    assert.throws(() => parse({ token_endpoint: 42 }), (err: TokenError) => err.code === 'BSC_DISCOVERY_MALFORMED' && /has no mtls_endpoint_aliases\.token_endpoint/.test(err.message));
  });

  test('tls_client_auth goes to the alias when there is one; every other method to token_endpoint', () => {
    const metadata = parse({ token_endpoint: 'https://mtls.idp.example/token' });
    assert.equal(tokenEndpointFor('tls_client_auth', metadata), 'https://mtls.idp.example/token');
    for (const method of ['client_secret_basic', 'client_secret_post', 'private_key_jwt'] as const) assert.equal(tokenEndpointFor(method, metadata), 'https://idp.example/token');
    assert.equal(tokenEndpointFor('tls_client_auth', parse(undefined)), 'https://idp.example/token');
  });

  test('tls_client_auth refuses an http:// endpoint (loopback included): the certificate goes in the TLS handshake', () => {
    const metadata = parseMetadata(JSON.stringify({ issuer, token_endpoint: 'http://127.0.0.1:9/token' }), at, issuer, false);
    assert.equal(tokenEndpointFor('client_secret_basic', metadata), 'http://127.0.0.1:9/token');
    assert.throws(() => tokenEndpointFor('tls_client_auth', metadata), (err: TokenError) => err.code === 'BSC_DISCOVERY_INSECURE_ENDPOINT' && /names token_endpoint http:\/\/127\.0\.0\.1:9\/token, but tls_client_auth needs https:\/\//.test(err.message));
  });
});

describe('which client authentication method', () => {
  test('private_key_jwt and tls_client_auth are never switched for a secret method, whatever the document lists', () => {
    for (const method of ['private_key_jwt', 'tls_client_auth'] as const) {
      assert.deepEqual(chooseMethod({ method, methodSet: true }, ['private_key_jwt', 'tls_client_auth']), { method });
      const unlisted = chooseMethod({ method, methodSet: true }, ['client_secret_basic', 'client_secret_post']);
      assert.equal(unlisted.method, method);
      assert.match(unlisted.warning ?? '', new RegExp(`auth\\.method ${method} is not in the issuer's token_endpoint_auth_methods_supported`));
    }
  });

  const unset = { method: 'client_secret_basic', methodSet: false } as const;
  test('none configured: client_secret_basic if listed, else client_secret_post, else client_secret_basic with a warning', () => {
    assert.deepEqual(chooseMethod(unset, ['client_secret_post', 'client_secret_basic']), { method: 'client_secret_basic' });
    assert.deepEqual(chooseMethod(unset, ['private_key_jwt', 'client_secret_post']), { method: 'client_secret_post' });
    const neither = chooseMethod(unset, ['private_key_jwt']);
    assert.equal(neither.method, 'client_secret_basic');
    assert.match(neither.warning ?? '', /lists neither client_secret_basic nor client_secret_post \(private_key_jwt\)/);
  });
  test('configured: used as it is; a warning when the server does not list it', () => {
    assert.deepEqual(chooseMethod({ method: 'client_secret_post', methodSet: true }, ['client_secret_post']), { method: 'client_secret_post' });
    const unlisted = chooseMethod({ method: 'client_secret_basic', methodSet: true }, ['client_secret_post']);
    assert.equal(unlisted.method, 'client_secret_basic');
    assert.match(unlisted.warning ?? '', /auth\.method client_secret_basic is not in the issuer's token_endpoint_auth_methods_supported \(client_secret_post\); using it anyway/);
  });
});

describe('issuer in the config', () => {
  const minimal = (auth: Record<string, unknown>) => ({ routes: [{ name: 'r', upstream: 'https://api.example.com', auth: { clientId: 'id', clientSecret: 'secret', ...auth } }] });
  const auth = (input: Record<string, unknown>) => resolveConfig(minimal(input), { env: {} }).routes[0]!.auth;

  test('issuer instead of tokenUrl; tokenUrl given as well wins; an issuer wins over a preset\'s tokenUrl', () => {
    assert.deepEqual([auth({ issuer: 'https://idp.example/realms/x' }).tokenUrl, auth({ issuer: 'https://idp.example/realms/x' }).issuer], [undefined, 'https://idp.example/realms/x']);
    const both = auth({ issuer: 'https://idp.example/realms/x', tokenUrl: 'https://idp.example/token' });
    assert.deepEqual([both.tokenUrl, both.issuer], ['https://idp.example/token', undefined]);
    const preset = auth({ preset: 'cyxtera', issuer: 'https://idp.example/realms/x' });
    assert.deepEqual([preset.tokenUrl, preset.issuer, preset.method, preset.methodSet], [undefined, 'https://idp.example/realms/x', 'client_secret_post', true]);
    assert.equal(auth({ issuer: 'https://idp.example/' }).methodSet, false);
  });

  test('http:// only on loopback (or with allowInsecureTokenUrl); no query, fragment or credentials', () => {
    const lines = problems(() => resolveConfig(minimal({ issuer: 'http://idp.example/realms/x' }), { env: {} }));
    assert.deepEqual(lines, ['routes[0].auth.issuer: http:// would let anyone on the network path change the token endpoint the client secret is sent to; use https:// or set allowInsecureTokenUrl: true']);
    for (const issuer of ['http://127.0.0.1:9000/realms/x', 'http://localhost/', 'http://[::1]:1']) assert.equal(auth({ issuer }).issuer, issuer);
    assert.equal(auth({ issuer: 'http://idp.example/x', allowInsecureTokenUrl: true }).issuer, 'http://idp.example/x');
    for (const [issuer, message] of [
      ['https://idp.example/x?tenant=1', /^routes\[0\]\.auth\.issuer: must not carry a query string or fragment/],
      ['https://idp.example/x#f', /^routes\[0\]\.auth\.issuer: must not carry a query string or fragment/],
      ['https://u:p-secret@idp.example/x', /^routes\[0\]\.auth\.issuer: must not carry credentials/],
      ['idp.example', /^routes\[0\]\.auth\.issuer: must be an absolute http:\/\/ or https:\/\/ URL$/],
    ] as const) {
      const found = problems(() => resolveConfig(minimal({ issuer }), { env: {} }));
      assert.ok(found.some((line) => message.test(line)), found.join('\n'));
    }
  });

  test('BEARER_SIDECAR_ISSUER', () => {
    const config = loadConfig(undefined, { BEARER_SIDECAR_ISSUER: 'https://idp.example/realms/x', BEARER_SIDECAR_UPSTREAM: 'https://api.example.com', BEARER_SIDECAR_CLIENT_ID: 'id', BEARER_SIDECAR_CLIENT_SECRET: 's' });
    assert.equal(config.routes[0]?.auth.issuer, 'https://idp.example/realms/x');
  });
});

const documentGets = (server: ScriptedTokenServer) => server.requests.filter((r) => r.method === 'GET').map((r) => r.path);
const tokenPosts = (server: ScriptedTokenServer) => server.requests.filter((r) => r.method === 'POST');

interface Stack {
  readonly idp: ScriptedTokenServer;
  readonly origin: string;
  readonly upstream: EchoUpstream;
  readonly clock: ManualClock;
  readonly sidecar: TestSidecar;
  /** The route's token source. */
  readonly tokens: TokenSource;
}

interface IssuerSetup {
  /** Discovery documents by path, given the server's origin. */
  readonly documents: (origin: string) => Record<string, Answer | (() => Answer)>;
  /** How the token endpoint answers (a valid token by default). */
  readonly token?: (request: ScriptedRequest) => Answer;
  /** The route's auth settings besides its credentials (default: the issuer `{origin}/realms/x`). */
  readonly auth?: (origin: string) => Record<string, unknown>;
}

/** Runs `check` against a scripted issuer, an echo upstream and a sidecar (manual clock) in front of them; closes all after. */
async function withIssuer(setup: IssuerSetup, check: (stack: Stack) => Promise<void>): Promise<void> {
  const idp = await startScriptedTokenServer();
  const origin = new URL(idp.url).origin;
  serveIssuer(idp, setup.documents(origin), setup.token);
  const upstream = await startEchoUpstream({ signingKey });
  const clock = new ManualClock();
  const auth = setup.auth?.(origin) ?? { issuer: `${origin}/realms/x` };
  const sidecar = await startSidecar({ routes: [route(undefined, upstream.url, {}, auth)] }, { clock });
  try {
    await check({ idp, origin, upstream, clock, sidecar, tokens: sidecar.sidecar.tokenSources.get('api') as TokenSource });
  } finally {
    await sidecar.close();
    await Promise.all([idp.close(), upstream.close()]);
  }
}

const oidcAt = '/realms/x/.well-known/openid-configuration';

describe('discovery through the sidecar, against a scripted issuer', () => {
  test('OpenID Connect document at {issuer}/.well-known/openid-configuration: its token endpoint gets the token request, and the request is proxied', () =>
    withIssuer({ documents: (origin) => ({ [oidcAt]: document(`${origin}/realms/x`, `${origin}/realms/x/protocol/openid-connect/token`) }) }, async (stack) => {
      const answer = await call(`${stack.sidecar.proxyUrl}/things`);
      assert.equal(answer.status, 200, answer.text);
      assert.match(stack.upstream.received.at(-1)?.headers.authorization ?? '', /^Bearer ey/);
      assert.deepEqual(documentGets(stack.idp), [oidcAt]);
      const [post] = tokenPosts(stack.idp);
      assert.equal(post?.path, '/realms/x/protocol/openid-connect/token');
      assert.match(post?.headers.authorization ?? '', /^Basic /, 'client_secret_basic, listed first choice');
      const line = stack.sidecar.logs.find((l) => l.includes('token endpoint discovered'));
      assert.ok(line?.includes(`"tokenEndpoint":"${stack.origin}/realms/x/protocol/openid-connect/token"`), line);
    }));

  test('RFC 8414 fallback: the OpenID Connect URL answers 404, the well-known segment then goes between host and path', () =>
    withIssuer({ documents: (origin) => ({ '/.well-known/oauth-authorization-server/realms/x': document(`${origin}/realms/x`, `${origin}/oauth2/token`) }) }, async (stack) => {
      assert.equal((await call(`${stack.sidecar.proxyUrl}/a`)).status, 200);
      assert.deepEqual(documentGets(stack.idp), [oidcAt, '/.well-known/oauth-authorization-server/realms/x']);
    }));

  test('an issuer with a trailing slash (Auth0 style): the document is at /.well-known/..., and its issuer must keep the slash', () =>
    withIssuer(
      { documents: (origin) => ({ '/.well-known/openid-configuration': document(`${origin}/`, `${origin}/oauth/token`) }), auth: (origin) => ({ issuer: `${origin}/` }) },
      async (stack) => {
        assert.equal((await call(`${stack.sidecar.proxyUrl}/a`)).status, 200);
        assert.equal(tokenPosts(stack.idp)[0]?.path, '/oauth/token');
      },
    ));

  const refusals: [string, (origin: string) => Record<string, Answer>, string, RegExp, number][] = [
    ['wrong issuer', (origin) => ({ [oidcAt]: document(`${origin}/realms/y`, `${origin}/oauth2/token`) }), 'BSC_DISCOVERY_ISSUER_MISMATCH', /names issuer "http:\/\/127\.0\.0\.1:\d+\/realms\/y", not the configured "http:\/\/127\.0\.0\.1:\d+\/realms\/x"/, 1],
    ['missing token_endpoint', (origin) => ({ [oidcAt]: { status: 200, body: { issuer: `${origin}/realms/x` } } }), 'BSC_DISCOVERY_MALFORMED', /openid-configuration has no token_endpoint/, 1],
    ['not JSON', () => ({ [oidcAt]: { status: 200, body: '<html>sign in</html>' } }), 'BSC_DISCOVERY_MALFORMED', /openid-configuration is not JSON/, 1],
    ['http token_endpoint off loopback', (origin) => ({ [oidcAt]: document(`${origin}/realms/x`, 'http://idp.example/token') }), 'BSC_DISCOVERY_INSECURE_ENDPOINT', /names token_endpoint http:\/\/idp\.example\/token, which http:\/\/ would send the client secret in clear text/, 1],
    ['no document at either place', () => ({}), 'BSC_DISCOVERY_HTTP_ERROR', /no discovery document for issuer .*openid-configuration answered 404 and .*oauth-authorization-server\/realms\/x answered 404/, 2],
  ];
  for (const [name, documents, code, message, gets] of refusals) {
    test(`${name}: ${code}, not retried within the fetch; /readyz, the proxy's 503 and the log say why; no token request`, () =>
      withIssuer({ documents }, async (stack) => {
        await eventually(() => stack.tokens.status().lastError !== undefined);
        assert.equal(stack.tokens.status().lastErrorCode, code);
        assert.equal(documentGets(stack.idp).length, gets, 'a refused document is not fetched again by the same fetch cycle');
        assert.equal(tokenPosts(stack.idp).length, 0);
        const ready = await call(`${stack.sidecar.adminUrl}/readyz`);
        assert.equal(ready.status, 503);
        const [status] = ready.json<{ routes: { lastError: string; lastErrorCode: string }[] }>().routes;
        assert.match(status?.lastError ?? '', message);
        assert.equal(status?.lastErrorCode, code);
        const proxied = await call(`${stack.sidecar.proxyUrl}/a`);
        assert.equal(proxied.status, 503);
        assert.match(proxied.json<{ message: string }>().message, message);
        assert.ok(stack.sidecar.logs.some((l) => l.includes(`"code":"${code}"`) && l.includes('could not get a token')));
      }));
  }

  test('a failing document is retried with the token backoff, within the same fetch', () => {
    let documentRequests = 0;
    return withIssuer(
      { documents: (origin) => ({ [oidcAt]: () => (++documentRequests === 1 ? { status: 503, body: 'busy' } : document(`${origin}/realms/x`, `${origin}/oauth2/token`)) }) },
      async (stack) => {
        await eventually(() => stack.tokens.peek() !== undefined);
        assert.equal(documentGets(stack.idp).length, 2);
        assert.equal(tokenPosts(stack.idp).length, 1);
        assert.ok(stack.sidecar.logs.some((l) => l.includes('"code":"BSC_DISCOVERY_HTTP_ERROR"') && l.includes('token request failed')));
      },
    );
  });

  test('cached: one document for many token requests', () =>
    withIssuer({ documents: (origin) => ({ [oidcAt]: document(`${origin}/realms/x`, `${origin}/oauth2/token`) }) }, async (stack) => {
      await eventually(() => stack.tokens.peek() !== undefined);
      for (let i = 0; i < 4; i++) await stack.tokens.refresh();
      assert.equal(tokenPosts(stack.idp).length, 5);
      assert.equal(documentGets(stack.idp).length, 1);
    }));

  test('read again after the token endpoint failed: once, by the next fetch cycle, not by every retry', () => {
    let tokenPath = '/old/token';
    return withIssuer(
      {
        documents: (origin) => ({ [oidcAt]: () => document(`${origin}/realms/x`, `${origin}${tokenPath}`) }),
        token: (request) => (request.path === '/old/token' ? { status: 503, body: 'gone' } : { status: 200, body: issue(3600) }),
      },
      async (stack) => {
        // The first fetch cycle: one document, then three attempts (retries: 2) at the failing endpoint.
        await eventually(() => stack.tokens.status().lastError !== undefined);
        assert.deepEqual(tokenPosts(stack.idp).map((r) => r.path), ['/old/token', '/old/token', '/old/token']);
        assert.equal(documentGets(stack.idp).length, 1);
        // The server moves its endpoint; the next cycle reads the document again and finds it.
        tokenPath = '/new/token';
        stack.clock.advance((stack.clock.nextTimerAt() as number) - stack.clock.now());
        await eventually(() => stack.tokens.peek() !== undefined);
        assert.equal(documentGets(stack.idp).length, 2);
        assert.equal(tokenPosts(stack.idp).at(-1)?.path, '/new/token');
        assert.equal((await call(`${stack.sidecar.proxyUrl}/a`)).status, 200);
      },
    );
  });

  test('tokenUrl given as well wins: no document is fetched', () =>
    withIssuer(
      {
        documents: (origin) => ({ [oidcAt]: document(`${origin}/realms/x`, `${origin}/elsewhere`) }),
        auth: (origin) => ({ issuer: `${origin}/realms/x`, tokenUrl: `${origin}/oauth2/token` }),
      },
      async (stack) => {
        assert.equal((await call(`${stack.sidecar.proxyUrl}/a`)).status, 200);
        assert.deepEqual(documentGets(stack.idp), []);
        assert.equal(tokenPosts(stack.idp)[0]?.path, '/oauth2/token');
      },
    ));

  test('no method configured and only client_secret_post listed: the secret goes in the form', () =>
    withIssuer(
      { documents: (origin) => ({ [oidcAt]: document(`${origin}/realms/x`, `${origin}/oauth2/token`, { token_endpoint_auth_methods_supported: ['private_key_jwt', 'client_secret_post'] }) }) },
      async (stack) => {
        await eventually(() => stack.tokens.peek() !== undefined);
        const [post] = tokenPosts(stack.idp);
        assert.equal(post?.headers.authorization, undefined);
        assert.deepEqual([post?.form.client_id, post?.form.client_secret], ['test-client', 'test-secret']);
      },
    ));

  test('a configured method the document does not list: used anyway, with a warning', () =>
    withIssuer(
      {
        documents: (origin) => ({ [oidcAt]: document(`${origin}/realms/x`, `${origin}/oauth2/token`, { token_endpoint_auth_methods_supported: ['client_secret_post'] }) }),
        auth: (origin) => ({ issuer: `${origin}/realms/x`, method: 'client_secret_basic' }),
      },
      async (stack) => {
        await eventually(() => stack.tokens.peek() !== undefined);
        assert.match(tokenPosts(stack.idp)[0]?.headers.authorization ?? '', /^Basic /);
        assert.ok(stack.sidecar.logs.some((l) => l.includes('"level":"warn"') && l.includes("is not in the issuer's token_endpoint_auth_methods_supported")));
      },
    ));
});

describe('bearer-sidecar check with an issuer', () => {
  const { dir } = tempFiles('bsc-discovery-cli-');
  const configFile = (name: string, issuer: string) => {
    const path = join(dir, name);
    writeFileSync(path, `routes:\n  - name: api\n    upstream: https://api.example.com\n    auth: { issuer: "${issuer}", clientId: test-client, clientSecret: test-secret, retry: { retries: 0 } }\n`);
    return path;
  };

  test('prints the discovered endpoint; a wrong issuer prints FAILED with the reason and its code', async () => {
    const idp = await startScriptedTokenServer();
    const origin = new URL(idp.url).origin;
    serveIssuer(idp, {
      '/realms/x/.well-known/openid-configuration': document(`${origin}/realms/x`, `${origin}/realms/x/token`),
      '/realms/y/.well-known/openid-configuration': document(`${origin}/realms/other`, `${origin}/realms/y/token`),
    });
    try {
      const good = await runToEnd(['check', '--config', configFile('good.yaml', `${origin}/realms/x`)]);
      assert.equal(good.code, 0, good.output);
      assert.ok(good.output.includes(`from ${origin}/realms/x/token (discovered from issuer ${origin}/realms/x)`), good.output);
      const bad = await runToEnd(['check', '--config', configFile('bad.yaml', `${origin}/realms/y`)]);
      assert.equal(bad.code, 1, bad.output);
      assert.match(bad.output, /^FAILED +api: discovery document .* names issuer ".*\/realms\/other", not the configured ".*\/realms\/y".* \(BSC_DISCOVERY_ISSUER_MISMATCH\)$/m);
      audit.addOutput([good.output, bad.output]);
    } finally {
      await idp.close();
    }
  });
});
