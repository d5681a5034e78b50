// The JWS algorithms a private_key_jwt client assertion may be signed with: the schema's choices,
// the config's type (types.ts) and the key checks (keys.ts) share this list.

/** The JWS algorithms a client assertion may be signed with (RFC 7518 §3.1, RFC 8037 §3.1). */
export const signingAlgorithms = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
export type SigningAlgorithm = (typeof signingAlgorithms)[number];
