// tls_client_auth (RFC 8705 §2): the client proves itself with the certificate it presents in the
// TLS handshake (auth.tls.certFile, presented by the token dispatcher, src/tls.ts); the request
// itself carries only the client id.

import type { ClientAuthentication, ClientAuthRequest } from './types.js';

export function tlsClientAuth({ clientId }: ClientAuthRequest): ClientAuthentication {
  return {
    form: { client_id: clientId },
    headers: {},
    secrets: [],
    rejectedHint: 'check the client id, and that the identity provider has the certificate in auth.tls.certFile (its subject or SAN) registered for this client and trusts its CA',
  };
}
