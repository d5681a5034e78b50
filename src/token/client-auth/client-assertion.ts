// client_assertion (RFC 7521 §4.2, RFC 7523 §2.2): a JWT someone else issued, read from a file and
// presented as it is: the pod's projected service-account token, which the identity provider
// trusts as a federated credential (Microsoft Entra workload identity, Keycloak, Okta). No secret
// and no key in the sidecar's hands; the file is read at every token request (token-file.ts).

import type { SecretSource } from '../../config/secret.js';
import { readJwtFile } from '../token-file.js';
import type { ClientAuthentication, ClientAuthRequest } from './types.js';
import { assertionType } from './private-key-jwt.js';

export function clientAssertion({ auth, clientId, now }: ClientAuthRequest): ClientAuthentication {
  // The config guarantees the file for this method.
  const { value } = readJwtFile(auth.clientAssertion as SecretSource, 'client assertion', now);
  return {
    form: { client_id: clientId, client_assertion_type: assertionType, client_assertion: value },
    headers: {},
    secrets: [value],
    rejectedHint: `check the client id, and that the identity provider trusts the issuer, subject and audience of the token in ${auth.clientAssertion?.file} (a federated credential)`,
  };
}
