// Certificates and keys made at test time: a private CA with the openssl CLI (Node cannot issue
// certificates), a server certificate for 127.0.0.1 / localhost, client certificates for mutual
// TLS, and signing keys of every kind and PEM format with node:crypto. Tests that need openssl
// skip, saying so, where it is missing.

import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeServer } from '../../src/demo/token-server.js';

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** For `describe(..., { skip: opensslMissing })`. */
export const opensslMissing = hasOpenssl() ? false : 'the openssl CLI is not installed; these tests need it to make certificates';

export interface CertificateFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** Set when the key is encrypted. */
  readonly passphraseFile?: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface TestPki {
  readonly dir: string;
  readonly caFile: string;
  readonly ca: Buffer;
  /** For 127.0.0.1 and localhost. */
  readonly server: CertificateFiles;
  /** A client certificate (extendedKeyUsage clientAuth) with subject CN=`name`, its key encrypted when `passphrase` is given. */
  client(name: string, options?: { passphrase?: string }): CertificateFiles;
  /** Another server certificate, for these subjectAltName entries only (e.g. DNS:api.internal.test). */
  serverFor(names: readonly string[]): CertificateFiles;
}

/** A private CA in a fresh temporary directory, and the server certificate it signed. */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'bsc-pki-'));
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
  run('req', '-x509', ...ec, '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=bearer-sidecar test CA');
  const issue = (name: string, subject: string, extensions: string, passphrase?: string): CertificateFiles => {
    writeFileSync(join(dir, `${name}.ext`), extensions);
    const keyArgs = passphrase === undefined ? ['-nodes'] : ['-passout', `file:${join(dir, `${name}.pass`)}`];
    if (passphrase !== undefined) writeFileSync(join(dir, `${name}.pass`), `${passphrase}\n`);
    run('req', ...ec, ...keyArgs, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${randomUUID().replaceAll('-', '').slice(0, 16)}`, '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
    const certFile = join(dir, `${name}.pem`);
    const keyFile = join(dir, `${name}.key`);
    return {
      certFile,
      keyFile,
      ...(passphrase === undefined ? {} : { passphraseFile: join(dir, `${name}.pass`) }),
      cert: readFileSync(certFile),
      key: readFileSync(keyFile),
    };
  };
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    ca: readFileSync(join(dir, 'ca.pem')),
    server: issue('server', '/CN=localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n'),
    client: (name, options = {}) => issue(`client-${name}`, `/CN=${name}`, 'extendedKeyUsage=clientAuth\n', options.passphrase),
    serverFor: (names) => issue(`server-${randomUUID().slice(0, 8)}`, '/CN=bearer-sidecar test server', `subjectAltName=${names.join(',')}\nextendedKeyUsage=serverAuth\n`),
  };
}

/** A self-signed certificate (PEM) for a private key given as PEM, as a provider's key registration wants one. */
export function selfSignedCertificate(privateKeyPem: string, subject = '/CN=bearer-sidecar test client'): string {
  const dir = mkdtempSync(join(tmpdir(), 'bsc-self-signed-'));
  writeFileSync(join(dir, 'key.pem'), privateKeyPem);
  execFileSync('openssl', ['req', '-x509', '-key', 'key.pem', '-subj', subject, '-days', '2', '-out', 'cert.pem'], { cwd: dir, stdio: 'pipe' });
  return readFileSync(join(dir, 'cert.pem'), 'utf8');
}

export type SigningKeyKind = 'rsa' | 'rsa-1024' | 'P-256' | 'P-384' | 'P-521' | 'secp256k1' | 'ed25519' | 'ed448';

export interface SigningKey {
  readonly privateKey: KeyObject;
  /** The public key as a JWK, for an identity provider's client registration. */
  readonly publicJwk: Record<string, unknown>;
  /** The private key as PEM: PKCS#8 always; PKCS#1 for RSA and SEC1 for EC keys. */
  readonly pem: { readonly pkcs8: string; readonly pkcs1?: string; readonly sec1?: string };
}

/** A fresh key pair of `kind`, with its private key in every PEM format that kind has. */
export function makeSigningKey(kind: SigningKeyKind): SigningKey {
  const { privateKey, publicKey } =
    kind === 'rsa' || kind === 'rsa-1024'
      ? generateKeyPairSync('rsa', { modulusLength: kind === 'rsa' ? 2048 : 1024 })
      : kind === 'ed25519' || kind === 'ed448'
        ? generateKeyPairSync(kind as 'ed25519')
        : generateKeyPairSync('ec', { namedCurve: kind });
  const pem = (type: 'pkcs8' | 'pkcs1' | 'sec1') => privateKey.export({ type, format: 'pem' } as never) as unknown as string;
  return {
    privateKey,
    publicJwk: publicKey.export({ format: 'jwk' }) as Record<string, unknown>,
    pem: {
      pkcs8: pem('pkcs8'),
      ...(privateKey.asymmetricKeyType === 'rsa' ? { pkcs1: pem('pkcs1') } : {}),
      ...(privateKey.asymmetricKeyType === 'ec' ? { sec1: pem('sec1') } : {}),
    },
  };
}

export interface HttpsRecorder {
  readonly url: string;
  /** The Authorization header of every request that reached it. */
  readonly saw: (string | undefined)[];
  close(): Promise<void>;
}

/** An HTTPS server with this certificate (e.g. a TestPki's `server`) that answers 200 `{ path }` and records each request's Authorization. */
export async function startHttpsRecorder(certificate: Pick<CertificateFiles, 'key' | 'cert'>): Promise<HttpsRecorder> {
  const saw: (string | undefined)[] = [];
  const server = createServer({ key: certificate.key, cert: certificate.cert }, (req, res) => {
    saw.push(req.headers.authorization);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, saw, close: () => closeServer(server) };
}
