// The configuration file's shape, validated once at start-up. Field names are a contract with
// users and other tools: add fields freely, never rename. Defaults live here and only here.

import * as z from 'zod';
import { parseCidr } from './cidr.js';
import { signingAlgorithms } from './signing-algorithms.js';
import { authMethods, entraWorkloadIdentity, grantTypes, presetNames, staticPresets } from './presets.js';
import { tracingProtocols, tracingSamplers } from './tracing-names.js';

// The config is validated once, at start: zod's JIT (parsers generated with new Function) costs
// more than it saves for one parse (~10 ms of start-up and ~0.4 MB of idle RSS, issue 7).
z.config({ jitless: true });

const httpUrl = z
  .string()
  .refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
    } catch {
      return false;
    }
  }, 'must be an absolute http:// or https:// URL');

const port = z.number().int().min(0).max(65_535);

/** A token type identifier (RFC 8693 §3), such as urn:ietf:params:oauth:token-type:jwt. */
const tokenTypeUri = z.string().regex(/^[A-Za-z][A-Za-z0-9+.-]*:\S+$/, 'must be a token type URI such as urn:ietf:params:oauth:token-type:jwt');
const host = z.string().min(1);

/** TLS to one remote: verification is on unless switched off by name. */
const tlsSchema = z
  .strictObject({
    /** PEM CA bundle trusted in addition to Node's bundled CAs (a private CA). */
    caFile: z.string().min(1).optional(),
    rejectUnauthorized: z.boolean().default(true),
    /** A client certificate (PEM, chain allowed) and its key, presented to the remote: mutual TLS. */
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    /** The passphrase of an encrypted keyFile. */
    keyPassphraseFile: z.string().min(1).optional(),
  })
  .superRefine((tls, ctx) => {
    if (tls.certFile && !tls.keyFile) ctx.addIssue({ code: 'custom', path: ['keyFile'], message: 'is required with certFile (the client certificate\'s private key)' });
    if (tls.keyFile && !tls.certFile) ctx.addIssue({ code: 'custom', path: ['certFile'], message: 'is required with keyFile (the client certificate)' });
    if (tls.keyPassphraseFile && !tls.keyFile) ctx.addIssue({ code: 'custom', path: ['keyPassphraseFile'], message: 'applies only with keyFile' });
  });

/** Header names a shared secret must not take: the sidecar or HTTP itself gives them meaning. */
const reservedHeaders = new Set(['authorization', 'proxy-authorization', 'host', 'cookie', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'upgrade', 'te', 'trailer', 'keep-alive', 'expect']);

/** RFC 9110 §5.6.2 token characters: header names and authentication schemes. */
const tokenChars = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

const sharedSecretHeaderSchema = z.strictObject({
  name: z
    .string()
    .regex(tokenChars, 'must be a header name such as x-sidecar-key')
    .refine((name) => !reservedHeaders.has(name.toLowerCase()), 'must not be a standard header; use your own such as x-sidecar-key'),
  value: z.string().min(16, 'must be at least 16 characters').optional(),
  valueFile: z.string().min(1).optional(),
});

/**
 * Header names the token must not go in: those that frame the message or the connection, that HTTP
 * or the WebSocket handshake gives meaning to, or that the sidecar sets itself. Authorization is
 * the default, so it is allowed here.
 */
const notInjectable = new Set([
  ...[...reservedHeaders].filter((name) => name !== 'authorization'),
  'proxy-connection',
  'x-request-id',
  'set-cookie',
  'forwarded',
  ...['key', 'version', 'extensions', 'protocol', 'accept'].map((suffix) => `sec-websocket-${suffix}`),
]);

/** Where a route puts its token: `header: scheme token`, or the bare token when scheme is "". */
const injectSchema = z.strictObject({
  header: z
    .string()
    .regex(tokenChars, 'must be a header name such as Authorization or X-Api-Token')
    .refine((name) => !notInjectable.has(name.toLowerCase()), 'is a header HTTP or the sidecar gives its own meaning; use Authorization or your API\'s header such as X-Api-Token')
    .default('Authorization'),
  scheme: z
    .string()
    .refine((scheme) => scheme === '' || tokenChars.test(scheme), 'must be an authentication scheme such as Bearer or Token (letters, digits, no spaces), or "" for the bare token')
    .default('Bearer'),
});

const retrySchema = z.strictObject({
  /** Attempts after the first one, within one fetch. */
  retries: z.number().int().min(0).max(100).default(8),
  minDelayMs: z.number().int().min(0).default(500),
  maxDelayMs: z.number().int().min(0).default(30_000),
  /** Bound on the total time one fetch (all its attempts) may take. */
  maxTimeMs: z.number().int().positive().default(60_000),
});

export const authSchema = z.strictObject({
  preset: z.enum(presetNames as [string, ...string[]]).optional(),
  tokenUrl: httpUrl.optional(),
  /** Instead of tokenUrl: the token endpoint comes from this issuer's discovery document (RFC 8414, OpenID Connect Discovery). */
  issuer: httpUrl.optional(),
  method: z.enum(authMethods).optional(),
  /** client_credentials (RFC 6749 §4.4), or token_exchange (RFC 8693): a token from a file exchanged for the API's. */
  grantType: z.enum(grantTypes).default('client_credentials'),
  clientId: z.string().min(1, 'must not be empty').optional(),
  clientIdFile: z.string().min(1).optional(),
  clientSecret: z.string().min(1, 'must not be empty').optional(),
  clientSecretFile: z.string().min(1).optional(),
  /** private_key_jwt: the PEM private key that signs the client assertion, read at every token request. */
  privateKeyFile: z.string().min(1).optional(),
  /** private_key_jwt: the JWS `kid`, the key's id at the identity provider. */
  keyId: z.string().min(1, 'must not be empty').optional(),
  /** private_key_jwt: the key's X.509 certificate (PEM), for the JWS `x5t#S256` by which some providers (Microsoft Entra ID) find the key. */
  certificateFile: z.string().min(1).optional(),
  /** private_key_jwt: the JWS algorithm; by default the one the key's type implies. */
  signingAlgorithm: z.enum(signingAlgorithms).optional(),
  /** private_key_jwt: the `aud` of the client assertion: the token endpoint's URL, or the issuer (auth.issuer), as Auth0 asks. */
  assertionAudience: z.enum(['tokenEndpoint', 'issuer']).optional(),
  /** client_assertion: a file holding a JWT the platform issues and rotates (a Kubernetes service-account token), read at every token request. */
  clientAssertionFile: z.string().min(1).optional(),
  /** entra-workload-identity preset: the Microsoft Entra tenant (default: AZURE_TENANT_ID). */
  tenantId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.-]*$/, 'must be a tenant id (a GUID) or a domain such as contoso.onmicrosoft.com').optional(),
  /** entra-workload-identity preset: the authority (default: AZURE_AUTHORITY_HOST, else https://login.microsoftonline.com/). */
  authorityHost: httpUrl.optional(),
  /** token_exchange: the file holding the subject token, read at every token request. */
  subjectTokenFile: z.string().min(1).optional(),
  /** token_exchange: what the subject token is (RFC 8693 §3). */
  subjectTokenType: tokenTypeUri.optional(),
  /** token_exchange: the file holding an actor token (delegation, RFC 8693 §1.1), read at every token request. */
  actorTokenFile: z.string().min(1).optional(),
  actorTokenType: tokenTypeUri.optional(),
  /** token_exchange: the type of token asked for (RFC 8693 §2.1). */
  requestedTokenType: tokenTypeUri.optional(),
  /** token_exchange: the resource the token is for (RFC 8693 §2.1, RFC 8707). */
  resource: z.string().min(1, 'must not be empty').optional(),
  scope: z.string().optional(),
  audience: z.string().optional(),
  /** Extra form fields sent with every token request. */
  extraParams: z.record(z.string(), z.string()).default({}),
  /** Refresh once this fraction of a token's lifetime has passed... */
  refreshAheadRatio: z.number().gt(0).lt(1).default(0.8),
  /** ...and at least this long before it expires. */
  refreshAheadMinSeconds: z.number().min(0).default(60),
  /** A token is never sent in its last seconds of life (clamped to a quarter of short lifetimes). */
  safetyMarginSeconds: z.number().min(0).default(30),
  /** Lifetime assumed when a response has no expires_in and the token is not a JWT with exp. */
  defaultExpiresInSeconds: z.number().int().positive().optional(),
  /** Longer lifetimes are cut to this, so keys rotated at the provider take effect. */
  maxLifetimeSeconds: z.number().int().positive().default(86_400),
  /** Timeout of one token request. */
  timeoutMs: z.number().int().positive().default(10_000),
  /** How long a proxied request may wait for a token before it gets 503. */
  tokenWaitMs: z.number().int().positive().default(10_000),
  /** After a 401 made the sidecar fetch a new token, further 401s fetch none for this long. */
  refreshOn401CooldownSeconds: z.number().min(0).default(10),
  retry: retrySchema.default(() => retrySchema.parse({})),
  /** Allow an http:// token URL on a non-loopback host (secrets would cross the network in clear). */
  allowInsecureTokenUrl: z.boolean().default(false),
  /** TLS to the token endpoint (certFile and keyFile: the client certificate of tls_client_auth). */
  tls: tlsSchema.default(() => tlsSchema.parse({})),
});

/** An outbound (forward) proxy for a route's connections; false: none, whatever HTTPS_PROXY says. Checked in config/outbound-proxy.ts. */
const outboundProxySchema = z.union([
  z.literal(false),
  z.strictObject({
    url: z.string().min(1, 'must not be empty').optional(),
    urlFile: z.string().min(1).optional(),
    /** Targets that go direct: host names, domains, IP addresses, CIDR ranges, host:port, or *. */
    noProxy: z.union([z.string(), z.array(z.string())]).optional(),
  }),
], { error: 'must be false, or a mapping with url or urlFile (text) and noProxy (text or a list)' });

const routeSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must be letters, digits, ".", "_" or "-"'),
  prefix: z
    .string()
    // Segments are separated by a required '/': no nested quantifier, so no catastrophic
    // backtracking on a long invalid value (the previous pattern took seconds at ~27 characters).
    .regex(/^\/(?:[A-Za-z0-9._~-]+(?:\/[A-Za-z0-9._~-]+)*\/?)?$/, 'must be a path such as / or /megaport (letters, digits, . _ ~ -)')
    .default('/'),
  upstream: httpUrl.optional(),
  websocket: z.boolean().default(false),
  auth: authSchema,
  /** The header the token goes in, and the scheme before it. */
  inject: injectSchema.default(() => injectSchema.parse({})),
  /** Upstream timeouts: TCP/TLS connect, and waiting for response headers or body data. */
  connectTimeoutMs: z.number().int().positive().default(10_000),
  responseTimeoutMs: z.number().int().positive().default(60_000),
  /** TLS to the upstream. */
  tls: tlsSchema.default(() => tlsSchema.parse({})),
  /** Caller-sent Forwarded/X-Forwarded-*: removed (strip), replaced by the sidecar's own (append), or kept (pass). */
  forwardedHeaders: z.enum(['strip', 'append', 'pass']).default('strip'),
  /** false: Cookie is not forwarded and Set-Cookie not returned. */
  forwardCookies: z.boolean().default(true),
  /** Largest request body forwarded, counted while streaming; 0 = no limit. */
  maxBodyBytes: z.number().int().min(0).default(0),
  /** Request bodies up to this size are kept so the request can be replayed after a 401; 0 keeps none. */
  replayBodyLimitBytes: z.number().int().min(0).max(16 * 1024 * 1024).default(64 * 1024),
  /** This route's outbound proxy, over the top-level one and the environment. */
  outboundProxy: outboundProxySchema.optional(),
  /** false: this route keeps its tokens to itself, though a top-level tokenCache is set. */
  tokenCache: z.literal(false, { error: 'may only be false (the route then does not use the top-level tokenCache)' }).optional(),
});

/**
 * The shared token cache (Redis or Valkey) the replicas of a fleet share tokens through (src/token/shared-cache/).
 * The URL carries the cache's password, so it may come from a file; the encryption key file is required.
 */
export const tokenCacheSchema = z
  .strictObject({
    /** redis://user:password@host:6379/0 or rediss:// (TLS); the password URL-escaped. */
    url: z.string().min(1, 'must not be empty').optional(),
    /** A file holding the URL (a mounted Secret); read again whenever the sidecar reconnects. */
    urlFile: z.string().min(1).optional(),
    /** Base64 of 32 random bytes (openssl rand -base64 32), one key a line: the first encrypts, any decrypts. */
    encryptionKeyFile: z.string().min(1),
    /** Put in front of every key the sidecar writes, so a cache can be shared with other programs. */
    keyPrefix: z.string().max(128).default('bearer-sidecar:'),
    /** Bound on each call to the cache; a slower answer counts as the cache failing. */
    timeoutMs: z.number().int().positive().max(60_000).default(500),
    /** Bound on connecting; a replica starting while the cache is unreachable waits at most this long for it. */
    connectTimeoutMs: z.number().int().positive().max(60_000).default(2_000),
    /** TLS to the cache (rediss://): a private CA, a client certificate. */
    tls: tlsSchema.default(() => tlsSchema.parse({})),
  })
  .superRefine((cache, ctx) => {
    if ((cache.url === undefined) === (cache.urlFile === undefined)) ctx.addIssue({ code: 'custom', path: ['url'], message: 'set url or urlFile (exactly one)' });
  });

/**
 * A file mode as chmod takes it: "0660", "660", or a number read as the same octal digits (YAML
 * reads an unquoted 0660 as the number 660).
 */
const fileMode = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const digits = /^0?o?([0-7]{3})$/i.exec(String(value).trim())?.[1];
  if (!digits) {
    ctx.addIssue({ code: 'custom', message: 'must be an octal file mode such as "0660"' });
    return z.NEVER;
  }
  const mode = Number.parseInt(digits, 8);
  // The owner (the sidecar's user) must be able to connect: the stale-socket check at start does.
  if ((mode & 0o600) !== 0o600) {
    ctx.addIssue({ code: 'custom', message: `${digits} does not let the owner read and write; use e.g. "0660" (YAML reads an unquoted 0o660 as 432)` });
    return z.NEVER;
  }
  return mode;
});

/** Linux keeps a Unix socket's path in 108 bytes, the last one a NUL. */
const socketPathBytes = 107;

const listenSchema = z
  .strictObject({
    // host and port default below, only when no socket is given.
    host: host.optional(),
    port: port.optional(),
    /** A Unix domain socket instead of host/port: only processes that may open the file reach the proxy. */
    socket: z
      .string()
      .min(1)
      .refine((path) => Buffer.byteLength(path) <= socketPathBytes, `must be at most ${socketPathBytes} bytes (the limit of a Unix socket address)`)
      .optional(),
    /** The socket file's mode. */
    mode: fileMode.optional(),
    /** Client addresses (CIDR or single IP) that may use the proxy; empty = anyone who reaches the socket. */
    allowedClients: z.array(z.string().refine((value) => parseCidr(value) !== undefined, 'must be an IP address or a CIDR such as 10.0.0.0/8 or ::1/128')).default([]),
    /** A header every caller must send with this value; removed before forwarding. */
    sharedSecretHeader: sharedSecretHeaderSchema.optional(),
    /** Largest request head (request line and headers) accepted; larger gets 431. */
    maxHeaderBytes: z.number().int().min(1024).max(1_048_576).default(16_384),
    /** Proxied requests handled at once; more get 503 overloaded. 0 = no limit. */
    maxInFlight: z.number().int().min(0).default(1024),
  })
  .superRefine((listen, ctx) => {
    if (listen.socket !== undefined) {
      for (const field of ['host', 'port'] as const) {
        if (listen[field] !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: 'set listen.socket or host and port, not both' });
      }
      if (listen.allowedClients.length > 0) {
        ctx.addIssue({ code: 'custom', path: ['allowedClients'], message: "applies to host and port only: a Unix socket's callers have no address (its mode decides who connects)" });
      }
    } else if (listen.mode !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['mode'], message: 'applies only with listen.socket' });
    }
  })
  .transform(({ host, port, socket, mode, ...rest }) => ({
    host: host ?? '127.0.0.1',
    port: port ?? 8080,
    ...(socket === undefined ? {} : { socket, mode: mode ?? 0o660 }),
    ...rest,
  }));

const adminSchema = z.strictObject({
  host: host.default('127.0.0.1'),
  port: port.default(9901),
});

/**
 * Traces (OpenTelemetry, OTLP over HTTP): each field is one of the standard OTEL_* variables, and
 * wins over it when set (config/tracing.ts). The block turns tracing on, as OTEL_EXPORTER_OTLP_ENDPOINT does.
 */
const tracingSchema = z.strictObject({
  /** false: off, whatever the OTEL_* variables say (as OTEL_SDK_DISABLED=true). */
  enabled: z.boolean().default(true),
  /** The collector's base URL: /v1/traces is appended (OTEL_EXPORTER_OTLP_ENDPOINT). */
  endpoint: httpUrl.optional(),
  /** The full URL spans are sent to, taken as it is (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). */
  tracesEndpoint: httpUrl.optional(),
  protocol: z.enum(tracingProtocols).optional(),
  serviceName: z.string().min(1).optional(),
  sampler: z.enum(tracingSamplers).optional(),
  /** The ratio of traceidratio and parentbased_traceidratio, 0 to 1 (OTEL_TRACES_SAMPLER_ARG). */
  samplerArg: z.number().min(0).max(1).optional(),
  resourceAttributes: z.record(z.string().min(1), z.string()).optional(),
});

const workersProblem = { error: 'must be a whole number of at least 1, or "auto" (the CPUs this process may use)' };

export const configSchema = z
  .strictObject({
    listen: listenSchema.default(() => listenSchema.parse({})),
    admin: adminSchema.default(() => adminSchema.parse({})),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** How long in-flight requests may take to finish after SIGTERM. */
    drainTimeoutMs: z.number().int().min(0).default(10_000),
    /** Processes serving the proxy listener: a number, or "auto" for the CPUs this process may use (runtime/cpus.ts). */
    workers: z.union([z.number().int(workersProblem).min(1, workersProblem), z.literal('auto')], workersProblem).default(1),
    /** Every route's outbound proxy, over HTTPS_PROXY / HTTP_PROXY / NO_PROXY. */
    outboundProxy: outboundProxySchema.optional(),
    /** OpenTelemetry traces; off unless this block or OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set. */
    tracing: tracingSchema.optional(),
    /** A token cache the replicas share (Redis or Valkey): one token per credential for the whole fleet. */
    tokenCache: tokenCacheSchema.optional(),
    routes: z.array(routeSchema).min(1, 'at least one route is required'),
  })
  .superRefine((config, ctx) => {
    const names = new Map<string, number>();
    const prefixes = new Map<string, number>();
    // A shared-secret header of a reserved name (Authorization, say) is refused on its own line.
    const secretName = config.listen.sharedSecretHeader?.name.toLowerCase();
    const clashes = (header: string) => secretName !== undefined && !reservedHeaders.has(secretName) && header.toLowerCase() === secretName;
    config.routes.forEach((route, index) => {
      const previousName = names.get(route.name);
      if (previousName !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['routes', index, 'name'], message: `"${route.name}" is already the name of routes[${previousName}]` });
      } else names.set(route.name, index);
      const prefix = normalisePrefix(route.prefix);
      const previousPrefix = prefixes.get(prefix);
      if (previousPrefix !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['routes', index, 'prefix'], message: `"${route.prefix}" is already the prefix of routes[${previousPrefix}]` });
      } else prefixes.set(prefix, index);
      checkAuth(route.auth, ['routes', index], ctx);
      if (!route.upstream && !staticPresets.has(route.auth.preset ?? '')) ctx.addIssue({ code: 'custom', path: ['routes', index, 'upstream'], message: `is required${route.auth.preset ? ` (the ${route.auth.preset} preset has none)` : ' (or set auth.preset)'}` });
      if (clashes(route.inject.header)) {
        ctx.addIssue({ code: 'custom', path: ['routes', index, 'inject', 'header'], message: "is listen.sharedSecretHeader's name, which the sidecar removes; pick another" });
      }
    });
    const secretHeader = config.listen.sharedSecretHeader;
    if (secretHeader && (secretHeader.value === undefined) === (secretHeader.valueFile === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['listen', 'sharedSecretHeader', 'value'], message: 'set value or valueFile (exactly one)' });
    }
  });

function checkAuth(auth: RawAuth, at: (string | number)[], ctx: z.RefinementCtx): void {
  const need = (present: unknown, field: string, message: string) => {
    if (!present) ctx.addIssue({ code: 'custom', path: [...at, 'auth', field], message });
  };
  const entra = auth.preset === entraWorkloadIdentity;
  if (entra) {
    need(auth.tokenUrl ?? auth.issuer ?? auth.tenantId, 'tenantId', 'is required with preset entra-workload-identity (AZURE_TENANT_ID, which the workload identity webhook sets; or set tokenUrl)');
    need(auth.scope, 'scope', 'is required with preset entra-workload-identity: the resource\'s scope, such as https://graph.microsoft.com/.default');
    if (auth.method !== 'client_assertion') ctx.addIssue({ code: 'custom', path: [...at, 'auth', 'method'], message: 'must be client_assertion with preset entra-workload-identity (or leave it out)' });
  } else {
    need(auth.tokenUrl ?? auth.issuer ?? auth.preset, 'tokenUrl', 'is required (or set issuer, or a preset)');
    for (const field of ['tenantId', 'authorityHost'] as const) {
      if (auth[field] !== undefined) ctx.addIssue({ code: 'custom', path: [...at, 'auth', field], message: 'applies only with preset entra-workload-identity' });
    }
  }
  const entraHint = entra ? ' (AZURE_CLIENT_ID, which the workload identity webhook sets)' : '';
  if (auth.clientId && auth.clientIdFile) ctx.addIssue({ code: 'custom', path: [...at, 'auth', 'clientIdFile'], message: 'set clientId or clientIdFile, not both' });
  // A security token service that takes no client authentication may take no client id either.
  else if (auth.method !== 'none') need(auth.clientId ?? auth.clientIdFile, 'clientId', `is required (or clientIdFile)${entraHint}`);
  checkCredentials(auth, [...at, 'auth'], ctx);
  checkGrant(auth, [...at, 'auth'], ctx);
}

/** What each client authentication method needs, and the fields it would silently ignore. */
function checkCredentials(auth: RawAuth, at: (string | number)[], ctx: z.RefinementCtx): void {
  const problem = (path: string[], message: string) => ctx.addIssue({ code: 'custom', path: [...at, ...path], message });
  const method = auth.method ?? 'client_secret_basic';
  const secretBased = method === 'client_secret_basic' || method === 'client_secret_post';
  if (secretBased) {
    if (auth.clientSecret && auth.clientSecretFile) problem(['clientSecretFile'], 'set clientSecret or clientSecretFile, not both');
    else if (!(auth.clientSecret ?? auth.clientSecretFile)) problem(['clientSecret'], 'is required (or clientSecretFile)');
  } else {
    for (const field of ['clientSecret', 'clientSecretFile'] as const) {
      if (auth[field] !== undefined) problem([field], `is not used with method: ${method}; remove it`);
    }
  }
  if (method === 'private_key_jwt') {
    if (!auth.privateKeyFile) problem(['privateKeyFile'], 'is required with method: private_key_jwt (the PEM private key that signs the client assertion)');
    if (auth.assertionAudience === 'issuer' && auth.issuer === undefined) {
      problem(['assertionAudience'], 'issuer needs auth.issuer, the identity provider\'s issuer (e.g. https://example.auth0.com/); with tokenUrl set too, the issuer is only the audience');
    }
  } else {
    for (const field of ['privateKeyFile', 'keyId', 'certificateFile', 'signingAlgorithm', 'assertionAudience'] as const) {
      if (auth[field] !== undefined) problem([field], 'applies only with method: private_key_jwt');
    }
  }
  if (method === 'client_assertion') {
    const hint = auth.preset === entraWorkloadIdentity ? 'AZURE_FEDERATED_TOKEN_FILE, which the workload identity webhook sets' : 'e.g. a projected service-account token';
    if (!auth.clientAssertionFile) problem(['clientAssertionFile'], `is required with method: client_assertion (the file holding the JWT to present, ${hint})`);
  } else if (auth.clientAssertionFile !== undefined) problem(['clientAssertionFile'], 'applies only with method: client_assertion');
  if (method === 'none' && auth.grantType !== 'token_exchange') problem(['method'], 'none applies only with grantType: token_exchange (a client credentials grant needs client authentication)');
  if (method === 'tls_client_auth' && !auth.tls.certFile && !auth.tls.keyFile) {
    problem(['tls', 'certFile'], 'is required with method: tls_client_auth (the client certificate, with tls.keyFile)');
  }
}

/** What each grant needs, and the fields only token exchange takes. */
function checkGrant(auth: RawAuth, at: (string | number)[], ctx: z.RefinementCtx): void {
  const problem = (field: string, message: string) => ctx.addIssue({ code: 'custom', path: [...at, field], message });
  if (auth.grantType === 'token_exchange') {
    if (!auth.subjectTokenFile) problem('subjectTokenFile', 'is required with grantType: token_exchange (the file holding the token to exchange, e.g. a projected service-account token)');
    if (auth.actorTokenType !== undefined && auth.actorTokenFile === undefined) problem('actorTokenType', 'applies only with actorTokenFile');
    return;
  }
  for (const field of tokenExchangeFields) {
    if (auth[field] !== undefined) problem(field, 'applies only with grantType: token_exchange');
  }
}

const tokenExchangeFields = ['subjectTokenFile', 'subjectTokenType', 'actorTokenFile', 'actorTokenType', 'requestedTokenType', 'resource'] as const;

/**
 * What a program gives the library (createTokenSource, the Fastify plugin): a route's `auth`, and
 * for the plugin the route's `tls` and `replayBodyLimitBytes`, validated by the same rules under
 * the same names, so a problem reads `auth.clientSecret: ...` as it would in a config file.
 */
export const inProcessSchema = z
  .strictObject({
    auth: authSchema,
    tls: routeSchema.shape.tls,
    replayBodyLimitBytes: routeSchema.shape.replayBodyLimitBytes,
    /** As a route's: false goes direct whatever HTTPS_PROXY says; absent, the environment decides. */
    outboundProxy: outboundProxySchema.optional(),
    tokenCache: tokenCacheSchema.optional(),
  })
  .superRefine((options, ctx) => checkAuth(options.auth, [], ctx));

/** `/a/` and `/a` serve the same requests, so they count as one prefix. */
export function normalisePrefix(prefix: string): string {
  return prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
}

export type RawConfig = z.infer<typeof configSchema>;
export type RawRoute = z.infer<typeof routeSchema>;
export type RawAuth = z.infer<typeof authSchema>;
/** A route's `auth` as written (before defaults): what createTokenSource and the Fastify plugin take. */
export type AuthOptions = z.input<typeof authSchema>;
/** A route's `tls` as written. */
export type TlsOptions = z.input<typeof routeSchema.shape.tls>;
/** A route's `outboundProxy` as written: false, or a mapping with url or urlFile and noProxy. */
export type OutboundProxyOptions = z.input<typeof outboundProxySchema>;
export type RawListen = z.infer<typeof listenSchema>;
export type RawTracing = z.infer<typeof tracingSchema>;
export type RawTls = z.infer<typeof tlsSchema>;
export type RawTokenCache = z.infer<typeof tokenCacheSchema>;
/** The top-level `tokenCache` as written (before defaults): what createTokenSource takes. */
export type TokenCacheOptions = z.input<typeof tokenCacheSchema>;
