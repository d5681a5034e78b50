// config file / env → parse (yaml) → interpolate ${VAR} → validate (schema) → presets → SidecarConfig.
// Every problem is collected and reported at once, one line each, led by the field's path.

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { outboundProxyResolver, type OutboundProxySettings } from './outbound-proxy.js';
import { credentialUrlProblem } from './endpoint-url.js';
import { workersVariable } from './env.js';
import { interpolate } from './interpolate.js';
import { staticPreset } from './presets.js';
import { configSchema, inProcessSchema, normalisePrefix, type RawAuth, type RawRoute } from './schema.js';
import { SecretSource } from './secret.js';
import { resolveInbound, resolveSigningKey, resolveTls } from './security.js';
import { resolveTokenCache } from './token-cache.js';
import { resolveTracing } from './tracing.js';
import type { AuthConfig, RouteConfig, SidecarConfig, TlsConfig, TokenCacheConfig, TokenExchangeConfig } from './types.js';
import { defaultAuthorityHost, entraTokenUrl, expandWorkloadIdentity } from './workload-identity.js';

export interface LoadOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Names problems by the environment variable that set a field (see env.ts). */
  readonly fieldNames?: ReadonlyMap<string, string>;
}

/** Reads, validates and resolves a YAML (or JSON) config file. Throws ConfigError. */
export function loadConfigFile(file: string, options: LoadOptions = {}): SidecarConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    throw new ConfigError([`${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError([`${file}: must be a mapping with at least "routes"`]);
  }
  return resolveConfig(parsed, options);
}

/** Validates and resolves an already-parsed config object (strings may still hold ${VAR}). */
export function resolveConfig(input: unknown, options: LoadOptions = {}): SidecarConfig {
  const env = options.env ?? process.env;
  const problems: string[] = [];
  const { input: overridden, fieldNames } = deploymentOverrides(input, env, options.fieldNames);
  const expanded = expandWorkloadIdentity(interpolate(overridden, env, problems), env);
  const allNames = new Map([...(fieldNames ?? []), ...expanded.fieldNames]);
  options = { ...options, ...(allNames.size > 0 ? { fieldNames: allNames } : {}) };
  const result = configSchema.safeParse(expanded.input);
  if (!result.success) {
    // A field whose ${VAR} is unset is reported once, for the variable, not again by the schema.
    const unset = new Set(problems.map((p) => p.slice(0, p.indexOf(':'))));
    problems.push(...result.error.issues.map(formatIssue).filter((line) => !unset.has(line.slice(0, line.indexOf(':')))));
  }
  if (!result.success) throw namedError(problems, options.fieldNames);
  const raw = result.data;
  const outboundProxy = outboundProxyResolver(raw.outboundProxy, env, problems);
  const routes = raw.routes.map((route, index) => resolveRoute(route, `routes[${index}]`, problems, outboundProxy(route.outboundProxy, `routes[${index}].outboundProxy`)));
  const inbound = resolveInbound(raw.listen, problems);
  const tracing = resolveTracing(raw.tracing, env, problems);
  const tokenCache = raw.tokenCache && resolveTokenCache(raw.tokenCache, 'tokenCache', problems);
  if (problems.length > 0) throw namedError(problems, options.fieldNames);
  return deepFreeze({
    listen: { host: raw.listen.host, port: raw.listen.port, ...(raw.listen.socket === undefined ? {} : { socket: raw.listen.socket, mode: raw.listen.mode }) },
    inbound,
    admin: raw.admin,
    logLevel: raw.logLevel,
    drainTimeoutMs: raw.drainTimeoutMs,
    workers: raw.workers,
    ...(tracing ? { tracing } : {}),
    routes,
    ...(tokenCache ? { tokenCache } : {}),
  });
}

/**
 * Settings that belong to the deployment rather than the file win over it when their variable is
 * set (BEARER_SIDECAR_WORKERS: the pod's CPU sizing); a bad value is named by its variable.
 */
function deploymentOverrides(input: unknown, env: NodeJS.ProcessEnv, fieldNames: ReadonlyMap<string, string> | undefined): { input: unknown; fieldNames: ReadonlyMap<string, string> | undefined } {
  // Set means present in the environment (as config/index.ts decides there is an environment config).
  const workers = Object.hasOwn(env, workersVariable) ? env[workersVariable] : undefined;
  if (workers === undefined || workers === '' || input === null || typeof input !== 'object' || Array.isArray(input)) return { input, fieldNames };
  const value = /^\d+$/.test(workers.trim()) ? Number(workers.trim()) : workers.trim();
  // Escaped: the variable's value is taken literally, never interpolated.
  return { input: { ...input, workers: typeof value === 'string' ? value.replaceAll('${', () => '$${') : value }, fieldNames: new Map([...(fieldNames ?? []), ['workers', workersVariable]]) };
}

/** What the library takes from a program, resolved (see inProcessSchema). */
export interface InProcessConfig {
  readonly auth: AuthConfig;
  readonly tls: TlsConfig;
  readonly replayBodyLimitBytes: number;
  /** `outboundProxy` given, else HTTPS_PROXY / HTTP_PROXY / NO_PROXY, as the sidecar reads them. */
  readonly outboundProxy: OutboundProxySettings;
  readonly tokenCache?: TokenCacheConfig;
}

/**
 * Validates and resolves a route's `auth` (and the plugin's `tls`, `replayBodyLimitBytes`) given in
 * code, by the config file's rules and with its messages, each led by the field's path
 * (`auth.clientSecret: is required (or clientSecretFile)`). Strings are taken as they are: no
 * ${VAR} interpolation (that is the config file's). Secret and CA files are read once here, as at
 * start-up. Throws ConfigError.
 */
export function resolveInProcessOptions(input: { auth?: unknown; tls?: unknown; replayBodyLimitBytes?: unknown; outboundProxy?: unknown; tokenCache?: unknown }, env: NodeJS.ProcessEnv = process.env): InProcessConfig {
  const expanded = expandWorkloadIdentity(input, env);
  const fieldNames = expanded.fieldNames.size > 0 ? expanded.fieldNames : undefined;
  const result = inProcessSchema.safeParse(expanded.input);
  if (!result.success) throw namedError(result.error.issues.map(formatIssue), fieldNames);
  const problems: string[] = [];
  const resolved = {
    auth: resolveAuth(result.data.auth, 'auth', problems),
    tls: resolveTls(result.data.tls, 'tls', problems),
    replayBodyLimitBytes: result.data.replayBodyLimitBytes,
    outboundProxy: outboundProxyResolver(undefined, env, problems)(result.data.outboundProxy, 'outboundProxy'),
    ...(result.data.tokenCache ? { tokenCache: resolveTokenCache(result.data.tokenCache, 'tokenCache', problems) } : {}),
  };
  if (problems.length > 0) throw namedError(problems, fieldNames);
  return deepFreeze(resolved);
}

function resolveRoute(route: RawRoute, at: string, problems: string[], outboundProxy: OutboundProxySettings): RouteConfig {
  const preset = staticPreset(route.auth.preset);
  const upstream = new URL((route.upstream ?? preset?.upstream) as string);
  if (upstream.search || upstream.hash) problems.push(`${at}.upstream: must not carry a query string or fragment`);
  if (upstream.username || upstream.password) problems.push(`${at}.upstream: must not carry credentials`);
  return {
    name: route.name,
    prefix: normalisePrefix(route.prefix),
    upstreamOrigin: upstream.origin,
    upstreamBasePath: upstream.pathname.replace(/\/+$/, ''),
    websocket: route.websocket,
    auth: resolveAuth(route.auth, `${at}.auth`, problems),
    inject: { header: route.inject.header.toLowerCase(), scheme: route.inject.scheme },
    connectTimeoutMs: route.connectTimeoutMs,
    responseTimeoutMs: route.responseTimeoutMs,
    tls: resolveTls(route.tls, `${at}.tls`, problems),
    forwardedHeaders: route.forwardedHeaders,
    forwardCookies: route.forwardCookies,
    maxBodyBytes: route.maxBodyBytes,
    replayBodyLimitBytes: route.replayBodyLimitBytes,
    outboundProxy,
    tokenCache: route.tokenCache !== false,
  };
}

function resolveAuth(auth: RawAuth, at: string, problems: string[]): AuthConfig {
  const preset = staticPreset(auth.preset);
  // A tokenUrl given wins over an issuer; an issuer given wins over a preset's tokenUrl.
  const tokenUrl = auth.tokenUrl ?? (auth.issuer === undefined ? (preset?.tokenUrl ?? presetTokenUrl(auth)) : undefined);
  const issuer = tokenUrl === undefined ? auth.issuer : undefined;
  if (tokenUrl !== undefined) checkCredentialUrl(tokenUrl, `${at}.tokenUrl`, auth.allowInsecureTokenUrl, problems);
  if (issuer !== undefined) checkIssuer(issuer, `${at}.issuer`, auth.allowInsecureTokenUrl, problems);
  const clientId = (auth.clientId ?? auth.clientIdFile) !== undefined ? secretSource(auth.clientId, auth.clientIdFile, `${at}.clientIdFile`, problems) : undefined;
  const method = auth.method ?? preset?.method ?? 'client_secret_basic';
  const endpoint = tokenUrl ?? issuer;
  if (method === 'tls_client_auth' && endpoint !== undefined && new URL(endpoint).protocol !== 'https:') {
    problems.push(`${at}.${tokenUrl === undefined ? 'issuer' : 'tokenUrl'}: tls_client_auth needs https:// (the client certificate goes in the TLS handshake)`);
  }
  // The schema has checked which credentials each method has.
  const secretBased = method === 'client_secret_basic' || method === 'client_secret_post';
  const clientSecret = secretBased ? secretSource(auth.clientSecret, auth.clientSecretFile, `${at}.clientSecretFile`, problems) : undefined;
  const signing =
    method === 'private_key_jwt' ? resolveSigningKey({ privateKeyFile: auth.privateKeyFile as string, signingAlgorithm: auth.signingAlgorithm, certificateFile: auth.certificateFile }, at, problems) : undefined;
  const clientAssertion = method === 'client_assertion' ? secretSource(undefined, auth.clientAssertionFile, `${at}.clientAssertionFile`, problems) : undefined;
  if (auth.retry.minDelayMs > auth.retry.maxDelayMs) problems.push(`${at}.retry.minDelayMs: must not exceed maxDelayMs`);
  return {
    preset: auth.preset as AuthConfig['preset'],
    tokenUrl,
    issuer,
    method,
    methodSet: (auth.method ?? preset?.method) !== undefined,
    clientId,
    clientSecret,
    privateKey: signing?.privateKey,
    keyId: auth.keyId,
    certificate: signing?.certificate,
    signingAlgorithm: auth.signingAlgorithm,
    assertionAudience: auth.assertionAudience ?? 'tokenEndpoint',
    assertionIssuer: auth.issuer,
    clientAssertion,
    grantType: auth.grantType,
    tokenExchange: auth.grantType === 'token_exchange' ? resolveTokenExchange(auth, at, problems) : undefined,
    resource: auth.resource,
    scope: auth.scope || undefined,
    audience: auth.audience || undefined,
    extraParams: auth.extraParams,
    refreshAheadRatio: auth.refreshAheadRatio,
    refreshAheadMinSeconds: auth.refreshAheadMinSeconds,
    safetyMarginSeconds: auth.safetyMarginSeconds,
    defaultExpiresInSeconds: auth.defaultExpiresInSeconds ?? preset?.defaultExpiresInSeconds ?? 3_600,
    maxLifetimeSeconds: auth.maxLifetimeSeconds,
    timeoutMs: auth.timeoutMs,
    tokenWaitMs: auth.tokenWaitMs,
    refreshOn401CooldownSeconds: auth.refreshOn401CooldownSeconds,
    retry: auth.retry,
    allowInsecureTokenUrl: auth.allowInsecureTokenUrl,
    tls: resolveTls(auth.tls, `${at}.tls`, problems),
  };
}

/** The token endpoint a preset builds from the route's settings (entra-workload-identity's tenant). */
function presetTokenUrl(auth: RawAuth): string | undefined {
  return auth.tenantId === undefined ? undefined : entraTokenUrl(auth.authorityHost ?? defaultAuthorityHost, auth.tenantId);
}

/** The subject token type when none is given: a JWT, as a Kubernetes service-account token is. */
export const defaultSubjectTokenType = 'urn:ietf:params:oauth:token-type:jwt';

function resolveTokenExchange(auth: RawAuth, at: string, problems: string[]): TokenExchangeConfig {
  return {
    subjectToken: secretSource(undefined, auth.subjectTokenFile, `${at}.subjectTokenFile`, problems),
    subjectTokenType: auth.subjectTokenType ?? defaultSubjectTokenType,
    actorToken: auth.actorTokenFile === undefined ? undefined : secretSource(undefined, auth.actorTokenFile, `${at}.actorTokenFile`, problems),
    actorTokenType: auth.actorTokenFile === undefined ? undefined : (auth.actorTokenType ?? defaultSubjectTokenType),
    requestedTokenType: auth.requestedTokenType,
  };
}

function secretSource(value: string | undefined, file: string | undefined, fileField: string, problems: string[]): SecretSource {
  if (value !== undefined) return SecretSource.inline(value);
  const source = SecretSource.fromFile(file as string);
  try {
    source.read();
  } catch (err) {
    problems.push(`${fileField}: ${(err as Error).message}`);
  }
  return source;
}

function checkCredentialUrl(value: string, field: string, allowInsecure: boolean, problems: string[], risk?: string): void {
  const problem = credentialUrlProblem(new URL(value), allowInsecure, risk);
  if (problem) problems.push(`${field}: ${problem}`);
}

/** RFC 8414 §2: an issuer is an https URL without query or fragment (http on loopback, as token URLs). */
function checkIssuer(value: string, field: string, allowInsecure: boolean, problems: string[]): void {
  const url = new URL(value);
  if (url.search || url.hash) problems.push(`${field}: must not carry a query string or fragment (RFC 8414 §2)`);
  else checkCredentialUrl(value, field, allowInsecure, problems, 'would let anyone on the network path change the token endpoint the client secret is sent to');
}

function formatIssue(issue: z.core.$ZodIssue): string {
  const path = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => `${path ? `${path}.` : ''}${key}: unknown field`).join('\n');
  }
  if (issue.code === 'invalid_type' && issue.message.endsWith('received undefined')) return `${path}: is required`;
  return `${path || '(root)'}: ${issue.message}`;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (part !== '') out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

function namedError(problems: string[], fieldNames: ReadonlyMap<string, string> | undefined): ConfigError {
  const lines = problems.flatMap((p) => p.split('\n'));
  if (!fieldNames) return new ConfigError(lines);
  return new ConfigError(
    lines.map((line) => {
      const field = line.slice(0, line.indexOf(':'));
      // A list item is named by the variable that set the list.
      const name = fieldNames.get(field) ?? fieldNames.get(field.replace(/\[\d+\]$/, ''));
      return name ? `${name} (${line})` : line;
    }),
  );
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !(value instanceof SecretSource) && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}
