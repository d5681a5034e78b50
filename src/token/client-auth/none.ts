// No client authentication: for a token exchange at a security token service that takes none
// (Google's STS: the subject token is the only credential). No Authorization header, no secret;
// the client id goes in the form only when one is configured.

import type { ClientAuthentication, ClientAuthRequest } from './types.js';

export function noClientAuthentication({ clientId }: ClientAuthRequest): ClientAuthentication {
  return {
    form: clientId ? { client_id: clientId } : {},
    headers: {},
    secrets: [],
    rejectedHint: 'check the subject token and that the security token service trusts its issuer (method: none sends no client credentials)',
  };
}
