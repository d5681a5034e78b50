// JWTs as a platform would put them in a file (a projected service-account token): compact, with
// the claims a test gives, and a signature nobody checks here (the tests that need one verified
// run against oidc-provider). Each one made is registered with the secret audit.

import { randomUUID } from 'node:crypto';
import { audit } from './audit.js';

/** A compact JWT that expires `lifetimeSeconds` after `nowMs` (the test clock's now). */
export function platformToken(nowMs: number, lifetimeSeconds: number, claims: Record<string, unknown> = {}): string {
  const iat = Math.floor(nowMs / 1000);
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const token = `${part({ alg: 'RS256', kid: 'cluster-1', typ: 'JWT' })}.${part({ iss: 'https://cluster.example', sub: 'system:serviceaccount:shop:api', aud: 'api://AzureADTokenExchange', iat, nbf: iat, exp: iat + lifetimeSeconds, jti: randomUUID(), ...claims })}.${Buffer.from(randomUUID()).toString('base64url')}`;
  audit.addSecret(token);
  return token;
}

/** The exp claim of a JWT (seconds). */
export function expOf(token: string): number {
  return (JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as { exp: number }).exp;
}
