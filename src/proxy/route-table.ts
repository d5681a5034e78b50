// Which route serves a request: the route whose prefix the path is under, the longest prefix
// winning (as "/api/v2" over "/api" over "/"). One table per config generation, built once; the
// proxy has a single catch-all route and asks the table, so routes can come and go at a reload
// (Fastify cannot remove a route once it listens).
//
// Per request this is one comparison per route, longest prefix first, each stopping at the first
// character that differs; with one route it is a single comparison, or none for "/".

import { isUnderPrefix } from './paths.js';

export interface Prefixed {
  /** "/" or a path without a trailing slash, as RouteConfig.prefix. */
  readonly prefix: string;
}

export class RouteTable<R extends Prefixed> {
  /** Longest prefix first; "/" (which matches everything) last. */
  readonly #routes: readonly R[];
  /** The "/" route, if there is one. */
  readonly #root: R | undefined;

  constructor(routes: readonly R[]) {
    this.#routes = routes.filter((route) => route.prefix !== '/').sort((a, b) => b.prefix.length - a.prefix.length);
    this.#root = routes.find((route) => route.prefix === '/');
  }

  /** The route for request target `url` (path and query as on the request line); undefined when none serves it. */
  match(url: string): R | undefined {
    const routes = this.#routes;
    for (let i = 0; i < routes.length; i++) {
      const route = routes[i] as R;
      if (isUnderPrefix(url, route.prefix)) return route;
    }
    return this.#root;
  }
}
