// config file / env → parse (yaml) → interpolate ${VAR} → validate (schema) → presets → SidecarConfig.
// Every problem is collected and reported at once, one line each, led by the field's path.

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { interpolate } from './interpolate.js';
import { presets } from './presets.js';
import { configSchema, normalisePrefix, type RawAuth, type RawRoute } from './schema.js';
import { SecretSource } from './secret.js';
import { resolveInbound, resolveSigningKey, resolveTls } from './security.js';
import type { AuthConfig, RouteConfig, SidecarConfig } from './types.js';

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
  const interpolated = interpolate(input, env, problems);
  const result = configSchema.safeParse(interpolated);
  if (!result.success) {
    // A field whose ${VAR} is unset is reported once, for the variable, not again by the schema.
    const unset = new Set(problems.map((p) => p.slice(0, p.indexOf(':'))));
    problems.push(...result.error.issues.map(formatIssue).filter((line) => !unset.has(line.slice(0, line.indexOf(':')))));
  }
  if (!result.success) throw namedError(problems, options.fieldNames);
  const raw = result.data;
  const routes = raw.routes.map((route, index) => resolveRoute(route, `routes[${index}]`, problems));
  const inbound = resolveInbound(raw.listen, problems);
  if (problems.length > 0) throw namedError(problems, options.fieldNames);
  return deepFreeze({
    listen: { host: raw.listen.host, port: raw.listen.port, ...(raw.listen.socket === undefined ? {} : { socket: raw.listen.socket, mode: raw.listen.mode }) },
    inbound,
    admin: raw.admin,
    logLevel: raw.logLevel,
    drainTimeoutMs: raw.drainTimeoutMs,
    routes,
  });
}

function resolveRoute(route: RawRoute, at: string, problems: string[]): RouteConfig {
  const preset = route.auth.preset ? presets[route.auth.preset as keyof typeof presets] : undefined;
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
    connectTimeoutMs: route.connectTimeoutMs,
    responseTimeoutMs: route.responseTimeoutMs,
    tls: resolveTls(route.tls, `${at}.tls`, problems),
    forwardedHeaders: route.forwardedHeaders,
    forwardCookies: route.forwardCookies,
    maxBodyBytes: route.maxBodyBytes,
    replayBodyLimitBytes: route.replayBodyLimitBytes,
  };
}

function resolveAuth(auth: RawAuth, at: string, problems: string[]): AuthConfig {
  const preset = auth.preset ? presets[auth.preset as keyof typeof presets] : undefined;
  const tokenUrl = (auth.tokenUrl ?? preset?.tokenUrl) as string;
  const url = new URL(tokenUrl);
  // Credentials in the URL would be printed by `check` and logged; they belong in clientId/clientSecret.
  if (url.username || url.password) problems.push(`${at}.tokenUrl: must not carry credentials (use clientId and clientSecret)`);
  if (url.protocol === 'http:' && !isLoopback(url.hostname) && !auth.allowInsecureTokenUrl) {
    problems.push(`${at}.tokenUrl: http:// would send the client secret in clear text; use https:// or set allowInsecureTokenUrl: true`);
  }
  const clientId = secretSource(auth.clientId, auth.clientIdFile, `${at}.clientIdFile`, problems);
  const method = auth.method ?? preset?.method ?? 'client_secret_basic';
  if (method === 'tls_client_auth' && url.protocol !== 'https:') problems.push(`${at}.tokenUrl: tls_client_auth needs https:// (the client certificate goes in the TLS handshake)`);
  // The schema has checked which credentials each method has.
  const secretBased = method === 'client_secret_basic' || method === 'client_secret_post';
  const clientSecret = secretBased ? secretSource(auth.clientSecret, auth.clientSecretFile, `${at}.clientSecretFile`, problems) : undefined;
  const signing =
    method === 'private_key_jwt' ? resolveSigningKey({ privateKeyFile: auth.privateKeyFile as string, signingAlgorithm: auth.signingAlgorithm, certificateFile: auth.certificateFile }, at, problems) : undefined;
  if (auth.retry.minDelayMs > auth.retry.maxDelayMs) problems.push(`${at}.retry.minDelayMs: must not exceed maxDelayMs`);
  return {
    preset: auth.preset as AuthConfig['preset'],
    tokenUrl,
    method,
    clientId,
    clientSecret,
    privateKey: signing?.privateKey,
    keyId: auth.keyId,
    certificate: signing?.certificate,
    signingAlgorithm: auth.signingAlgorithm,
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
    tls: resolveTls(auth.tls, `${at}.tls`, problems),
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

export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
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
