// The configuration file's shape, validated once at start-up. Field names are a contract with
// users and other tools: add fields freely, never rename. Defaults live here and only here.

import * as z from 'zod';
import { parseCidr } from './cidr.js';
import { signingAlgorithms } from './signing-algorithms.js';
import { presetNames } from './presets.js';

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
  method: z.enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth']).optional(),
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
      if (!route.upstream && !route.auth.preset) ctx.addIssue({ code: 'custom', path: ['routes', index, 'upstream'], message: 'is required (or set auth.preset)' });
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
  need(auth.tokenUrl ?? auth.issuer ?? auth.preset, 'tokenUrl', 'is required (or set issuer, or a preset)');
  if (auth.clientId && auth.clientIdFile) ctx.addIssue({ code: 'custom', path: [...at, 'auth', 'clientIdFile'], message: 'set clientId or clientIdFile, not both' });
  else need(auth.clientId ?? auth.clientIdFile, 'clientId', 'is required (or clientIdFile)');
  checkCredentials(auth, [...at, 'auth'], ctx);
}

/** What each client authentication method needs, and the fields it would silently ignore. */
function checkCredentials(auth: RawAuth, at: (string | number)[], ctx: z.RefinementCtx): void {
  const problem = (path: string[], message: string) => ctx.addIssue({ code: 'custom', path: [...at, ...path], message });
  // Presets name only secret-based methods.
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
  } else {
    for (const field of ['privateKeyFile', 'keyId', 'certificateFile', 'signingAlgorithm'] as const) {
      if (auth[field] !== undefined) problem([field], 'applies only with method: private_key_jwt');
    }
  }
  if (method === 'tls_client_auth' && !auth.tls.certFile && !auth.tls.keyFile) {
    problem(['tls', 'certFile'], 'is required with method: tls_client_auth (the client certificate, with tls.keyFile)');
  }
}

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
export type RawListen = z.infer<typeof listenSchema>;
export type RawTls = z.infer<typeof tlsSchema>;
