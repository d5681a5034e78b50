// The route table that replaced Fastify's router for the proxy's routes (so a reload can change
// them): the longest prefix wins, percent-encoded paths match as decoded, and, as a property, it
// picks the same route as find-my-way (Fastify's router) did with one route per prefix.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import FindMyWay from 'find-my-way';
import { requestTargetProblem } from '../../src/proxy/paths.js';
import { RouteTable } from '../../src/proxy/route-table.js';

const table = (...prefixes: string[]) => new RouteTable(prefixes.map((prefix) => ({ prefix })));
const matched = (t: RouteTable<{ prefix: string }>, url: string) => t.match(url)?.prefix;

describe('route table', () => {
  test('the longest prefix wins; "/" takes what no other prefix serves', () => {
    const t = table('/', '/api', '/api/v2', '/b');
    assert.equal(matched(t, '/api/v2/ports'), '/api/v2');
    assert.equal(matched(t, '/api/v2'), '/api/v2');
    assert.equal(matched(t, '/api/v2?x=1'), '/api/v2');
    assert.equal(matched(t, '/api/v3'), '/api');
    assert.equal(matched(t, '/api'), '/api');
    assert.equal(matched(t, '/api?q=/api/v2'), '/api');
    assert.equal(matched(t, '/apix'), '/', 'a prefix ends at a "/", a "?" or the end');
    assert.equal(matched(t, '/b/c'), '/b');
    assert.equal(matched(t, '/'), '/');
  });

  test('without "/", a path no prefix serves has no route', () => {
    const t = table('/api', '/b');
    assert.equal(matched(t, '/elsewhere'), undefined);
    assert.equal(matched(t, '/ap'), undefined);
    assert.equal(matched(t, '/'), undefined);
    assert.equal(matched(table(), '/x'), undefined);
  });

  test('percent-encoded unreserved characters match as decoded, wherever they are', () => {
    const t = table('/api', '/api/v2', '/x.y');
    assert.equal(matched(t, '/%61pi/v2/z'), '/api/v2');
    assert.equal(matched(t, '/a%70i/v%32'), '/api/v2');
    assert.equal(matched(t, '/api/v%32?x=%41'), '/api/v2');
    assert.equal(matched(t, '/x%2Ey/1'), '/x.y');
    assert.equal(matched(t, '/api?q=%2F'), '/api');
    assert.equal(matched(t, '/%62/api'), undefined);
  });

  test('property: the same route as find-my-way with each prefix mounted as "/p" and "/p/*"', () => {
    const segment = fc.constantFrom('api', 'v2', 'a', 'b.c', 'x-y', '~u', 'api2');
    const prefix = fc.array(segment, { minLength: 0, maxLength: 3 }).map((parts) => `/${parts.join('/')}`);
    /** A character of a path, sometimes percent-encoded (as a client may send any unreserved one). */
    const encode = (text: string, mask: number) => [...text].map((c, i) => (c !== '/' && (mask >> i % 30) & 1 ? `%${c.charCodeAt(0).toString(16).toUpperCase()}` : c)).join('');
    const path = fc
      .tuple(fc.array(fc.oneof(segment, fc.constantFrom('', 'z', 'api/', 'v2x')), { maxLength: 5 }), fc.integer({ min: 0, max: 2 ** 30 - 1 }), fc.constantFrom('', '?', '?q=1', '?r=/api/v2'))
      .map(([parts, mask, query]) => `/${encode(parts.join('/'), mask)}${query}`)
      .filter((url) => requestTargetProblem(url) === undefined);
    fc.assert(
      fc.property(fc.uniqueArray(prefix, { minLength: 1, maxLength: 6 }), fc.array(path, { minLength: 1, maxLength: 20 }), (prefixes, urls) => {
        const router = FindMyWay({ ignoreDuplicateSlashes: false, ignoreTrailingSlash: false, maxParamLength: 2048 });
        for (const p of prefixes) {
          const base = p === '/' ? '' : p;
          for (const url of [base || '/', `${base}/*`]) router.on('GET', url, () => {}, { prefix: p });
        }
        const t = table(...prefixes);
        for (const url of urls) {
          const expected = (router.find('GET', url)?.store as { prefix?: string } | undefined)?.prefix;
          assert.equal(matched(t, url), expected, `${url} with prefixes ${prefixes.join(' ')}`);
        }
      }),
      { numRuns: 500 },
    );
  });
});
