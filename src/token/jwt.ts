// Reads the exp claim of a JWT access token, for token responses without expires_in. The token is
// not verified: the sidecar only needs to know when to stop sending it, not whether to trust it.

export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    if (payload && typeof payload === 'object' && 'exp' in payload) {
      const exp = (payload as { exp: unknown }).exp;
      if (typeof exp === 'number' && Number.isFinite(exp)) return exp;
    }
  } catch {
    // not a JWT: the caller falls back to the configured default lifetime
  }
  return undefined;
}
