// Certificates for TLS tests, made with the openssl CLI at test time: a private CA and one server
// certificate it signed for the names asked. Without openssl, tests that need them are skipped,
// saying so (`opensslMissing`).

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A skip reason for node:test, or false when openssl is there. */
export const opensslMissing: string | false = hasOpenssl() ? false : 'the openssl CLI is not installed; TLS tests need it to make certificates';

export interface Certificates {
  /** The CA's PEM file, for tls.caFile. */
  readonly caFile: string;
  readonly key: Buffer;
  readonly cert: Buffer;
}

/** A fresh private CA and a certificate it signed, valid for `names` (subjectAltName entries such as IP:127.0.0.1 or DNS:localhost). */
export function makeCertificates(names: readonly string[] = ['IP:127.0.0.1', 'DNS:localhost']): Certificates {
  const dir = mkdtempSync(join(tmpdir(), 'bsc-tls-'));
  writeFileSync(join(dir, 'san.cnf'), `subjectAltName=${names.join(',')}\n`);
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=bearer-sidecar test CA');
  run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${(names[0] ?? 'localhost').replace(/^\w+:/, '')}`);
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.cnf');
  return { caFile: join(dir, 'ca.pem'), key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.pem')) };
}
