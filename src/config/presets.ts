// Built-in settings for the APIs this project was first built for. Every value can be overridden
// in a route's config; a preset only fills what the route leaves out.

/**
 * Client authentication at the token endpoint (RFC 6749 §2.3, RFC 7523 §2.2, RFC 8705 §2, RFC 7521
 * §4.2 with an assertion from a file); `none` only for token exchange at a security token service
 * that takes no client authentication (Google's STS).
 */
export const authMethods = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'client_assertion', 'none'] as const;
export type AuthMethod = (typeof authMethods)[number];

/** The grant of a token request: client credentials (RFC 6749 §4.4) or token exchange (RFC 8693). */
export const grantTypes = ['client_credentials', 'token_exchange'] as const;
export type GrantType = (typeof grantTypes)[number];

export interface Preset {
  readonly tokenUrl: string;
  readonly method: AuthMethod;
  readonly upstream: string;
  /** Typical token lifetime, used only when a response carries no expires_in and no JWT exp. */
  readonly defaultExpiresInSeconds: number;
}

export const presets = {
  // Megaport: id and secret as HTTP Basic, form body grant_type=client_credentials. Keys are valid
  // only in the environment that issued them, so staging is a preset of its own.
  megaport: {
    tokenUrl: 'https://auth-m2m.megaport.com/oauth2/token',
    method: 'client_secret_basic',
    upstream: 'https://api.megaport.com',
    defaultExpiresInSeconds: 86_400,
  },
  'megaport-staging': {
    tokenUrl: 'https://auth-m2m-staging.megaport.com/oauth2/token',
    method: 'client_secret_basic',
    upstream: 'https://api-staging.megaport.com',
    defaultExpiresInSeconds: 86_400,
  },
  // Cyxtera: client_id and client_secret in the URL-encoded form body; tokens last one hour.
  cyxtera: {
    tokenUrl: 'https://accounts.cyxtera.com/connect/token',
    method: 'client_secret_post',
    upstream: 'https://api.cyxtera.com',
    defaultExpiresInSeconds: 3_600,
  },
} as const satisfies Record<string, Preset>;

/**
 * Microsoft Entra workload identity on AKS: no secret, the pod's service-account token (which the
 * webhook mounts and names in AZURE_FEDERATED_TOKEN_FILE) is the client assertion of a federated
 * credential. Its settings come from the variables the webhook injects (workload-identity.ts).
 */
export const entraWorkloadIdentity = 'entra-workload-identity';

/** Presets whose token endpoint and upstream are fixed. */
export const staticPresets: ReadonlySet<string> = new Set(Object.keys(presets));

export type PresetName = keyof typeof presets | typeof entraWorkloadIdentity;
export const presetNames = [...Object.keys(presets), entraWorkloadIdentity] as PresetName[];

/** The fixed settings of a preset, if it has any. */
export function staticPreset(name: string | undefined): Preset | undefined {
  return name !== undefined && staticPresets.has(name) ? presets[name as keyof typeof presets] : undefined;
}
