// Upstream and token-endpoint TLS: certificates are verified by default (an unknown CA means 502,
// and the token never leaves), a private CA is trusted with tls.caFile, and switching verification
// off takes an explicit field and logs a warning. Certificates are made with the openssl CLI at
// test time; without it these tests are skipped, saying so.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { closeServer } from '../../src/demo/token-server.js';
import { makeTestPki, opensslMissing, startHttpsRecorder, type HttpsRecorder } from '../helpers/certs.js';
import { issue, startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';
import { startSidecar } from '../helpers/sidecar.js';

describe('TLS to upstreams and token endpoints', { skip: opensslMissing }, () => {
  let caFile: string;
  let httpsUpstream: HttpsRecorder;
  let upstreamUrl: string;
  let upstreamSaw: (string | undefined)[];
  let httpsTokens: Server;
  let httpsTokenUrl: string;
  let tokens: ScriptedTokenServer;

  before(async () => {
    const pki = makeTestPki();
    const made = pki.server;
    caFile = pki.caFile;
    httpsUpstream = await startHttpsRecorder(made);
    upstreamUrl = httpsUpstream.url;
    upstreamSaw = httpsUpstream.saw;
    httpsTokens = createServer({ key: made.key, cert: made.cert }, (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(issue(3600)));
    });
    await new Promise<void>((resolve) => httpsTokens.listen(0, '127.0.0.1', resolve));
    httpsTokenUrl = `https://127.0.0.1:${(httpsTokens.address() as AddressInfo).port}/token`;
    tokens = await startScriptedTokenServer();
  });
  after(async () => {
    await Promise.all([httpsUpstream.close(), closeServer(httpsTokens), tokens.close()]);
  });

  const auth = (extra: Record<string, unknown> = {}) => ({ tokenUrl: tokens.url, clientId: 'id', clientSecret: 'secret', retry: { retries: 0, minDelayMs: 1, maxDelayMs: 1, maxTimeMs: 2000 }, ...extra });

  test('an upstream certificate from an unknown CA: 502, and no token is sent', async () => {
    const sidecar = await startSidecar({ routes: [{ name: 'r', upstream: upstreamUrl, auth: auth() }] });
    try {
      const before = upstreamSaw.length;
      const response = await fetch(`${sidecar.proxyUrl}/x`);
      assert.equal(response.status, 502);
      assert.equal(((await response.json()) as { error: string }).error, 'upstream_unreachable');
      assert.equal(upstreamSaw.length, before, 'the TLS handshake failed before any request was sent');
    } finally {
      await sidecar.close();
    }
  });

  test('tls.caFile: the private CA is trusted and the request goes through', async () => {
    const sidecar = await startSidecar({ routes: [{ name: 'r', upstream: `${upstreamUrl}/base`, tls: { caFile }, auth: auth() }] });
    try {
      const response = await fetch(`${sidecar.proxyUrl}/x`);
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { path: '/base/x' });
      assert.match(upstreamSaw.at(-1) ?? '', /^Bearer /);
    } finally {
      await sidecar.close();
    }
  });

  test('tls.rejectUnauthorized: false works only when written out, and logs a warning at start', async () => {
    const sidecar = await startSidecar({ routes: [{ name: 'r', upstream: upstreamUrl, tls: { rejectUnauthorized: false }, auth: auth() }] });
    try {
      assert.equal((await fetch(`${sidecar.proxyUrl}/x`)).status, 200);
      const warning = sidecar.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.level === 'warn' && l.target === 'upstream');
      assert.match(String(warning?.msg), /TLS certificate verification is OFF for the upstream of route "r"/);
    } finally {
      await sidecar.close();
    }
  });

  test('a token endpoint certificate from an unknown CA: 503 token_unavailable; auth.tls.caFile fixes it', async () => {
    const refused = await startSidecar({ routes: [{ name: 'r', upstream: upstreamUrl, tls: { caFile }, auth: auth({ tokenUrl: httpsTokenUrl }) }] });
    try {
      const response = await fetch(`${refused.proxyUrl}/x`);
      assert.equal(response.status, 503);
      assert.equal(((await response.json()) as { error: string }).error, 'token_unavailable');
    } finally {
      await refused.close();
    }
    const trusted = await startSidecar({ routes: [{ name: 'r', upstream: upstreamUrl, tls: { caFile }, auth: auth({ tokenUrl: httpsTokenUrl, tls: { caFile } }) }] });
    try {
      assert.equal((await fetch(`${trusted.proxyUrl}/x`)).status, 200);
    } finally {
      await trusted.close();
    }
  });

  test('a reload that adds tls.caFile (upstream and token endpoint): new requests trust the CA; removing it brings the refusal back', async () => {
    const untrusted = { routes: [{ name: 'r', upstream: upstreamUrl, auth: auth({ tokenUrl: httpsTokenUrl }) }] };
    const sidecar = await startSidecar(untrusted);
    try {
      assert.equal((await fetch(`${sidecar.proxyUrl}/x`)).status, 503, 'the token endpoint is not trusted');
      await sidecar.reload({ routes: [{ name: 'r', upstream: upstreamUrl, tls: { caFile }, auth: auth({ tokenUrl: httpsTokenUrl, tls: { caFile } }) }] });
      assert.equal((await fetch(`${sidecar.proxyUrl}/x`)).status, 200);
      await sidecar.reload({ routes: [{ name: 'r', upstream: upstreamUrl, auth: auth({ tls: { caFile } }) }] });
      const refused = await fetch(`${sidecar.proxyUrl}/x`);
      assert.equal(refused.status, 502, 'the upstream is no longer trusted');
      assert.equal(((await refused.json()) as { error: string }).error, 'upstream_unreachable');
    } finally {
      await sidecar.close();
    }
  });

  test('connect options: verification always explicit (reply-from would default it off), one secure context per CA', async () => {
    const { tlsConnectOptions } = await import('../../src/tls.js');
    const options = tlsConnectOptions({ ca: readFileSync(caFile, 'utf8'), caFile, rejectUnauthorized: true });
    assert.equal(options.rejectUnauthorized, true);
    assert.ok(options.secureContext);
    assert.deepEqual(tlsConnectOptions({ ca: undefined, caFile: undefined, rejectUnauthorized: true }), { rejectUnauthorized: true });
  });
});
