// Client authentication at the token endpoint: one small module per method, each turning the
// route's credentials into the form fields and headers of one token request (golang/oauth2's
// AuthStyle, oauth4webapi's ClientAuth). exchange.ts sends the request. The TLS half of
// tls_client_auth, the client certificate, belongs to the connection: the token dispatcher
// presents auth.tls's certificate (src/tls.ts) whatever the method.

import type { AuthMethod } from '../../config/presets.js';
import type { SecretSource } from '../../config/secret.js';
import type { AuthConfig } from '../../config/types.js';
import { credentialsUnreadable } from '../errors.js';
import { clientAssertion } from './client-assertion.js';
import { clientSecretBasic, clientSecretPost } from './client-secret.js';
import { noClientAuthentication } from './none.js';
import { privateKeyJwt } from './private-key-jwt.js';
import { tlsClientAuth } from './tls-client-auth.js';
import type { ClientAuthentication, ClientAuthRequest } from './types.js';

const methods: Readonly<Record<AuthMethod, (request: ClientAuthRequest) => ClientAuthentication | Promise<ClientAuthentication>>> = {
  client_secret_basic: clientSecretBasic,
  client_secret_post: clientSecretPost,
  private_key_jwt: privateKeyJwt,
  tls_client_auth: tlsClientAuth,
  client_assertion: clientAssertion,
  none: noClientAuthentication,
};

/** The authentication of one token request to `tokenUrl`, from the credentials as they are now (files are read again). Throws TokenError. */
export async function clientAuthentication(auth: AuthConfig, tokenUrl: string, now: number): Promise<ClientAuthentication> {
  let clientId = '';
  try {
    if (auth.clientId) clientId = auth.clientId.read();
  } catch (err) {
    throw credentialsUnreadable(err);
  }
  return methods[auth.method]({ auth, clientId, tokenUrl, now });
}

/** Every credential a token request reads: when one of these files changes, a failed request may now succeed. */
export function credentialSources(auth: AuthConfig): SecretSource[] {
  const certificate = auth.tls.clientCertificate;
  const exchange = auth.tokenExchange;
  return [auth.clientId, auth.clientSecret, auth.privateKey, auth.certificate, auth.clientAssertion, exchange?.subjectToken, exchange?.actorToken, certificate?.cert, certificate?.key, certificate?.keyPassphrase].filter(
    (source) => source !== undefined,
  );
}
