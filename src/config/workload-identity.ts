// The entra-workload-identity preset: Microsoft Entra ID workload identity on AKS. The webhook of
// azure-workload-identity injects four variables into a pod whose ServiceAccount it serves; this
// fills a route's `auth` from them (what the config sets wins), before validation, so a missing
// one is named by its variable. The token endpoint is {authority}{tenant}/oauth2/v2.0/token and the
// client authenticates with the projected service-account token as its client assertion (a
// federated identity credential), re-read at every token request.
// https://learn.microsoft.com/en-us/azure/aks/workload-identity-overview

import { entraWorkloadIdentity } from './presets.js';

/** The variables the webhook injects, and the `auth` field each one fills. */
export const entraVariables = [
  { name: 'AZURE_CLIENT_ID', field: 'clientId' },
  { name: 'AZURE_TENANT_ID', field: 'tenantId' },
  { name: 'AZURE_FEDERATED_TOKEN_FILE', field: 'clientAssertionFile' },
  { name: 'AZURE_AUTHORITY_HOST', field: 'authorityHost' },
] as const;

export const defaultAuthorityHost = 'https://login.microsoftonline.com/';

/** Microsoft Entra ID's v2.0 token endpoint of a tenant. */
export function entraTokenUrl(authorityHost: string, tenantId: string): string {
  return `${authorityHost.replace(/\/*$/, '/')}${encodeURIComponent(tenantId)}/oauth2/v2.0/token`;
}

export interface PresetExpansion {
  readonly input: unknown;
  /** Fields filled from a variable, by path (routes[0].auth.clientId), for messages. */
  readonly fieldNames: ReadonlyMap<string, string>;
}

/**
 * Fills the `auth` of each route (or of the one in-process `auth`, `at` ''), whose preset is
 * entra-workload-identity, from `env` where the config leaves a field out. Values are taken
 * literally, as the config's own are after interpolation.
 */
export function expandWorkloadIdentity(input: unknown, env: NodeJS.ProcessEnv): PresetExpansion {
  const fieldNames = new Map<string, string>();
  if (!isMapping(input)) return { input, fieldNames };
  if (Array.isArray(input.routes)) {
    const routes = input.routes.map((route: unknown, index) => (isMapping(route) && isMapping(route.auth) ? { ...route, auth: expandAuth(route.auth, env, `routes[${index}].auth`, fieldNames) } : route));
    return { input: { ...input, routes }, fieldNames };
  }
  if (isMapping(input.auth)) return { input: { ...input, auth: expandAuth(input.auth, env, 'auth', fieldNames) }, fieldNames };
  return { input, fieldNames };
}

function expandAuth(auth: Record<string, unknown>, env: NodeJS.ProcessEnv, at: string, fieldNames: Map<string, string>): Record<string, unknown> {
  if (auth.preset !== entraWorkloadIdentity) return auth;
  const out: Record<string, unknown> = { method: 'client_assertion', ...auth };
  for (const { name, field } of entraVariables) {
    const value = env[name];
    const given = out[field] !== undefined || (field === 'clientId' && out.clientIdFile !== undefined);
    // Another method is refused by the schema, for what it is, not for a file it would not use.
    const unused = field === 'clientAssertionFile' && out.method !== 'client_assertion';
    if (given || unused || value === undefined || value === '') continue;
    out[field] = value;
    fieldNames.set(`${at}.${field}`, name);
  }
  return out;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
