// panva's oidc-provider, a certified OpenID provider, as a real token endpoint for tests: HTTPS on
// 127.0.0.1 with the test CA's server certificate, asking for (not requiring) a client
// certificate, so that one provider serves private_key_jwt clients and tls_client_auth clients
// over real mutual TLS. Every client assertion it receives and every token it issues are kept
// and registered with the secret audit. Its discovery document publishes an mTLS alias of the token
// endpoint (RFC 8705 §5), `/mtls/token`, which refuses connections without a client certificate,
// as a provider's dedicated mTLS endpoint would.

import { X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { closeServer } from '../../src/demo/token-server.js';
import { resolveConfig } from '../../src/config/load.js';
import type { AuthConfig } from '../../src/config/types.js';
import { direct } from '../../src/config/outbound-proxy.js';
import { tokenDispatcher } from '../../src/outbound/dispatcher.js';
import { exchangeClientCredentials, type Token } from '../../src/token/exchange.js';
import { signingAlgorithms } from '../../src/config/signing-algorithms.js';
import { audit } from './audit.js';
import type { TestPki } from './certs.js';

export interface IdpClient {
  readonly client_id: string;
  /** private_key_jwt: the client's public keys. */
  readonly jwks?: { keys: Record<string, unknown>[] };
  /** tls_client_auth: the subject its certificate must have, e.g. "CN=reporting". */
  readonly tls_client_auth_subject_dn?: string;
}

export interface TestIdp {
  readonly issuer: string;
  readonly tokenUrl: string;
  /** mtls_endpoint_aliases.token_endpoint in the discovery document. */
  readonly mtlsTokenUrl: string;
  /** Every HTTP request as received (before the alias is mapped to the endpoint): method, path and its client certificate's subject ('' without one). */
  readonly received: string[];
  /** client_assertion of every token request, in order. */
  readonly assertions: string[];
  /** access_token of every successful token request. */
  readonly issued: string[];
  /** The OAuth error of every refused token request. */
  readonly refusals: { error: string; description: string | undefined }[];
  /** Each token request: its form's client_id, whether it carried a secret (form or Basic), its client certificate's subject ('' without one). */
  readonly requests: { clientId: string | undefined; withSecret: boolean; certificateSubject: string }[];
  close(): Promise<void>;
}

export async function startOidcProvider(pki: TestPki, clients: readonly IdpClient[]): Promise<TestIdp> {
  // ESM and heavy: loaded only by the tests that use it.
  const { default: Provider } = await import('oidc-provider');
  const assertions: string[] = [];
  const issued: string[] = [];
  const refusals: TestIdp['refusals'] = [];
  const requests: TestIdp['requests'] = [];
  const received: string[] = [];
  audit.addTokens(issued);
  let handler: (req: Parameters<Parameters<typeof createServer>[1] & object>[0], res: Parameters<Parameters<typeof createServer>[1] & object>[1]) => void = (_req, res) => res.end();
  const server: Server = createServer({ key: pki.server.key, cert: pki.server.cert, ca: pki.ca, requestCert: true, rejectUnauthorized: false }, (req, res) => handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const peer = (socket: TLSSocket) => {
    const raw = socket.getPeerCertificate().raw;
    return raw ? new X509Certificate(raw) : undefined;
  };
  const provider = new Provider(issuer, {
    clients: clients.map((client) => ({
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: client.jwks ? 'private_key_jwt' : 'tls_client_auth',
      ...client,
    })),
    clientAuthMethods: ['private_key_jwt', 'tls_client_auth'],
    enabledJWA: { clientAuthSigningAlgValues: [...signingAlgorithms] },
    scopes: ['api'],
    discovery: { mtls_endpoint_aliases: { token_endpoint: `${issuer}/mtls/token` } },
    ttl: { ClientCredentials: 600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      mTLS: {
        enabled: true,
        tlsClientAuth: true,
        getCertificate: (ctx) => peer(ctx.socket as TLSSocket),
        certificateAuthorized: (ctx) => (ctx.socket as TLSSocket).authorized,
        certificateSubjectMatches: (ctx, property, expected) => property === 'tls_client_auth_subject_dn' && peer(ctx.socket as TLSSocket)?.subject === expected,
      },
    },
  });
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path !== '/token') return;
    const params = ctx.oidc?.params;
    requests.push({
      clientId: typeof params?.client_id === 'string' ? params.client_id : undefined,
      withSecret: params?.client_secret !== undefined || ctx.get('authorization') !== '',
      certificateSubject: peer(ctx.socket as TLSSocket)?.subject ?? '',
    });
    const assertion = params?.client_assertion;
    if (typeof assertion === 'string') {
      assertions.push(assertion);
      audit.addSecret(assertion);
    }
    const body = ctx.body as Record<string, unknown> | undefined;
    if (typeof body?.access_token === 'string') issued.push(body.access_token);
    else if (typeof body?.error === 'string') refusals.push({ error: body.error, description: typeof body.error_description === 'string' ? body.error_description : undefined });
  });
  const callback = provider.callback();
  handler = (req, res) => {
    received.push(`${req.method} ${req.url} ${peer(req.socket as TLSSocket)?.subject ?? ''}`.trimEnd());
    if (req.url?.startsWith('/mtls/')) {
      if (!peer(req.socket as TLSSocket)) return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_client","error_description":"no client certificate"}');
      req.url = req.url.slice('/mtls'.length);
    }
    void callback(req, res);
  };
  return { issuer, tokenUrl: `${issuer}/token`, mtlsTokenUrl: `${issuer}/mtls/token`, received, assertions, issued, refusals, requests, close: () => closeServer(server) };
}

/** The resolved auth config of a route with these auth fields at `idp`'s token endpoint, trusting the test CA. */
export function idpAuth(idp: TestIdp, pki: TestPki, fields: Record<string, unknown>): AuthConfig {
  const config = resolveConfig({
    routes: [{ name: 'r', upstream: 'http://127.0.0.1:1', auth: { tokenUrl: idp.tokenUrl, scope: 'api', ...fields, tls: { caFile: pki.caFile, ...(fields.tls as object) } } }],
  });
  return (config.routes[0] as { auth: AuthConfig }).auth;
}

/** One token request as the sidecar makes it: through the route's token dispatcher. */
export async function exchangeAsSidecar(config: AuthConfig): Promise<Token> {
  const dispatcher = tokenDispatcher(direct, config.tls, config.timeoutMs);
  try {
    return await exchangeClientCredentials(config, dispatcher ? { dispatcher } : {});
  } finally {
    await dispatcher?.close();
  }
}
