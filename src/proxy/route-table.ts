// Which route serves a request: the route whose prefix the path is under, the longest prefix
// winning (as "/api/v2" over "/api" over "/"). One table per config generation, built once; the
// proxy has a single catch-all route and asks the table, so routes can come and go at a reload
// (Fastify cannot remove a route once it listens).
//
// Per request: the routes whose prefix starts with the path's first character are tried, longest
// first, with one startsWith each; then "/", which serves any path. Only a path that is
// percent-encoded near its start is compared character by character, decoding as it goes
// (paths.ts), with every route.

import { isUnderPrefix } from './paths.js';

const slash = 0x2f;
const question = 0x3f;
const percentSign = 0x25;

export interface Prefixed {
  /** "/" or a path without a trailing slash, as RouteConfig.prefix. */
  readonly prefix: string;
}

export class RouteTable<R extends Prefixed> {
  /** Every route but "/", longest prefix first. */
  readonly #routes: readonly R[];
  /** The same, by the character after the prefix's "/" (a prefix is ASCII: letters, digits, . _ ~ -). */
  readonly #byFirst: readonly (readonly R[] | undefined)[];
  /** The "/" route, if there is one. */
  readonly #root: R | undefined;

  constructor(routes: readonly R[]) {
    this.#routes = routes.filter((route) => route.prefix !== '/').sort((a, b) => b.prefix.length - a.prefix.length);
    // Dense, so that indexing it stays a plain array load.
    const byFirst: (R[] | undefined)[] = new Array<R[] | undefined>(128).fill(undefined);
    for (const route of this.#routes) (byFirst[route.prefix.charCodeAt(1)] ??= []).push(route);
    this.#byFirst = byFirst;
    this.#root = routes.find((route) => route.prefix === '/');
  }

  /** The route for request target `url` (path and query as on the request line); undefined when none serves it. */
  match(url: string): R | undefined {
    if (this.#routes.length === 0) return this.#root;
    const first = url.charCodeAt(1);
    if (first === percentSign) return this.#matchEncoded(url);
    const candidates = this.#byFirst[first];
    if (candidates !== undefined) {
      // Where startsWith failed, only a "%" inside the first prefix.length characters can make
      // the path match as decoded (-2: not looked for yet).
      let percent = -2;
      for (let i = 0; i < candidates.length; i++) {
        const route = candidates[i] as R;
        const prefix = route.prefix;
        if (url.startsWith(prefix)) {
          const next = url.charCodeAt(prefix.length);
          if (next === slash || next === question || Number.isNaN(next)) return route;
          continue;
        }
        if (percent === -2) percent = url.indexOf('%');
        if (percent >= 0 && percent < prefix.length && isUnderPrefix(url, prefix)) return route;
      }
    }
    return this.#root;
  }

  /** A path whose first character is percent-encoded: any route may be its. */
  #matchEncoded(url: string): R | undefined {
    for (const route of this.#routes) if (isUnderPrefix(url, route.prefix)) return route;
    return this.#root;
  }
}
