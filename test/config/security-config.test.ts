import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseCidr } from '../../src/config/cidr.js';
import { loadConfig } from '../../src/config/index.js';
import { resolveConfig } from '../../src/config/load.js';
import { problems, tempFiles } from '../helpers/config.js';

const { dir, file } = tempFiles('bsc-security-config-');

const route = (extra: Record<string, unknown> = {}, auth: Record<string, unknown> = {}) => ({
  name: 'r',
  upstream: 'https://api.example.com/v1',
  auth: { tokenUrl: 'https://auth.example.com/token', clientId: 'id', clientSecret: 'client-secret-value', ...auth },
  ...extra,
});

describe('security settings: defaults', () => {
  test('loopback only, no client list, no shared secret, 16 KiB heads, 1024 in flight; strip X-Forwarded-*, cookies pass, no body limit, TLS verified', () => {
    const config = resolveConfig({ routes: [route()] });
    assert.equal(config.listen.host, '127.0.0.1');
    assert.deepEqual(config.inbound, { allowedClients: [], sharedSecretHeader: undefined, maxHeaderBytes: 16_384, maxInFlight: 1024 });
    const [r] = config.routes;
    assert.equal(r?.forwardedHeaders, 'strip');
    assert.equal(r?.forwardCookies, true);
    assert.equal(r?.maxBodyBytes, 0);
    assert.deepEqual(r?.tls, { ca: undefined, caFile: undefined, rejectUnauthorized: true });
    assert.deepEqual(r?.auth.tls, { ca: undefined, caFile: undefined, rejectUnauthorized: true });
  });
});

describe('listen.allowedClients', () => {
  test('CIDRs and single addresses, IPv4 and IPv6', () => {
    const config = resolveConfig({ listen: { allowedClients: ['10.0.0.0/8', '127.0.0.1', '::1/128', 'fd00::/8'] }, routes: [route()] });
    assert.deepEqual(config.inbound.allowedClients, [
      { address: '10.0.0.0', prefix: 8, family: 'ipv4' },
      { address: '127.0.0.1', prefix: 32, family: 'ipv4' },
      { address: '::1', prefix: 128, family: 'ipv6' },
      { address: 'fd00::', prefix: 8, family: 'ipv6' },
    ]);
  });

  test('each bad entry is named by its index', () => {
    const lines = problems(() => resolveConfig({ listen: { allowedClients: ['10.0.0.0/8', '10.0.0.0/33', 'example.com', '::1/129', '1.2.3.4/', 'fe80::1%eth0'] }, routes: [route()] }));
    for (const index of [1, 2, 3, 4, 5]) assert.ok(lines.some((l) => l.startsWith(`listen.allowedClients[${index}]: must be an IP address or a CIDR`)), lines.join('\n'));
    assert.equal(lines.length, 5);
  });

  test('parseCidr', () => {
    assert.deepEqual(parseCidr('0.0.0.0/0'), { address: '0.0.0.0', prefix: 0, family: 'ipv4' });
    assert.equal(parseCidr('10.0.0.0/8/8'), undefined);
    assert.equal(parseCidr('10.0.0.0/-1'), undefined);
    assert.equal(parseCidr(''), undefined);
  });
});

describe('listen.sharedSecretHeader', () => {
  test('inline value or a file; the name is lower-cased; the value never serialises', () => {
    const inline = resolveConfig({ listen: { sharedSecretHeader: { name: 'X-Sidecar-Key', value: 'sixteen-chars-or-more' } }, routes: [route()] });
    assert.equal(inline.inbound.sharedSecretHeader?.name, 'x-sidecar-key');
    assert.equal(inline.inbound.sharedSecretHeader?.value.read(), 'sixteen-chars-or-more');
    assert.doesNotMatch(JSON.stringify(inline), /sixteen-chars-or-more/);
    const path = file('key', 'a-secret-from-a-file-123\n');
    const fromFile = resolveConfig({ listen: { sharedSecretHeader: { name: 'x-key', valueFile: path } }, routes: [route()] });
    assert.equal(fromFile.inbound.sharedSecretHeader?.value.read(), 'a-secret-from-a-file-123');
  });

  test('bad settings are named by path, and the value is never echoed', () => {
    const short = problems(() => resolveConfig({ listen: { sharedSecretHeader: { name: 'x-key', value: 'short-secret' } }, routes: [route()] }));
    assert.deepEqual(short, ['listen.sharedSecretHeader.value: must be at least 16 characters']);
    const both = problems(() => resolveConfig({ listen: { sharedSecretHeader: { name: 'x-key', value: 'sixteen-chars-or-more', valueFile: '/x' } }, routes: [route()] }));
    assert.deepEqual(both, ['listen.sharedSecretHeader.value: set value or valueFile (exactly one)']);
    const neither = problems(() => resolveConfig({ listen: { sharedSecretHeader: { name: 'x-key' } }, routes: [route()] }));
    assert.deepEqual(neither, ['listen.sharedSecretHeader.value: set value or valueFile (exactly one)']);
    for (const name of ['Authorization', 'cookie', 'Host']) {
      const reserved = problems(() => resolveConfig({ listen: { sharedSecretHeader: { name, value: 'sixteen-chars-or-more' } }, routes: [route()] }));
      assert.deepEqual(reserved, ['listen.sharedSecretHeader.name: must not be a standard header; use your own such as x-sidecar-key'], name);
    }
    const badName = problems(() => resolveConfig({ listen: { sharedSecretHeader: { name: 'x key:', value: 'sixteen-chars-or-more' } }, routes: [route()] }));
    assert.match(badName[0] ?? '', /^listen\.sharedSecretHeader\.name: must be a header name/);
    const missing = problems(() => resolveConfig({ listen: { sharedSecretHeader: { name: 'x-key', valueFile: join(dir, 'nope') } }, routes: [route()] }));
    assert.match(missing[0] ?? '', /^listen\.sharedSecretHeader\.valueFile: cannot read .*nope \(ENOENT\)$/);
    const shortFile = problems(() => resolveConfig({ listen: { sharedSecretHeader: { name: 'x-key', valueFile: file('short', 'tiny-value') } }, routes: [route()] }));
    assert.deepEqual(shortFile, ['listen.sharedSecretHeader.valueFile: the secret must be at least 16 characters']);
    assert.doesNotMatch([...short, ...shortFile].join('\n'), /short-secret|tiny-value/);
  });
});

describe('limits, forwarding and TLS fields', () => {
  test('out-of-range limits and unknown modes are named by path', () => {
    const lines = problems(() =>
      resolveConfig({ listen: { maxHeaderBytes: 100, maxInFlight: -1 }, routes: [route({ maxBodyBytes: -5, forwardedHeaders: 'rewrite', forwardCookies: 'no', tls: { rejectUnauthorized: 'false' } })] }),
    );
    for (const field of ['listen.maxHeaderBytes', 'listen.maxInFlight', 'routes[0].maxBodyBytes', 'routes[0].forwardedHeaders', 'routes[0].forwardCookies', 'routes[0].tls.rejectUnauthorized']) {
      assert.ok(lines.some((l) => l.startsWith(`${field}: `)), `${field} in\n${lines.join('\n')}`);
    }
  });

  test('a CA file must exist and hold a PEM certificate, for the upstream and the token endpoint', () => {
    const notPem = file('not-a-cert.pem', '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
    const lines = problems(() => resolveConfig({ routes: [route({ tls: { caFile: join(dir, 'missing.pem') } }, { tls: { caFile: notPem } })] }));
    assert.deepEqual(lines.sort(), [`routes[0].auth.tls.caFile: ${notPem} is not a PEM certificate bundle`, `routes[0].tls.caFile: cannot read ${join(dir, 'missing.pem')} (ENOENT)`]);
  });
});

describe('environment variables', () => {
  test('every security setting can come from BEARER_SIDECAR_* variables', () => {
    const secretFile = file('env-key', 'env-shared-secret-value\n');
    const config = loadConfig(undefined, {
      BEARER_SIDECAR_UPSTREAM: 'https://api.example.com',
      BEARER_SIDECAR_TOKEN_URL: 'https://auth.example.com/token',
      BEARER_SIDECAR_CLIENT_ID: 'id',
      BEARER_SIDECAR_CLIENT_SECRET: 'secret',
      BEARER_SIDECAR_ALLOWED_CLIENTS: '10.0.0.0/8, 127.0.0.1 ,',
      BEARER_SIDECAR_SHARED_SECRET_HEADER: 'X-Sidecar-Key',
      BEARER_SIDECAR_SHARED_SECRET_FILE: secretFile,
      BEARER_SIDECAR_MAX_IN_FLIGHT: '50',
      BEARER_SIDECAR_MAX_HEADER_BYTES: '8192',
      BEARER_SIDECAR_MAX_BODY_BYTES: '1048576',
      BEARER_SIDECAR_FORWARDED_HEADERS: 'append',
      BEARER_SIDECAR_FORWARD_COOKIES: 'false',
    });
    assert.deepEqual(config.inbound.allowedClients.map((c) => `${c.address}/${c.prefix}`), ['10.0.0.0/8', '127.0.0.1/32']);
    assert.equal(config.inbound.sharedSecretHeader?.name, 'x-sidecar-key');
    assert.equal(config.inbound.sharedSecretHeader?.value.read(), 'env-shared-secret-value');
    assert.equal(config.inbound.maxInFlight, 50);
    assert.equal(config.inbound.maxHeaderBytes, 8192);
    const [r] = config.routes;
    assert.equal(r?.maxBodyBytes, 1_048_576);
    assert.equal(r?.forwardedHeaders, 'append');
    assert.equal(r?.forwardCookies, false);
  });

  test('a bad list entry is reported by the variable that set the list', () => {
    const lines = problems(() =>
      loadConfig(undefined, { BEARER_SIDECAR_UPSTREAM: 'https://api.example.com', BEARER_SIDECAR_TOKEN_URL: 'https://a.example.com/t', BEARER_SIDECAR_CLIENT_ID: 'i', BEARER_SIDECAR_CLIENT_SECRET: 's', BEARER_SIDECAR_ALLOWED_CLIENTS: '10.0.0.0/8,nonsense' }),
    );
    assert.deepEqual(lines, ['BEARER_SIDECAR_ALLOWED_CLIENTS (listen.allowedClients[1]: must be an IP address or a CIDR such as 10.0.0.0/8 or ::1/128)']);
  });
});
