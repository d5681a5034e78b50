// Reads the claims of a JWT without verifying it: the exp of an access token (for token responses
// without expires_in), and the exp of a client assertion or subject token read from a file, to
// check before sending it. The sidecar only needs to know when a token stops being valid, not
// whether to trust it: the party it is sent to verifies it.

/** The payload of a compact JWS (header.payload.signature), or undefined when `token` is not one. */
export function jwtClaims(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  // An unsecured JWT (RFC 7519 §6) has an empty signature.
  if (parts.length !== 3 || !/^[A-Za-z0-9_-]+$/.test(`${parts[0]}`) || !/^[A-Za-z0-9_-]+$/.test(`${parts[1]}`) || !/^[A-Za-z0-9_-]*$/.test(`${parts[2]}`)) return undefined;
  try {
    const header: unknown = JSON.parse(Buffer.from(parts[0] as string, 'base64url').toString('utf8'));
    const payload: unknown = JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8'));
    if (!isObject(header) || !isObject(payload)) return undefined;
    return payload;
  } catch {
    return undefined; // not a JWT
  }
}

export function jwtExpiry(token: string): number | undefined {
  const exp = jwtClaims(token)?.exp;
  return typeof exp === 'number' && Number.isFinite(exp) ? exp : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
