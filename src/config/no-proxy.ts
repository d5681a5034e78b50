// Which targets bypass the outbound proxy: a NO_PROXY list as curl reads it, plus host:port and
// `*` anywhere in the list. Entries are host names and domains (`corp.example` and `.corp.example`
// both match corp.example and every name under it; `*.corp.example` is read the same way), IP
// addresses and CIDR ranges (matched against IP-literal targets only: no name is ever resolved to
// decide), any of them with `:port`, and `*` (everything). Nothing bypasses unless it is listed,
// not even localhost. Decided once per target origin, never per request.
//
// Own code rather than undici's EnvHttpProxyAgent: it treats `*` only as the whole value, has no
// CIDR ranges, and reads process.env at every request.

import { BlockList, isIP } from 'node:net';
import { parseCidr } from './cidr.js';

type Entry =
  | { readonly kind: 'all' }
  | { readonly kind: 'domain'; readonly domain: string; readonly port: number }
  | { readonly kind: 'range'; readonly list: BlockList; readonly family: 'ipv4' | 'ipv6'; readonly port: number };

/** Host names as DNS has them: letters, digits, '-' and '_' in dot-separated labels. */
const hostName = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

export class NoProxy {
  /** The list as given, for logs and `check`. */
  readonly entries: readonly string[];
  readonly #parsed: readonly Entry[];

  private constructor(entries: readonly string[], parsed: readonly Entry[]) {
    this.entries = entries;
    this.#parsed = parsed;
  }

  static readonly none = new NoProxy([], []);

  /**
   * Parses a comma- (or blank-) separated list, or a list of entries. An entry that is none of the
   * forms above is passed to `invalid` (config: a start-up error) and otherwise ignored (the
   * environment: curl ignores what it cannot use too).
   */
  static parse(value: string | readonly string[], invalid?: (entry: string, index: number, why: string) => void): NoProxy {
    const entries = (typeof value === 'string' ? value.split(/[\s,]+/) : value.map((entry) => entry.trim())).filter((entry) => entry !== '');
    const parsed: Entry[] = [];
    entries.forEach((entry, index) => {
      const result = parseEntry(entry);
      if (typeof result === 'string') invalid?.(entry, index, result);
      else parsed.push(result);
    });
    return new NoProxy(entries, parsed);
  }

  get empty(): boolean {
    return this.#parsed.length === 0;
  }

  /** True when a connection to hostname:port goes direct. `hostname` as URL gives it (IPv6 in brackets). */
  bypasses(hostname: string, port: number): boolean {
    if (this.#parsed.length === 0) return false;
    let host = hostname.toLowerCase();
    if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
    else if (host.endsWith('.')) host = host.slice(0, -1);
    const ip = isIP(host);
    for (const entry of this.#parsed) {
      if (entry.kind === 'all') return true;
      if (entry.port !== 0 && entry.port !== port) continue;
      if (entry.kind === 'domain') {
        if (ip === 0 && (host === entry.domain || host.endsWith(`.${entry.domain}`))) return true;
      } else if (ip !== 0 && (ip === 4) === (entry.family === 'ipv4') && entry.list.check(host, entry.family)) {
        return true;
      }
    }
    return false;
  }

  toJSON(): string {
    return this.entries.join(',');
  }
}

function parseEntry(text: string): Entry | string {
  const entry = text.toLowerCase();
  if (entry === '*') return { kind: 'all' };
  // [v6], [v6]:port, [v6/len]
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) return rangeEntry(bracketed[1] as string, bracketed[2]);
  if (entry.startsWith('[')) return 'is not an IPv6 address in brackets such as [::1] or [::1]:8080';
  // A bare IPv6 address or range has several colons and takes no port.
  if (entry.split(':').length > 2) return rangeEntry(entry, undefined);
  const [host, port] = entry.split(':') as [string, string | undefined];
  if (port !== undefined && !/^\d+$/.test(port)) return 'has something other than a port number after ":"';
  if (host.includes('/') || isIP(host) !== 0) return rangeEntry(host, port);
  const domain = host.replace(/^\*?\./, '').replace(/\.$/, '');
  if (!hostName.test(domain)) return 'must be a host name, a domain such as .corp.example, an IP address, a CIDR range such as 10.0.0.0/8, host:port, or *';
  return withPort({ kind: 'domain', domain, port: 0 }, port);
}

function rangeEntry(text: string, port: string | undefined): Entry | string {
  const cidr = parseCidr(text);
  if (!cidr) return 'is not a valid IP address or CIDR range (such as 10.0.0.0/8 or fd00::/8)';
  const list = new BlockList();
  list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  return withPort({ kind: 'range', list, family: cidr.family, port: 0 }, port);
}

function withPort<T extends Entry & { port: number }>(entry: T, port: string | undefined): T | string {
  if (port === undefined) return entry;
  const number = Number(port);
  if (!Number.isInteger(number) || number < 1 || number > 65_535) return 'has a port outside 1-65535';
  return { ...entry, port: number };
}
