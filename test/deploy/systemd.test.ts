// deploy/systemd/bearer-sidecar.service and config/systemd.yaml, the unit for a server or VM
// without containers: the keys the deployment relies on, the config reading its secret from
// systemd's credentials directory, and, where systemd-analyze is installed, `systemd-analyze
// verify` and its offline security review of the unit.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfigFile } from '../../src/config/load.js';
import { read, root } from './files.js';

const unitPath = 'deploy/systemd/bearer-sidecar.service';
const unitText = read(unitPath);

/** A unit file's sections: each key's values in order (systemd allows a key several times). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = pending + raw.trim();
    pending = '';
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    if (line.endsWith('\\')) {
      pending = `${line.slice(0, -1)} `;
      continue;
    }
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1] as string, current);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(current && eq > 0, `${unitPath}: "${line}" is neither a section nor key=value in one`);
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

const unit = parseUnit(unitText);
const service = unit.get('Service') ?? new Map<string, string[]>();
/** The value a key ends up with (the last assignment wins for single-valued keys). */
const value = (key: string) => service.get(key)?.at(-1);
const execStart = (value('ExecStart') ?? '').split(/\s+/);

test('systemd unit: runs the globally installed CLI by absolute path with the config in /etc', () => {
  assert.deepEqual([...unit.keys()], ['Unit', 'Service', 'Install']);
  assert.equal(execStart[0], '/usr/local/bin/bearer-sidecar', 'the bin of `npm install -g --prefix /usr/local`; an absolute path works on every systemd');
  assert.deepEqual(execStart.slice(1), ['serve', '--config', '/etc/bearer-sidecar/config.yaml']);
  assert.equal(value('Type'), 'simple', 'the sidecar does not speak sd_notify; /readyz is the health signal');
  assert.equal(value('ExecReload'), '/bin/kill -HUP $MAINPID', 'systemctl reload sends SIGHUP');
  assert.equal(value('Restart'), 'on-failure');
  assert.equal(value('RestartPreventExitStatus'), '2', 'a bad config (exit 2) is not restarted in a loop');
  assert.deepEqual(unit.get('Install')?.get('WantedBy'), ['multi-user.target']);
  assert.match(unitText, /127\.0\.0\.1:9901\/readyz/, 'the unit names /readyz as the health signal');
});

test('systemd unit: the client secret comes through LoadCredential=, and config/systemd.yaml reads it from $CREDENTIALS_DIRECTORY', () => {
  const credentials = (service.get('LoadCredential') ?? []).map((v) => v.split(':') as [string, string]);
  assert.deepEqual(credentials, [['client-secret', '/etc/bearer-sidecar/client-secret']]);
  assert.match(read('config/systemd.yaml'), /clientSecretFile: \$\{CREDENTIALS_DIRECTORY\}\/client-secret\b/);
  assert.doesNotMatch(read('config/systemd.yaml'), /^\s*clientSecret:/m, 'no secret in the config file');
});

test('systemd unit: sandboxed (dynamic user, no privileges, read-only system, IP and Unix sockets only) without breaking V8', () => {
  const expected: Record<string, string> = {
    DynamicUser: 'yes',
    NoNewPrivileges: 'yes',
    ProtectSystem: 'strict',
    ProtectHome: 'yes',
    PrivateTmp: 'yes',
    PrivateDevices: 'yes',
    CapabilityBoundingSet: '',
    RestrictNamespaces: 'yes',
    RestrictSUIDSGID: 'yes',
    LockPersonality: 'yes',
    SystemCallArchitectures: 'native',
    // A system call outside the filter fails instead of killing the process with SIGSYS.
    SystemCallErrorNumber: 'EPERM',
  };
  for (const [key, want] of Object.entries(expected)) assert.equal(value(key), want, `${key}=${want}`);
  assert.deepEqual(value('RestrictAddressFamilies')?.split(/\s+/).sort(), ['AF_INET', 'AF_INET6', 'AF_UNIX']);
  const filter = (service.get('SystemCallFilter') ?? []).join(' ').split(/\s+/);
  assert.ok(filter.includes('@system-service'), 'SystemCallFilter=@system-service');
  assert.ok(filter.includes('@pkey'), "SystemCallFilter keeps @pkey: Node 24's V8 calls pkey_alloc");
  // V8 compiles JavaScript to machine code in memory it writes and then runs.
  assert.notEqual(value('MemoryDenyWriteExecute'), 'yes', 'MemoryDenyWriteExecute=yes breaks V8’s JIT');
  // No file is written: logs go to journald, the secret comes from the credentials directory.
  assert.equal(service.get('ReadWritePaths'), undefined);
});

test('config/systemd.yaml loads with $CREDENTIALS_DIRECTORY set and reads the secret from there', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bsc-credentials-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'client-secret'), 'systemd-credential-secret\n', { mode: 0o600 });
  const config = loadConfigFile(join(root, 'config/systemd.yaml'), { env: { CREDENTIALS_DIRECTORY: dir } });
  const auth = config.routes[0]?.auth;
  assert.equal(auth?.clientSecret?.file, join(dir, 'client-secret'));
  assert.equal(auth?.clientSecret?.read(), 'systemd-credential-secret');
  assert.doesNotMatch(JSON.stringify(config), /systemd-credential-secret/);
  assert.deepEqual([config.listen.host, config.admin.host, config.admin.port], ['127.0.0.1', '127.0.0.1', 9901]);
  // Outside systemd the variable is unset: the loader says so, naming the field.
  assert.throws(() => loadConfigFile(join(root, 'config/systemd.yaml'), { env: {} }), /routes\[0\]\.auth\.clientSecretFile: environment variable CREDENTIALS_DIRECTORY is not set/);
});

test('docs/deployment.md installs the CLI where ExecStart runs it, and names the unit\'s reload, secret and logs', () => {
  const doc = read('docs/deployment.md');
  const section = doc.slice(doc.indexOf('### On a server or VM'), doc.indexOf('<!-- deployment:end -->'));
  assert.ok(section.length > 0, 'an "On a server or VM" section');
  const prefix = execStart[0]?.replace(/\/bin\/bearer-sidecar$/, '');
  assert.match(section, new RegExp(`npm install -g --prefix ${prefix} \\./bearer-sidecar-[\\d.]+\\.tgz`), `npm install -g --prefix ${prefix}`);
  for (const text of ['/etc/bearer-sidecar/config.yaml', '/etc/bearer-sidecar/client-secret', 'deploy/systemd/bearer-sidecar.service', 'config/systemd.yaml', 'systemctl reload bearer-sidecar', 'journalctl -u bearer-sidecar', '/readyz']) {
    assert.ok(section.includes(text), `mentions ${text}`);
  }
});

const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
const noAnalyze = analyze.error || analyze.status !== 0 ? 'systemd-analyze is not installed here: only the key checks above ran on the unit' : false;

/** The unit in a temporary directory, its ExecStart binary replaced by a stub (verify wants an executable there). */
function unitWithStub(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'bsc-systemd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const stub = join(dir, 'bearer-sidecar');
  writeFileSync(stub, '#!/bin/sh\nexit 0\n');
  chmodSync(stub, 0o755);
  const file = join(dir, 'bearer-sidecar.service');
  writeFileSync(file, unitText.replace(/^ExecStart=\S+/m, `ExecStart=${stub}`));
  return file;
}

test('systemd-analyze verify accepts the unit, without a warning', { skip: noAnalyze }, (t) => {
  t.diagnostic(`${analyze.stdout.split('\n')[0]}; ExecStart's /usr/local/bin/bearer-sidecar replaced by a stub, since verify wants the executable to exist`);
  const result = spawnSync('systemd-analyze', ['verify', '--man=no', unitWithStub(t)], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(`${result.stdout}${result.stderr}`.trim(), '', 'no warnings (an unknown key or a bad value is only a warning)');
});

test('systemd-analyze security rates the unit\'s exposure below 3 (of 10)', { skip: noAnalyze }, (t) => {
  const result = spawnSync('systemd-analyze', ['security', '--offline=yes', unitWithStub(t)], { encoding: 'utf8' });
  if (/unrecognized option|--offline/.test(result.stderr) && result.status !== 0) {
    t.skip('this systemd-analyze has no --offline (systemd < 250)');
    return;
  }
  const level = /Overall exposure level for \S+: ([\d.]+)/.exec(result.stdout);
  assert.ok(level, `no exposure level in:\n${result.stdout}${result.stderr}`);
  t.diagnostic(level[0]);
  assert.ok(Number(level[1]) < 3, level[0]);
});
