// Built-in settings for the APIs this project was first built for. Every value can be overridden
// in a route's config; a preset only fills what the route leaves out.

/** Client authentication at the token endpoint (RFC 6749 §2.3, RFC 7523 §2.2, RFC 8705 §2); presets use the first two. */
export type AuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'tls_client_auth';

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

export type PresetName = keyof typeof presets;
export const presetNames = Object.keys(presets) as PresetName[];
