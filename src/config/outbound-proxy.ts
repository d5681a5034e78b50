// Which outbound proxy a route's connections use, resolved once at start-up: the route's
// `outboundProxy`, else the top-level one, else the environment (HTTPS_PROXY, HTTP_PROXY,
// NO_PROXY, the lower-case form of each winning as in curl). `outboundProxy: false` means direct,
// whatever the environment says. This is the only place that reads those variables.

import { SecretSource } from './secret.js';
import { NoProxy } from './no-proxy.js';
import { ProxyEndpoint } from './proxy-endpoint.js';

export interface OutboundProxySettings {
  /** For http:// and ws:// targets; undefined: direct. */
  readonly http: ProxyEndpoint | undefined;
  /** For https:// and wss:// targets; undefined: direct. */
  readonly https: ProxyEndpoint | undefined;
  /** Targets that go direct even so. */
  readonly noProxy: NoProxy;
}

/** No proxy at all: every connection is direct, exactly as without this feature. */
export const direct: OutboundProxySettings = Object.freeze({ http: undefined, https: undefined, noProxy: NoProxy.none });

/** The config file's `outboundProxy` field, as the schema passes it. */
export type RawOutboundProxy = false | { readonly url?: string | undefined; readonly urlFile?: string | undefined; readonly noProxy?: string | readonly string[] | undefined };

/** The proxy for a connection to `target` (an http(s):// or ws(s):// URL or origin), or undefined to go direct. */
export function proxyFor(target: URL | string, settings: OutboundProxySettings): ProxyEndpoint | undefined {
  if (settings.http === undefined && settings.https === undefined) return undefined;
  const url = typeof target === 'string' ? new URL(target) : target;
  const secure = url.protocol === 'https:' || url.protocol === 'wss:';
  const proxy = secure ? settings.https : settings.http;
  if (proxy === undefined) return undefined;
  const port = url.port ? Number(url.port) : secure ? 443 : 80;
  return settings.noProxy.bypasses(url.hostname, port) ? undefined : proxy;
}

/** Resolves a config's `outboundProxy` (top level or a route's); problems are `at.field: what`. Never echoes the URL. */
export function resolveOutboundProxy(raw: RawOutboundProxy, at: string, problems: string[]): OutboundProxySettings {
  if (raw === false) return direct;
  let text: string | undefined;
  if ((raw.url === undefined) === (raw.urlFile === undefined)) {
    problems.push(`${at}.url: set url or urlFile (exactly one), or write outboundProxy: false for no proxy`);
  } else if (raw.url !== undefined) {
    text = raw.url;
  } else {
    try {
      // Read as the credential files are: trimmed, and named by path, never by content.
      text = SecretSource.fromFile(raw.urlFile as string).read();
    } catch (err) {
      problems.push(`${at}.urlFile: ${(err as Error).message}`);
    }
  }
  const field = raw.url !== undefined ? `${at}.url` : `${at}.urlFile`;
  const proxy = text === undefined ? undefined : ProxyEndpoint.parse(text);
  if (typeof proxy === 'string') problems.push(`${field}: ${raw.urlFile !== undefined ? `the file's content ${proxy}` : proxy}`);
  const noProxy = NoProxy.parse(raw.noProxy ?? [], (entry, index, why) =>
    problems.push(`${at}.noProxy${typeof raw.noProxy === 'string' ? '' : `[${index}]`}: "${entry}" ${why}`),
  );
  const endpoint = proxy instanceof ProxyEndpoint ? proxy : undefined;
  return { http: endpoint, https: endpoint, noProxy };
}

/** HTTPS_PROXY, HTTP_PROXY and NO_PROXY (lower case first, as curl reads them); problems are `VARIABLE: what`. */
export function environmentProxySettings(env: NodeJS.ProcessEnv, problems: string[]): OutboundProxySettings {
  const read = (name: string): { name: string; value: string } | undefined => {
    for (const variable of [name.toLowerCase(), name]) {
      const value = env[variable];
      if (value !== undefined && value.trim() !== '') return { name: variable, value };
    }
    return undefined;
  };
  const endpoint = (name: string): ProxyEndpoint | undefined => {
    const found = read(name);
    if (!found) return undefined;
    const proxy = ProxyEndpoint.parse(found.value, { fromEnvironment: true });
    if (typeof proxy === 'string') {
      problems.push(`${found.name}: ${proxy}`);
      return undefined;
    }
    return proxy;
  };
  const http = endpoint('HTTP_PROXY');
  const https = endpoint('HTTPS_PROXY');
  if (!http && !https) return direct;
  // Entries curl cannot use either are ignored, as curl does.
  return { http, https, noProxy: NoProxy.parse(read('NO_PROXY')?.value ?? '') };
}

/**
 * Resolves each route's settings: its own `outboundProxy`, else the top-level one, else the
 * environment's. The top level and the environment are read once, and only when a route uses them.
 */
export function outboundProxyResolver(topLevel: RawOutboundProxy | undefined, env: NodeJS.ProcessEnv, problems: string[]): (route: RawOutboundProxy | undefined, at: string) => OutboundProxySettings {
  const shared = topLevel === undefined ? undefined : resolveOutboundProxy(topLevel, 'outboundProxy', problems);
  let environment: OutboundProxySettings | undefined;
  return (route, at) => {
    if (route !== undefined) return resolveOutboundProxy(route, at, problems);
    return shared ?? (environment ??= environmentProxySettings(env, problems));
  };
}
