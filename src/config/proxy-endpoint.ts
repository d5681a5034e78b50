// One outbound (forward) proxy: where it is, and the Proxy-Authorization its URL's credentials
// make. A proxy is only ever named by host:port: the URL, which may carry a password, is not kept,
// and the object serialises (JSON, util.inspect, String) as host:port alone.

import { inspect } from 'node:util';

export class ProxyEndpoint {
  /** host:port, the only way the proxy is named in logs, errors and `check`. */
  readonly name: string;
  /** scheme://host:port, without credentials. */
  readonly origin: string;
  readonly #authorization: string | undefined;

  private constructor(url: URL, authorization: string | undefined) {
    // IPv6 in brackets, as URL gives it; the scheme's port when the URL names none.
    this.name = `${url.hostname}:${url.port || (url.protocol === 'https:' ? 443 : 80)}`;
    this.origin = `${url.protocol}//${this.name}`;
    this.#authorization = authorization;
  }

  /**
   * Reads a proxy URL; a string is the problem, worded without the URL (it may hold a password).
   * `fromEnvironment`: as curl takes HTTPS_PROXY, a URL without a scheme is http:// and a path is ignored.
   */
  static parse(text: string, { fromEnvironment = false } = {}): ProxyEndpoint | string {
    const trimmed = text.trim();
    let url: URL;
    try {
      url = new URL(fromEnvironment && !/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? `http://${trimmed}` : trimmed);
    } catch {
      return 'is not a URL; write it as http://host:port or http://user:password@host:port';
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return `must be an http:// or https:// proxy URL (${url.protocol.slice(0, -1)} proxies are not supported)`;
    if (url.hostname === '') return 'must name the proxy host, as in http://proxy.corp.example:3128';
    if (!fromEnvironment && (url.pathname !== '/' || url.search || url.hash)) return 'must be scheme://[user:password@]host:port, with no path, query or fragment';
    let authorization: string | undefined;
    if (url.username || url.password) {
      try {
        // Percent-encoded in the URL (p%40ss is p@ss); sent decoded, as curl does.
        authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
      } catch {
        return 'has a user or password that is not valid percent-encoding (write @ as %40, : as %3A, % as %25)';
      }
    }
    return new ProxyEndpoint(url, authorization);
  }

  /** The same endpoint in a cluster worker (workers/messages.ts): from its origin and proxyAuthorization(). */
  static fromParts(origin: string, authorization: string | undefined): ProxyEndpoint {
    return new ProxyEndpoint(new URL(origin), authorization);
  }

  /** The Proxy-Authorization header value, when the URL carried credentials. Never log it. */
  proxyAuthorization(): string | undefined {
    return this.#authorization;
  }

  /** Same proxy, same credentials (config/compare.ts: a reload keeps what was built for an equal one). */
  equals(other: unknown): boolean {
    return other instanceof ProxyEndpoint && other.origin === this.origin && other.#authorization === this.#authorization;
  }

  toJSON(): string {
    return this.name;
  }

  toString(): string {
    return this.name;
  }

  [inspect.custom](): string {
    return `ProxyEndpoint(${this.name})`;
  }
}
