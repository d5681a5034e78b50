// What a client authentication method takes and gives (index.ts picks the method; one module per
// method turns the request into form fields and headers).

import type { AuthConfig } from '../../config/types.js';

/** What one token request carries to authenticate the client. */
export interface ClientAuthentication {
  readonly form: Readonly<Record<string, string>>;
  readonly headers: Readonly<Record<string, string>>;
  /** Values in this request that must never reach a message (scrubbed from the endpoint's answers). */
  readonly secrets: readonly string[];
  /** What to check when the endpoint rejects the client (invalid_client, 401). */
  readonly rejectedHint: string;
}

export interface ClientAuthRequest {
  readonly auth: AuthConfig;
  /** "" only with method none and no client id configured. */
  readonly clientId: string;
  /** The token endpoint URL this request goes to: the audience of a client assertion. */
  readonly tokenUrl: string;
  /** Wall-clock now, ms. */
  readonly now: number;
}
