// The proxy's listen settings: host/port or a Unix socket with its file mode, each problem named
// by its path; and the same from BEARER_SIDECAR_* variables.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig } from '../../src/config/index.js';
import { loadConfigFile, resolveConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

const routes = [{ name: 'r', upstream: 'https://api.example.com', auth: { tokenUrl: 'https://auth.example.com/token', clientId: 'id', clientSecret: 'secret' } }];

function problems(listen: unknown): string[] {
  try {
    resolveConfig({ listen, routes });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return [...err.problems];
  }
  assert.fail('expected the config to be rejected');
}

describe('listen: host and port, or a Unix socket', () => {
  test('without a socket, host and port keep their defaults and there is no socket or mode', () => {
    assert.deepEqual({ ...resolveConfig({ routes }).listen }, { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(resolveConfig({ listen: { socket: '/tmp/p.sock', maxInFlight: 10 }, routes }).inbound.maxInFlight, 10, 'the other listen settings still apply');
    assert.deepEqual({ ...resolveConfig({ listen: { port: 9000 }, routes }).listen }, { host: '127.0.0.1', port: 9000 });
  });

  test('a socket gets mode 0660 unless one is given; octal strings and YAML-read numbers mean the same', () => {
    assert.equal(resolveConfig({ listen: { socket: '/run/bearer-sidecar/proxy.sock' }, routes }).listen.mode, 0o660);
    for (const mode of ['0600', '640', '0o644', 660, 600]) {
      const expected = Number.parseInt(String(mode).replace('0o', ''), 8);
      assert.equal(resolveConfig({ listen: { socket: '/tmp/p.sock', mode }, routes }).listen.mode, expected, String(mode));
    }
  });

  test('in a YAML file, an unquoted 0660 is rw-rw----', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'bsc-listen-')), 'socket.yaml');
    writeFileSync(file, `listen: { socket: /run/bearer-sidecar/proxy.sock, mode: 0660 }\nroutes:\n  - name: r\n    upstream: https://api.example.com\n    auth: { tokenUrl: https://auth.example.com/token, clientId: id, clientSecret: s }\n`);
    const { listen } = loadConfigFile(file);
    assert.deepEqual([listen.socket, listen.mode], ['/run/bearer-sidecar/proxy.sock', 0o660]);
  });

  test('bad listen settings fail with the field path and what is wrong', () => {
    assert.deepEqual(problems({ socket: '/tmp/p.sock', host: '127.0.0.1', port: 8080 }), [
      'listen.host: set listen.socket or host and port, not both',
      'listen.port: set listen.socket or host and port, not both',
    ]);
    assert.deepEqual(problems({ mode: '0660' }), ['listen.mode: applies only with listen.socket']);
    assert.match(problems({ socket: '/tmp/p.sock', allowedClients: ['10.0.0.0/8'] })[0] ?? '', /^listen\.allowedClients: applies to host and port only/);
    assert.deepEqual(problems({ socket: '/tmp/p.sock', mode: 'rw-rw----' }), ['listen.mode: must be an octal file mode such as "0660"']);
    assert.deepEqual(problems({ socket: '/tmp/p.sock', mode: '0999' }), ['listen.mode: must be an octal file mode such as "0660"']);
    // YAML reads an unquoted 0o660 as 432: caught, because the owner could not even connect.
    assert.match(problems({ socket: '/tmp/p.sock', mode: 432 })[0] ?? '', /^listen\.mode: 432 does not let the owner read and write/);
    assert.match(problems({ socket: `/tmp/${'x'.repeat(120)}.sock` })[0] ?? '', /^listen\.socket: must be at most 107 bytes/);
    assert.match(problems({ socket: '' })[0] ?? '', /^listen\.socket: /);
  });

  test('BEARER_SIDECAR_SOCKET and BEARER_SIDECAR_SOCKET_MODE set them; a port as well is named by its variable', () => {
    const env = { BEARER_SIDECAR_UPSTREAM: 'https://api.example.com', BEARER_SIDECAR_TOKEN_URL: 'https://auth.example.com/token', BEARER_SIDECAR_CLIENT_ID: 'id', BEARER_SIDECAR_CLIENT_SECRET: 's' };
    const { listen } = loadConfig(undefined, { ...env, BEARER_SIDECAR_SOCKET: '/run/bearer-sidecar/proxy.sock', BEARER_SIDECAR_SOCKET_MODE: '0600' });
    assert.deepEqual([listen.socket, listen.mode], ['/run/bearer-sidecar/proxy.sock', 0o600]);
    assert.throws(
      () => loadConfig(undefined, { ...env, BEARER_SIDECAR_SOCKET: '/tmp/p.sock', BEARER_SIDECAR_PORT: '9000' }),
      (err: unknown) => err instanceof ConfigError && err.problems.includes('BEARER_SIDECAR_PORT (listen.port: set listen.socket or host and port, not both)'),
    );
  });
});
