import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { callerLocation, requestTargetProblem, upstreamPath, type PathMapping } from '../../src/proxy/paths.js';

const origin = 'http://upstream.test:8443';
const mappings: PathMapping[] = [
  { prefix: '/', basePath: '' },
  { prefix: '/', basePath: '/base' },
  { prefix: '/api', basePath: '' },
  { prefix: '/api', basePath: '/base' },
  { prefix: '/a.b-c', basePath: '/v2/x' },
];

/** Characters an attacker reaches for, mixed with ordinary ones. */
const tricky = fc.constantFrom('/', '.', '..', '%', '%2e', '%2E', '%2f', '%2F', '%5c', '\\', ';', '?', '#', ':', '@', 'a', 'api', '%61', 'base', '%00', '%zz', ' ', '\t', '\u00ff', 'é', 'http:', '//', '%252e', '~');
const trickyPath = fc.array(tricky, { maxLength: 12 }).map((parts) => `/${parts.join('')}`);
/** Segments made mostly of dots, encoded dots and separators: traversal in all its spellings. */
const dotty = fc.constantFrom('.', '%2e', '%2E', '..', '', 'a', '%2f', '\\', ';', '%5C');
const dottyPath = fc
  .tuple(fc.constantFrom('', '/api', '/%61pi', '/a.b-c'), fc.array(fc.array(dotty, { maxLength: 3 }).map((parts) => parts.join('')), { minLength: 1, maxLength: 5 }))
  .map(([prefix, segments]) => `${prefix}/${segments.join('/')}`);
const anyTarget = fc.oneof(fc.webPath(), fc.string(), fc.string({ unit: 'binary' }), trickyPath, dottyPath, fc.webUrl(), fc.webPath().map((p) => `/api${p}`));

/** The property: an accepted target maps to a URL on the upstream's origin, under its base path. */
function staysUnderBase(target: string, mapping: PathMapping): boolean {
  if (requestTargetProblem(target) !== undefined) return true;
  const query = target.indexOf('?');
  const path = upstreamPath(query < 0 ? target : target.slice(0, query), mapping);
  if (path === undefined) return true; // not this route's prefix: never forwarded by it
  const url = new URL(path, origin);
  if (url.origin !== origin) return false;
  return mapping.basePath === '' || url.pathname === mapping.basePath || url.pathname.startsWith(`${mapping.basePath}/`);
}

describe('request targets', () => {
  test('ordinary API paths are accepted', () => {
    for (const target of ['/', '/ports', '/v2/ports/', '/a%20b', '/a%3Ab', '/%C3%A9t%C3%A9', '/a..b', '/x..y/z', '/v1.2/x', '/a;b=c', '/x?q=../..%2f&r=\\', '/~user/file.json', '/a:b@c', '/api']) {
      assert.equal(requestTargetProblem(target), undefined, target);
    }
  });

  test('traversal, other hosts and malformed targets are refused, each for its reason', () => {
    const refused: [string, RegExp][] = [
      ['http://127.0.0.1:1/x', /beginning with/],
      ['127.0.0.1:443', /beginning with/],
      ['*', /beginning with/],
      ['//other.host/x', /empty path segments/],
      ['/api//other.host/x', /empty path segments/],
      ['/..', /dot segments/],
      ['/a/./b', /dot segments/],
      ['/..;/admin', /dot segments/],
      ['/.../x', /beginning or ending with/],
      ['/..x', /beginning or ending with/],
      ['/x../y', /beginning or ending with/],
      ['/%2e%2e/x', /encoded dots/],
      ['/%2E./x', /encoded dots/],
      ['/..%2fx', /encoded slashes/],
      ['/a%5Cb', /encoded slashes/],
      ['/a\\..\\b', /backslashes/],
      ['/a%00b', /encoded control/],
      ['/a%zz', /malformed/],
      ['/a%4', /malformed/],
      ['/a b', /unencoded/],
      ['/\u00ff\u00fe', /unencoded/],
      ['/a#frag', /fragment/],
    ];
    for (const [target, reason] of refused) assert.match(requestTargetProblem(target) ?? 'accepted', reason, target);
  });
});

describe('path mapping', () => {
  test('prefix removed, base path put in front, trailing slashes kept', () => {
    const api = { prefix: '/api', basePath: '/base' };
    assert.equal(upstreamPath('/api', api), '/base');
    assert.equal(upstreamPath('/api/', api), '/base/');
    assert.equal(upstreamPath('/api/x/y', api), '/base/x/y');
    assert.equal(upstreamPath('/%61pi/x', api), '/base/x', 'the router matches decoded prefixes');
    assert.equal(upstreamPath('/apix', api), undefined);
    assert.equal(upstreamPath('/other', api), undefined);
    assert.equal(upstreamPath('/api', { prefix: '/api', basePath: '' }), '/');
    assert.equal(upstreamPath('/', { prefix: '/', basePath: '/v2' }), '/v2/');
    assert.equal(upstreamPath('/x', { prefix: '/', basePath: '' }), '/x');
  });

  test('property: every accepted target stays on the upstream origin, under its base path', () => {
    for (const mapping of mappings) {
      fc.assert(fc.property(anyTarget, (target) => staysUnderBase(target, mapping)), { numRuns: 2000 });
    }
  });

  test('property: refusing is not the easy way out; ordinary paths are accepted and mapped verbatim', () => {
    const segment = fc.stringMatching(/^[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,11}$/).filter((s) => !s.startsWith('..') && !s.endsWith('..') && s !== '.');
    const path = fc.array(segment, { minLength: 1, maxLength: 6 }).map((parts) => `/${parts.join('/')}`);
    fc.assert(
      fc.property(path, (p) => requestTargetProblem(p) === undefined && upstreamPath(`/api${p}`, { prefix: '/api', basePath: '/base' }) === `/base${p}`),
      { numRuns: 500 },
    );
  });
});

describe('Location headers', () => {
  test('a path under the base path is mapped back under the prefix; anything else is unchanged', () => {
    const api = { prefix: '/api', basePath: '/base' };
    assert.equal(callerLocation('/base/next', api), '/api/next');
    assert.equal(callerLocation('/base', api), '/api');
    assert.equal(callerLocation('/base?page=2', api), '/api?page=2');
    assert.equal(callerLocation('/basement', api), '/basement');
    assert.equal(callerLocation('/other/base/x', api), '/other/base/x', 'only a leading base path is mapped');
    assert.equal(callerLocation('http://other.host/base/x', api), 'http://other.host/base/x');
    assert.equal(callerLocation('//other.host/x', api), '//other.host/x');
    assert.equal(callerLocation('relative', api), 'relative');
    const root = { prefix: '/', basePath: '/base' };
    assert.equal(callerLocation('/base/next', root), '/next');
    assert.equal(callerLocation('/base', root), '/');
    assert.equal(callerLocation('/next', { prefix: '/api', basePath: '' }), '/api/next');
    assert.equal(callerLocation('/next', { prefix: '/', basePath: '' }), '/next');
  });

  test('property: a mapped-back Location maps forward to the upstream path it came from', () => {
    const api = { prefix: '/api', basePath: '/base' };
    const segment = fc.stringMatching(/^[A-Za-z0-9_~-]{1,8}$/);
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 5 }), (parts) => {
        const upstream = `/base${parts.map((s) => `/${s}`).join('')}`;
        return upstreamPath(callerLocation(upstream, api), api) === upstream;
      }),
      { numRuns: 300 },
    );
  });
});
