// A single route from environment variables alone: the Kubernetes and Docker way, no file needed.
// The variables are mapped onto the same shape a config file has and validated by the same schema;
// problems name the variable that set the field.

export interface EnvVariable {
  readonly name: string;
  readonly path: string;
  readonly description: string;
  readonly kind?: 'number' | 'boolean' | 'form' | 'list';
  /** Set but empty is a value ("" scheme: the bare token), not "unset". */
  readonly emptyIsValue?: boolean;
}

export const envPrefix = 'BEARER_SIDECAR_';

/** Sizing belongs to the deployment: when set, it wins over a config file's `workers` too (load.ts). */
export const workersVariable = 'BEARER_SIDECAR_WORKERS';

export const envVariables: readonly EnvVariable[] = [
  { name: 'BEARER_SIDECAR_UPSTREAM', path: 'routes[0].upstream', description: 'upstream API base URL (the preset gives one)' },
  { name: 'BEARER_SIDECAR_PRESET', path: 'routes[0].auth.preset', description: 'megaport | megaport-staging | cyxtera | entra-workload-identity (AKS: from AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE)' },
  { name: 'BEARER_SIDECAR_TOKEN_URL', path: 'routes[0].auth.tokenUrl', description: 'token endpoint (the preset gives one)' },
  { name: 'BEARER_SIDECAR_ISSUER', path: 'routes[0].auth.issuer', description: 'instead of the token URL: the issuer whose discovery document names it' },
  { name: 'BEARER_SIDECAR_AUTH_METHOD', path: 'routes[0].auth.method', description: 'client_secret_basic | client_secret_post | private_key_jwt | tls_client_auth | client_assertion | none' },
  { name: 'BEARER_SIDECAR_CLIENT_ID', path: 'routes[0].auth.clientId', description: 'client id (API key)' },
  { name: 'BEARER_SIDECAR_CLIENT_ID_FILE', path: 'routes[0].auth.clientIdFile', description: 'file holding the client id' },
  { name: 'BEARER_SIDECAR_CLIENT_SECRET', path: 'routes[0].auth.clientSecret', description: 'client secret' },
  { name: 'BEARER_SIDECAR_CLIENT_SECRET_FILE', path: 'routes[0].auth.clientSecretFile', description: 'file holding the client secret' },
  { name: 'BEARER_SIDECAR_PRIVATE_KEY_FILE', path: 'routes[0].auth.privateKeyFile', description: 'private_key_jwt: PEM private key that signs the client assertion' },
  { name: 'BEARER_SIDECAR_KEY_ID', path: 'routes[0].auth.keyId', description: 'private_key_jwt: the key\'s id at the identity provider (JWS kid)' },
  { name: 'BEARER_SIDECAR_CERTIFICATE_FILE', path: 'routes[0].auth.certificateFile', description: 'private_key_jwt: the key\'s certificate (PEM), sent as its x5t#S256 thumbprint' },
  { name: 'BEARER_SIDECAR_SIGNING_ALGORITHM', path: 'routes[0].auth.signingAlgorithm', description: 'private_key_jwt: RS256 | PS256 | ES256 | EdDSA | ... (default: from the key)' },
  { name: 'BEARER_SIDECAR_ASSERTION_AUDIENCE', path: 'routes[0].auth.assertionAudience', description: 'private_key_jwt: the assertion\'s aud, tokenEndpoint (default) or issuer' },
  { name: 'BEARER_SIDECAR_CLIENT_ASSERTION_FILE', path: 'routes[0].auth.clientAssertionFile', description: 'client_assertion: file holding the JWT presented (a projected service-account token)' },
  { name: 'BEARER_SIDECAR_GRANT_TYPE', path: 'routes[0].auth.grantType', description: 'client_credentials (default) | token_exchange' },
  { name: 'BEARER_SIDECAR_SUBJECT_TOKEN_FILE', path: 'routes[0].auth.subjectTokenFile', description: 'token_exchange: file holding the token to exchange, read at every request' },
  { name: 'BEARER_SIDECAR_SUBJECT_TOKEN_TYPE', path: 'routes[0].auth.subjectTokenType', description: 'token_exchange: its type (default urn:ietf:params:oauth:token-type:jwt)' },
  { name: 'BEARER_SIDECAR_ACTOR_TOKEN_FILE', path: 'routes[0].auth.actorTokenFile', description: 'token_exchange: file holding an actor token' },
  { name: 'BEARER_SIDECAR_ACTOR_TOKEN_TYPE', path: 'routes[0].auth.actorTokenType', description: 'token_exchange: its type (default urn:ietf:params:oauth:token-type:jwt)' },
  { name: 'BEARER_SIDECAR_REQUESTED_TOKEN_TYPE', path: 'routes[0].auth.requestedTokenType', description: 'token_exchange: the type of token asked for' },
  { name: 'BEARER_SIDECAR_RESOURCE', path: 'routes[0].auth.resource', description: 'token_exchange: resource form field' },
  { name: 'BEARER_SIDECAR_SCOPE', path: 'routes[0].auth.scope', description: 'scope form field' },
  { name: 'BEARER_SIDECAR_AUDIENCE', path: 'routes[0].auth.audience', description: 'audience form field' },
  { name: 'BEARER_SIDECAR_EXTRA_PARAMS', path: 'routes[0].auth.extraParams', description: 'more form fields, as a=1&b=2', kind: 'form' },
  { name: 'BEARER_SIDECAR_ALLOW_INSECURE_TOKEN_URL', path: 'routes[0].auth.allowInsecureTokenUrl', description: 'true to allow an http:// token URL off loopback', kind: 'boolean' },
  { name: 'BEARER_SIDECAR_INJECT_HEADER', path: 'routes[0].inject.header', description: 'header the token goes in (default Authorization)' },
  { name: 'BEARER_SIDECAR_INJECT_SCHEME', path: 'routes[0].inject.scheme', description: 'scheme before the token (default Bearer; set but empty: the bare token)', emptyIsValue: true },
  { name: 'BEARER_SIDECAR_ROUTE_NAME', path: 'routes[0].name', description: 'route name in logs and /readyz (default: the preset, else "api")' },
  { name: 'BEARER_SIDECAR_PREFIX', path: 'routes[0].prefix', description: 'local path prefix (default /)' },
  { name: 'BEARER_SIDECAR_HOST', path: 'listen.host', description: 'proxy listen address (default 127.0.0.1)' },
  { name: 'BEARER_SIDECAR_PORT', path: 'listen.port', description: 'proxy port (default 8080)', kind: 'number' },
  { name: 'BEARER_SIDECAR_SOCKET', path: 'listen.socket', description: 'proxy on this Unix socket instead of host and port' },
  { name: 'BEARER_SIDECAR_SOCKET_MODE', path: 'listen.mode', description: 'the socket file\'s mode (default 0660)' },
  { name: 'BEARER_SIDECAR_ADMIN_HOST', path: 'admin.host', description: 'admin listen address (default 127.0.0.1)' },
  { name: 'BEARER_SIDECAR_ADMIN_PORT', path: 'admin.port', description: 'admin port (default 9901)', kind: 'number' },
  { name: 'BEARER_SIDECAR_ALLOWED_CLIENTS', path: 'listen.allowedClients', description: 'client CIDRs allowed to call, comma-separated (default: any that reaches the socket)', kind: 'list' },
  { name: 'BEARER_SIDECAR_SHARED_SECRET_HEADER', path: 'listen.sharedSecretHeader.name', description: 'header every caller must send, e.g. x-sidecar-key' },
  { name: 'BEARER_SIDECAR_SHARED_SECRET', path: 'listen.sharedSecretHeader.value', description: 'its value (16+ characters)' },
  { name: 'BEARER_SIDECAR_SHARED_SECRET_FILE', path: 'listen.sharedSecretHeader.valueFile', description: 'file holding its value' },
  { name: 'BEARER_SIDECAR_MAX_IN_FLIGHT', path: 'listen.maxInFlight', description: 'requests handled at once (default 1024, 0 = no limit)', kind: 'number' },
  { name: 'BEARER_SIDECAR_MAX_HEADER_BYTES', path: 'listen.maxHeaderBytes', description: 'largest request head (default 16384)', kind: 'number' },
  { name: 'BEARER_SIDECAR_MAX_BODY_BYTES', path: 'routes[0].maxBodyBytes', description: 'largest request body (default 0 = no limit)', kind: 'number' },
  { name: 'BEARER_SIDECAR_FORWARDED_HEADERS', path: 'routes[0].forwardedHeaders', description: 'strip | append | pass (default strip)' },
  { name: 'BEARER_SIDECAR_FORWARD_COOKIES', path: 'routes[0].forwardCookies', description: 'false to drop Cookie and Set-Cookie', kind: 'boolean' },
  { name: 'BEARER_SIDECAR_CA_FILE', path: 'routes[0].tls.caFile', description: 'extra CA bundle (PEM) for the upstream' },
  { name: 'BEARER_SIDECAR_CERT_FILE', path: 'routes[0].tls.certFile', description: 'client certificate (PEM) presented to the upstream' },
  { name: 'BEARER_SIDECAR_KEY_FILE', path: 'routes[0].tls.keyFile', description: 'its private key (PEM)' },
  { name: 'BEARER_SIDECAR_KEY_PASSPHRASE_FILE', path: 'routes[0].tls.keyPassphraseFile', description: 'file holding that key\'s passphrase' },
  { name: 'BEARER_SIDECAR_TOKEN_CA_FILE', path: 'routes[0].auth.tls.caFile', description: 'extra CA bundle (PEM) for the token endpoint' },
  { name: 'BEARER_SIDECAR_TOKEN_CERT_FILE', path: 'routes[0].auth.tls.certFile', description: 'client certificate (PEM) for the token endpoint (tls_client_auth)' },
  { name: 'BEARER_SIDECAR_TOKEN_KEY_FILE', path: 'routes[0].auth.tls.keyFile', description: 'its private key (PEM)' },
  { name: 'BEARER_SIDECAR_TOKEN_KEY_PASSPHRASE_FILE', path: 'routes[0].auth.tls.keyPassphraseFile', description: 'file holding that key\'s passphrase' },
  { name: 'BEARER_SIDECAR_TOKEN_CACHE_URL', path: 'tokenCache.url', description: 'shared token cache: redis://user:password@host:6379/0 or rediss://...' },
  { name: 'BEARER_SIDECAR_TOKEN_CACHE_URL_FILE', path: 'tokenCache.urlFile', description: 'file holding that URL (read again at each reconnect)' },
  { name: 'BEARER_SIDECAR_TOKEN_CACHE_KEY_FILE', path: 'tokenCache.encryptionKeyFile', description: 'its encryption keys: base64 of 32 bytes a line (openssl rand -base64 32); the first encrypts' },
  { name: 'BEARER_SIDECAR_TOKEN_CACHE_KEY_PREFIX', path: 'tokenCache.keyPrefix', description: 'prefix of the keys it writes (default bearer-sidecar:)' },
  { name: 'BEARER_SIDECAR_WORKERS', path: 'workers', description: 'processes serving the proxy: a number or auto (the CPUs it may use); wins over the file', kind: 'number' },
  { name: 'BEARER_SIDECAR_LOG_LEVEL', path: 'logLevel', description: 'fatal | error | warn | info | debug | trace | silent' },
];

export interface EnvConfig {
  readonly raw: Record<string, unknown>;
  readonly fieldNames: ReadonlyMap<string, string>;
}

/** Builds a raw config object from BEARER_SIDECAR_* variables. Values are taken literally (no ${VAR}). */
export function configFromEnv(env: NodeJS.ProcessEnv): EnvConfig {
  const raw: Record<string, unknown> = { routes: [{ auth: {} }] };
  for (const variable of envVariables) {
    const value = env[variable.name];
    if (value === undefined || (value === '' && !variable.emptyIsValue)) continue;
    setPath(raw, variable.path, convert(value, variable.kind));
  }
  const route = (raw.routes as Record<string, unknown>[])[0] as Record<string, unknown>;
  const auth = route.auth as Record<string, unknown>;
  route.name ??= typeof auth.preset === 'string' ? auth.preset : 'api';
  // Escape `${` so values are never interpolated a second time.
  return {
    raw: escapeInterpolation(raw) as Record<string, unknown>,
    fieldNames: new Map(envVariables.map((v) => [v.path, v.name])),
  };
}

function convert(value: string, kind: EnvVariable['kind']): unknown {
  switch (kind) {
    case 'number':
      return /^\d+$/.test(value) ? Number(value) : value;
    case 'boolean':
      return value === 'true' ? true : value === 'false' ? false : value;
    case 'form':
      return Object.fromEntries(new URLSearchParams(value));
    case 'list':
      return value.split(',').map((item) => item.trim()).filter((item) => item !== '');
    default:
      return value;
  }
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.replace(/\[(\d+)\]/g, '.$1').split('.');
  let node: Record<string, unknown> = target;
  for (const part of parts.slice(0, -1)) {
    node[part] ??= {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] as string] = value;
}

function escapeInterpolation(value: unknown): unknown {
  if (typeof value === 'string') return value.replaceAll('${', () => '$${'); // a function: '$$' in a replacement string means '$'
  if (Array.isArray(value)) return value.map(escapeInterpolation);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, escapeInterpolation(v)]));
  }
  return value;
}
