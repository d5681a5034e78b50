// Which request targets the proxy accepts, and where an accepted one goes upstream. This is the
// one mapping from a caller's path to an upstream path (and back, for Location headers); the
// proxy uses it for every request, and a property test holds it to its promise: an accepted path
// never leaves the upstream's origin or base path.
//
// Refused: anything but origin-form ("/..."), empty segments ("//"), dot segments (raw, encoded or
// as "..;"), backslashes, encoded "/" "\" "." and control characters, malformed percent-encoding,
// raw control, space and non-ASCII bytes, and "#". Each is either an attempt to reach another host
// or path, or a form no HTTP client sends; legitimate paths ("%20", "%3A", percent-encoded UTF-8,
// "a..b", "v1.2") pass. Segments that begin or end with ".." ("...", "..x", "x..") are refused too:
// some servers and proxies treat them as dot segments, and no API needs them. One pass, no regular expression, no allocation.

/** How a route maps paths: its local prefix ("/" or "/api") and the upstream's base path ("" or "/v2"). */
export interface PathMapping {
  readonly prefix: string;
  readonly basePath: string;
}

const slash = 0x2f;
const dot = 0x2e;

/** Why the request target `url` (path and query, as on the request line) is refused; undefined when it is accepted. */
export function requestTargetProblem(url: string): string | undefined {
  // Absolute-form (http://host/x), authority-form (host:443) and asterisk-form (*) all end here.
  if (url.charCodeAt(0) !== slash) return 'the request target must be a path beginning with "/"';
  const query = url.indexOf('?');
  const end = query < 0 ? url.length : query;
  let segmentStart = 1;
  // i === end stands for a closing "/", so the last segment is checked like the others.
  for (let i = 1; i <= end; i++) {
    const c = i < end ? url.charCodeAt(i) : slash;
    if (c === slash || c === 0x3b /* ; */) {
      const length = i - segmentStart;
      if (c === slash && length === 0 && i < end) return 'empty path segments ("//") are not accepted';
      // "..;" counts too: some servers (Tomcat, Spring) drop what follows ";" in a segment.
      if ((length === 1 || length === 2) && url.charCodeAt(segmentStart) === dot && (length === 1 || url.charCodeAt(segmentStart + 1) === dot)) {
        return 'dot segments ("." and "..") are not accepted';
      }
      // A path containing "/.." or "../" is refused whole (proxy libraries such as reply-from do the same).
      if (c === slash && length > 2 && ((url.charCodeAt(segmentStart) === dot && url.charCodeAt(segmentStart + 1) === dot) || (url.charCodeAt(i - 1) === dot && url.charCodeAt(i - 2) === dot))) {
        return 'segments beginning or ending with ".." are not accepted';
      }
      if (c === slash) segmentStart = i + 1;
      continue;
    }
    if (c <= 0x20 || c >= 0x7f) return 'control characters, spaces and non-ASCII bytes must not appear unencoded';
    if (c === 0x5c) return 'backslashes are not accepted';
    if (c === 0x23) return 'a fragment ("#") is not part of a request';
    if (c === 0x25) {
      const value = (hexValue(url.charCodeAt(i + 1)) << 4) | hexValue(url.charCodeAt(i + 2));
      if (value < 0) return 'malformed percent-encoding';
      if (value === slash || value === 0x5c) return 'encoded slashes and backslashes are not accepted';
      if (value === dot) return 'encoded dots are not accepted';
      if (value < 0x20 || value === 0x7f) return 'encoded control characters are not accepted';
      i += 2;
    }
  }
  return undefined;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -0x1000; // makes the combined value negative
}

/**
 * The upstream path for request path `path` (no query string): the route's prefix is removed and
 * the base path put in front. Undefined when `path` is not under the prefix. Only meaningful for a
 * path that requestTargetProblem accepted.
 */
export function upstreamPath(path: string, { prefix, basePath }: PathMapping): string | undefined {
  if (prefix === '/') return basePath + path;
  const length = matchedPrefixLength(path, prefix);
  if (length < 0) return undefined;
  return basePath + path.slice(length) || '/';
}

/**
 * Whether request target `url` (a path, with or without its query string) is under `prefix`
 * (not "/", which every path is under). Only meaningful for a target that requestTargetProblem
 * accepted, but safe on any string.
 */
export function isUnderPrefix(url: string, prefix: string): boolean {
  return matchedPrefixLength(url, prefix) >= 0;
}

/**
 * How many characters of `path` spell `prefix` followed by "/", "?" or the end; -1 when they do not.
 * Paths are matched as if decoded, so "/%61pi" is under "/api": prefixes are unreserved
 * characters only, each of which may arrive percent-encoded.
 */
function matchedPrefixLength(path: string, prefix: string): number {
  let i = 0;
  for (let j = 0; j < prefix.length; j++) {
    const c = path.charCodeAt(i);
    if (c === 0x25) {
      if (((hexValue(path.charCodeAt(i + 1)) << 4) | hexValue(path.charCodeAt(i + 2))) !== prefix.charCodeAt(j)) return -1;
      i += 3;
    } else if (c === prefix.charCodeAt(j)) {
      i += 1;
    } else {
      return -1;
    }
  }
  const next = path.charCodeAt(i);
  return Number.isNaN(next) || next === slash || next === 0x3f /* ? */ ? i : -1;
}

/**
 * A Location header from the upstream, as the caller must see it: a path under the base path is
 * mapped back under the route's prefix; anything else (another host, another path, a relative
 * reference) is returned unchanged. The sidecar never follows it either way.
 */
export function callerLocation(location: string, { prefix, basePath }: PathMapping): string {
  if (location.charCodeAt(0) !== slash || location.charCodeAt(1) === slash) return location;
  let rest = location;
  if (basePath !== '') {
    const next = location.charCodeAt(basePath.length);
    const underBase = location.startsWith(basePath) && (Number.isNaN(next) || next === slash || next === 0x3f /* ? */ || next === 0x23 /* # */);
    if (!underBase) return location;
    rest = location.slice(basePath.length);
  }
  if (prefix === '/') return rest.charCodeAt(0) === slash ? rest : `/${rest}`;
  return prefix + rest;
}
