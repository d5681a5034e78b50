// Which proxy a route uses: route over top level over the environment, `false` for none, the
// lower-case variables winning; and the start-up errors, by field path, that never echo a password.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { resolveConfig } from '../../src/config/load.js';
import { ProxyEndpoint } from '../../src/config/proxy-endpoint.js';
import { direct, proxyFor } from '../../src/config/outbound-proxy.js';
import { problems, tempFiles } from '../helpers/config.js';
import { runToEnd } from '../helpers/process.js';

const route = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  prefix: `/${name}`,
  upstream: 'https://api.example',
  auth: { tokenUrl: 'https://idp.example/token', clientId: 'id', clientSecret: 'secret' },
  ...extra,
});

/** The proxy (host:port) each route's https upstream, http target and token URL would use. */
function proxies(raw: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Record<string, string | undefined> {
  const config = resolveConfig(raw, { env });
  return Object.fromEntries(
    config.routes.flatMap((r) => [
      [`${r.name} https`, proxyFor(r.upstreamOrigin, r.outboundProxy)?.name],
      [`${r.name} http`, proxyFor(`http://${new URL(r.upstreamOrigin).hostname}`, r.outboundProxy)?.name],
    ]),
  );
}

describe('which outbound proxy a route uses', () => {
  test('none configured, none in the environment: every target direct', () => {
    assert.deepEqual(proxies({ routes: [route('a')] }), { 'a https': undefined, 'a http': undefined });
  });

  test('HTTPS_PROXY for https targets, HTTP_PROXY for http targets; no fallback from one to the other (as curl)', () => {
    assert.deepEqual(proxies({ routes: [route('a')] }, { HTTPS_PROXY: 'http://s.proxy:3128' }), { 'a https': 's.proxy:3128', 'a http': undefined });
    assert.deepEqual(proxies({ routes: [route('a')] }, { HTTP_PROXY: 'http://p.proxy:8080' }), { 'a https': undefined, 'a http': 'p.proxy:8080' });
  });

  test('the lower-case variable wins over the upper-case one; an empty one counts as unset', () => {
    const env = { HTTPS_PROXY: 'http://upper:1', https_proxy: 'http://lower:2', HTTP_PROXY: 'http://upper:3', http_proxy: '', NO_PROXY: '', no_proxy: 'api.example' };
    assert.deepEqual(proxies({ routes: [route('a')] }, env), { 'a https': undefined, 'a http': undefined });
    assert.deepEqual(proxies({ routes: [route('a', { upstream: 'https://other.example' })] }, env), { 'a https': 'lower:2', 'a http': 'upper:3' });
    assert.deepEqual(proxies({ routes: [route('a')] }, { ...env, no_proxy: undefined, NO_PROXY: 'api.example' }), { 'a https': undefined, 'a http': undefined });
  });

  test('environment values as curl takes them: no scheme means http://, the port defaults to 80 (443 for https://)', () => {
    assert.deepEqual(proxies({ routes: [route('a')] }, { HTTPS_PROXY: 'proxy.corp:3128', HTTP_PROXY: 'https://tls.proxy' }), { 'a https': 'proxy.corp:3128', 'a http': 'tls.proxy:443' });
    assert.deepEqual(proxies({ routes: [route('a')] }, { HTTPS_PROXY: 'http://p.corp' }), { 'a https': 'p.corp:80', 'a http': undefined });
  });

  test('config overrides the environment, NO_PROXY included; route over top level; false ignores both', () => {
    const env = { HTTPS_PROXY: 'http://env.proxy:1', HTTP_PROXY: 'http://env.proxy:1', NO_PROXY: '*' };
    const raw = {
      outboundProxy: { url: 'http://top.proxy:2' },
      routes: [route('a'), route('b', { outboundProxy: { url: 'http://route.proxy:3', noProxy: ['api.example'] } }), route('c', { outboundProxy: false })],
    };
    assert.deepEqual(proxies(raw, env), { 'a https': 'top.proxy:2', 'a http': 'top.proxy:2', 'b https': undefined, 'b http': undefined, 'c https': undefined, 'c http': undefined });
    const offAtTop = { outboundProxy: false, routes: [route('a'), route('b', { outboundProxy: { url: 'http://route.proxy:3' } })] };
    assert.deepEqual(proxies(offAtTop, env), { 'a https': undefined, 'a http': undefined, 'b https': 'route.proxy:3', 'b http': 'route.proxy:3' });
    // Without config the environment applies, NO_PROXY=* included.
    assert.deepEqual(proxies({ routes: [route('a')] }, env), { 'a https': undefined, 'a http': undefined });
  });

  test('noProxy as a comma-separated string or a list', () => {
    const raw = (noProxy: unknown) => ({ routes: [route('a', { outboundProxy: { url: 'http://p:1', noProxy } })] });
    assert.deepEqual(proxies(raw('x.example, .api.example')), { 'a https': undefined, 'a http': undefined });
    assert.deepEqual(proxies(raw(['api.example:443'])), { 'a https': undefined, 'a http': 'p:1' });
  });

  test('urlFile is read as the secret files are (trimmed)', () => {
    const files = tempFiles('bsc-proxy-');
    const file = files.file('proxy-url', 'http://user:s3cret@file.proxy:3128\n');
    assert.deepEqual(proxies({ routes: [route('a', { outboundProxy: { urlFile: file } })] }), { 'a https': 'file.proxy:3128', 'a http': 'file.proxy:3128' });
  });

  test('credentials become Proxy-Authorization: Basic, percent-decoded; the endpoint shows host:port only', () => {
    const proxy = ProxyEndpoint.parse('http://us%3Aer:p%40ss%25@proxy.corp:3128/') as ProxyEndpoint;
    assert.equal(proxy.proxyAuthorization(), `Basic ${Buffer.from('us:er:p@ss%').toString('base64')}`);
    for (const shown of [JSON.stringify({ proxy }), String(proxy), inspect(proxy), inspect({ proxy }, { depth: 5 })]) {
      assert.doesNotMatch(shown, /p%40ss|p@ss|us%3Aer/, shown);
      assert.match(shown, /proxy\.corp:3128/);
    }
    assert.equal((ProxyEndpoint.parse('http://[::1]:3128') as ProxyEndpoint).name, '[::1]:3128');
    assert.equal((ProxyEndpoint.parse('http://proxy.corp:3128') as ProxyEndpoint).proxyAuthorization(), undefined);
  });
});

describe('outbound proxy settings that cannot work are refused at start-up', () => {
  const password = 'hunter2-proxy-password';

  test('config: each problem names its field, never the URL or its password', () => {
    const files = tempFiles('bsc-proxy-');
    const lines = problems(() =>
      resolveConfig(
        {
          outboundProxy: { url: `socks5://user:${password}@proxy:1080` },
          routes: [
            route('a', { outboundProxy: { url: `ftp://user:${password}@proxy` } }),
            route('b', { outboundProxy: {} }),
            route('c', { outboundProxy: { url: 'http://p:1', urlFile: '/x' } }),
            route('d', { outboundProxy: { urlFile: files.file('empty', '\n') } }),
            route('e', { outboundProxy: { urlFile: '/nonexistent/proxy-url' } }),
            route('f', { outboundProxy: { url: `http://user:${password}@proxy:3128/path` } }),
            route('g', { outboundProxy: { url: 'http://user:bad%zz@proxy:3128' } }),
            route('h', { outboundProxy: { url: 'not a url' } }),
            route('i', { outboundProxy: { url: 'http://p:1', noProxy: ['ok.example', '10.0.0.0/99'] } }),
            route('j', { outboundProxy: { url: 'http://p:1', noProxy: 'bad host!' } }),
            route('k', { outboundProxy: { urlFile: files.file('bad', `socks://user:${password}@proxy`) } }),
          ],
        },
        { env: {} },
      ),
    );
    const text = lines.join('\n');
    assert.doesNotMatch(text, new RegExp(password));
    const byField = (field: string) => lines.filter((line) => [":", ".", "["].some((next) => line.startsWith(`${field}${next}`)));
    assert.match(byField('outboundProxy.url').join(), /must be an http:\/\/ or https:\/\/ proxy URL \(socks5 proxies are not supported\)/);
    assert.match(byField('routes[0].outboundProxy.url').join(), /\(ftp proxies/);
    assert.match(byField('routes[1].outboundProxy.url').join(), /set url or urlFile \(exactly one\)/);
    assert.match(byField('routes[2].outboundProxy.url').join(), /exactly one/);
    assert.match(byField('routes[3].outboundProxy.urlFile').join(), /is empty/);
    assert.match(byField('routes[4].outboundProxy.urlFile').join(), /cannot read \/nonexistent\/proxy-url \(ENOENT\)/);
    assert.match(byField('routes[5].outboundProxy.url').join(), /no path/);
    assert.match(byField('routes[6].outboundProxy.url').join(), /percent-encoding/);
    assert.match(byField('routes[7].outboundProxy.url').join(), /is not a URL/);
    assert.deepEqual(byField('routes[8].outboundProxy.noProxy'), ['routes[8].outboundProxy.noProxy[1]: "10.0.0.0/99" is not a valid IP address or CIDR range (such as 10.0.0.0/8 or fd00::/8)']);
    assert.match(byField('routes[9].outboundProxy.noProxy').join(), /"host!" must be a host name/);
    assert.match(byField('routes[10].outboundProxy.urlFile').join(), /the file's content must be an http:\/\/ or https:\/\/ proxy URL/);
    assert.equal(lines.length, 12, text);
  });

  test('config: outboundProxy is false or a mapping of url, urlFile and noProxy', () => {
    const lines = problems(() => resolveConfig({ routes: [route('a', { outboundProxy: true }), route('b', { outboundProxy: { url: 'http://p:1', extra: 1 } })] }, { env: {} }));
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(lines[0] as string, /^routes\[0\]\.outboundProxy: /);
    assert.match(lines[1] as string, /^routes\[1\]\.outboundProxy.*extra/);
  });

  test('environment: a proxy variable that cannot work is named, without its value; unused ones are not read', () => {
    const env = { https_proxy: `socks5://user:${password}@proxy:1080`, HTTP_PROXY: `http://user:${password}@` };
    const lines = problems(() => resolveConfig({ routes: [route('a')] }, { env }));
    assert.doesNotMatch(lines.join('\n'), new RegExp(password));
    assert.deepEqual(
      lines.map((line) => line.slice(0, line.indexOf(':'))),
      ['HTTP_PROXY', 'https_proxy'],
    );
    // A config that sets its own proxy (or none) never reads them.
    assert.doesNotThrow(() => resolveConfig({ outboundProxy: false, routes: [route('a')] }, { env }));
  });
});

describe('outbound proxies are documented', () => {
  test('--help names HTTPS_PROXY, HTTP_PROXY and NO_PROXY', async () => {
    const { code, output } = await runToEnd(['--help']);
    assert.equal(code, 0);
    for (const name of ['HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY', 'outboundProxy']) assert.ok(output.includes(name), `--help lacks ${name}`);
  });

  test('docs/protocols.md: the variables are named and the example config loads, with the meaning it claims', () => {
    const doc = readFileSync(new URL('../../docs/protocols.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('<!-- outbound-proxy:start -->'), doc.indexOf('<!-- outbound-proxy:end -->'));
    for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy', 'urlFile', 'noProxy']) assert.ok(section.includes(name), name);
    const block = /<!-- example: config-outbound-proxy -->\n```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(block, 'the example block');
    const files = tempFiles('bsc-proxy-doc-');
    const urlFile = files.file('proxy-url', 'http://user:p%40ss@proxy.corp.example:3128');
    const raw = parseYaml(block.replace('/run/secrets/proxy-url', urlFile)) as Record<string, unknown>;
    const config = resolveConfig({ ...raw, routes: [...(raw.routes as unknown[]), route('other')] }, { env: { EXAMPLE_CLIENT_ID: 'id', EXAMPLE_CLIENT_SECRET: 'secret', HTTPS_PROXY: 'http://env.proxy:1' } });
    const [internal, other] = config.routes;
    assert.equal(proxyFor('https://billing.corp.example', internal?.outboundProxy ?? direct), undefined);
    assert.equal(proxyFor('https://api.example', other?.outboundProxy ?? direct)?.name, 'proxy.corp.example:3128');
    for (const target of ['https://x.corp.example', 'https://10.2.3.4', 'https://idp.corp.example:8443']) assert.equal(proxyFor(target, other?.outboundProxy ?? direct), undefined, target);
  });
});
