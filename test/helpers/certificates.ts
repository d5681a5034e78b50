// A private CA and a server certificate it signed for 127.0.0.1 / localhost, made with the openssl
// CLI at test time, for TLS tests (they skip, saying so, where openssl is missing).

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { closeServer } from '../../src/demo/token-server.js';

export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why TLS tests are skipped, or false when they can run. */
export const skipWithoutOpenssl = hasOpenssl() ? false : 'the openssl CLI is not installed; TLS tests need it to make certificates';

export interface TestCertificates {
  /** PEM file of the private CA. */
  readonly caFile: string;
  readonly key: Buffer;
  readonly cert: Buffer;
}

/** Makes them in a fresh temporary directory. */
export function makeCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'bsc-tls-'));
  writeFileSync(join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=bearer-sidecar test CA');
  run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.cnf');
  return { caFile: join(dir, 'ca.pem'), key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.pem')) };
}

export interface HttpsRecorder {
  readonly url: string;
  /** The Authorization header of every request that reached it. */
  readonly saw: (string | undefined)[];
  close(): Promise<void>;
}

/** An HTTPS server with these certificates that answers 200 `{ path }` and records each request's Authorization. */
export async function startHttpsRecorder(certificates: TestCertificates): Promise<HttpsRecorder> {
  const saw: (string | undefined)[] = [];
  const server = createServer({ key: certificates.key, cert: certificates.cert }, (req, res) => {
    saw.push(req.headers.authorization);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, saw, close: () => closeServer(server) };
}
