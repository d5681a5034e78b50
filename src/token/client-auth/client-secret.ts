// client_secret_basic and client_secret_post (RFC 6749 §2.3.1): the shared secret in an HTTP Basic
// header, or with the client id in the form body.

import { credentialsUnreadable } from '../errors.js';
import type { ClientAuthentication, ClientAuthRequest } from './types.js';

const rejectedHint = 'check the client id and secret (and that the key is for this environment)';

export function clientSecretBasic({ auth, clientId }: ClientAuthRequest): ClientAuthentication {
  const secret = readSecret(auth);
  // Form-urlencode id and secret before base64, so ':' and '%' survive.
  const credentials = Buffer.from(`${formEncode(clientId)}:${formEncode(secret)}`).toString('base64');
  return { form: {}, headers: { authorization: `Basic ${credentials}` }, secrets: [secret, credentials], rejectedHint };
}

export function clientSecretPost({ auth, clientId }: ClientAuthRequest): ClientAuthentication {
  const secret = readSecret(auth);
  return { form: { client_id: clientId, client_secret: secret }, headers: {}, secrets: [secret], rejectedHint };
}

function readSecret(auth: ClientAuthRequest['auth']): string {
  try {
    // The config guarantees a secret for these two methods.
    return (auth.clientSecret as NonNullable<typeof auth.clientSecret>).read();
  } catch (err) {
    throw credentialsUnreadable(err);
  }
}

function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}
