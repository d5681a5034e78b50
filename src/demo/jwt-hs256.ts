// Minimal HS256 JWTs for the demo token server and echo upstream, so the upstream can check a
// token without sharing state with the token server (they may run in separate containers).

import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';

export function signJwt(claims: Record<string, unknown>, key: string): string {
  const head = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
  const body = Buffer.from(JSON.stringify({ jti: randomUUID(), ...claims })).toString('base64url');
  const signature = createHmac('sha256', key).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${signature}`;
}

/** The claims of a token signed with `key` that has not expired at `nowSeconds`, else undefined. */
export function verifyJwt(token: string, key: string, nowSeconds = Date.now() / 1000): Record<string, unknown> | undefined {
  const [head, body, signature] = token.split('.');
  if (!head || !body || !signature) return undefined;
  const expected = createHmac('sha256', key).update(`${head}.${body}`).digest();
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Record<string, unknown>;
    if (typeof claims.exp === 'number' && claims.exp <= nowSeconds) return undefined;
    return claims;
  } catch {
    return undefined;
  }
}
