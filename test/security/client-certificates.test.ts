// Client certificates to upstreams (routes[].tls certFile/keyFile): an HTTPS upstream that requires
// one, made with the test CA, is refused without it and reached with it, by plain requests and
// WebSocket upgrades alike. Rotated certificate files (a Kubernetes Secret swap) are presented on
// the next new connection without a restart; files that cannot be used leave the previous
// certificate in place, and the sidecar says so. The Fastify plugin's `tls` presents the
// certificate too (plain requests, with rotation, and WebSocket dials).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import Fastify from 'fastify';
import { WebSocketServer } from 'ws';
import { bearerProxy } from '../../src/fastify/index.js';
import { closeServer } from '../../src/demo/token-server.js';
import { audit, call } from '../helpers/audit.js';
import { makeTestPki, opensslMissing, type CertificateFiles, type TestPki } from '../helpers/certs.js';
import { secretVolume } from '../helpers/config.js';
import { startScriptedTokenServer, type ScriptedTokenServer } from '../helpers/servers.js';
import { eventually, route, startSidecar } from '../helpers/sidecar.js';
import { echo, openSocket } from '../helpers/websocket.js';

describe('client certificates to upstreams', { skip: opensslMissing }, () => {
  let pki: TestPki;
  let tokens: ScriptedTokenServer;
  let upstream: Server;
  let upstreamUrl: string;
  /** The subject CN of the client certificate of every request (and upgrade) the upstream served. */
  const seen: string[] = [];
  let reporting: CertificateFiles;

  before(async () => {
    pki = makeTestPki();
    reporting = pki.client('reporting');
    tokens = await startScriptedTokenServer();
    // Requires a certificate from the test CA; every answer closes its connection, so each
    // request is a new connection (and a new handshake) from the sidecar.
    upstream = createServer({ key: pki.server.key, cert: pki.server.cert, ca: pki.ca, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      seen.push(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN));
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json', connection: 'close' }).end(JSON.stringify({ path: req.url, authorized: Boolean(req.headers.authorization) }));
    });
    const wss = new WebSocketServer({ noServer: true });
    upstream.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      seen.push(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN));
      wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (data) => ws.send(data)));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    upstreamUrl = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  });
  after(async () => {
    upstream.closeAllConnections();
    await Promise.all([closeServer(upstream), tokens.close()]);
    audit.assertNothingLeaked();
  });

  test('without a client certificate the upstream refuses the handshake: 502, and no request (no token) reaches it', async () => {
    const sidecar = await startSidecar({ routes: [route(tokens.url, upstreamUrl, { tls: { caFile: pki.caFile } })] });
    try {
      const before = seen.length;
      const answer = await call(`${sidecar.proxyUrl}/x`);
      assert.equal(answer.status, 502);
      // The upstream ends the handshake; to the sidecar that is a connection closed by the other side.
      assert.equal(answer.json().error, 'upstream_reset');
      assert.equal(seen.length, before);
    } finally {
      await sidecar.close();
    }
  });

  test('tls.certFile and tls.keyFile: the certificate is presented and the request goes through', async () => {
    const sidecar = await startSidecar({ routes: [route(tokens.url, upstreamUrl, { tls: { caFile: pki.caFile, certFile: reporting.certFile, keyFile: reporting.keyFile } })] });
    try {
      const answer = await call(`${sidecar.proxyUrl}/x`);
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.json(), { path: '/x', authorized: true });
      assert.equal(seen.at(-1), 'reporting');
    } finally {
      await sidecar.close();
    }
  });

  test('an encrypted key opens with tls.keyPassphraseFile', async () => {
    const locked = pki.client('locked', { passphrase: 'open sesame, 2 words' });
    audit.addSecret('open sesame, 2 words');
    const sidecar = await startSidecar({
      routes: [route(tokens.url, upstreamUrl, { tls: { caFile: pki.caFile, certFile: locked.certFile, keyFile: locked.keyFile, keyPassphraseFile: locked.passphraseFile } })],
    });
    try {
      assert.equal((await call(`${sidecar.proxyUrl}/x`)).status, 200);
      assert.equal(seen.at(-1), 'locked');
    } finally {
      await sidecar.close();
    }
  });

  test('WebSocket upgrades present the route\'s client certificate too', async () => {
    const sidecar = await startSidecar({
      routes: [route(tokens.url, upstreamUrl, { websocket: true, tls: { caFile: pki.caFile, certFile: reporting.certFile, keyFile: reporting.keyFile } })],
    });
    try {
      const socket = await openSocket(`${sidecar.proxyUrl.replace(/^http/, 'ws')}/socket`);
      assert.equal((await echo(socket, 'ping')).data.toString(), 'ping');
      assert.equal(seen.at(-1), 'reporting');
      socket.terminate();
    } finally {
      await sidecar.close();
    }
  });

  test('the Fastify plugin presents its tls client certificate to the upstream, for requests and WebSocket upgrades', async () => {
    const app = Fastify();
    await app.register(bearerProxy, {
      prefix: '/api',
      upstream: upstreamUrl,
      websocket: true,
      auth: { tokenUrl: tokens.url, clientId: 'test-client', clientSecret: 'test-secret' },
      tls: { caFile: pki.caFile, certFile: reporting.certFile, keyFile: reporting.keyFile },
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const before = seen.length;
      const { port } = app.server.address() as AddressInfo;
      const answer = await call(`http://127.0.0.1:${port}/api/x`);
      assert.equal(answer.status, 200, answer.text);
      assert.deepEqual(seen.slice(before), ['reporting']);
      const socket = await openSocket(`ws://127.0.0.1:${port}/api/socket`);
      assert.equal((await echo(socket, 'ping')).data.toString(), 'ping');
      socket.terminate();
      assert.deepEqual(seen.slice(before), ['reporting', 'reporting']);
    } finally {
      await app.close();
    }
  });

  test('rotated certificate files are presented on the next new connection, without a restart; unusable files leave the previous certificate in use', async () => {
    const next = pki.client('reporting-next');
    const volume = secretVolume({ 'tls.crt': reporting.cert.toString(), 'tls.key': reporting.key.toString() });
    const tls = { caFile: pki.caFile, certFile: join(volume.dir, 'tls.crt'), keyFile: join(volume.dir, 'tls.key') };
    const sidecar = await startSidecar({ routes: [route(tokens.url, upstreamUrl, { websocket: true, tls })] });
    const lines = () => sidecar.logs.map((line) => JSON.parse(line) as Record<string, unknown>);
    try {
      assert.equal((await call(`${sidecar.proxyUrl}/x`)).status, 200);
      assert.equal(seen.at(-1), 'reporting');

      volume.rotate({ 'tls.crt': next.cert.toString(), 'tls.key': next.key.toString() });
      audit.addPrivateKey(next.key.toString());
      assert.equal((await call(`${sidecar.proxyUrl}/x`)).status, 200);
      assert.equal(seen.at(-1), 'reporting-next', 'the new certificate, on a new connection');
      assert.ok(lines().some((line) => line.msg === 'client certificate files changed; new connections present the new certificate'));
      const socket = await openSocket(`${sidecar.proxyUrl.replace(/^http/, 'ws')}/socket`);
      socket.terminate();
      assert.equal(seen.at(-1), 'reporting-next', 'WebSocket dials too');

      // A key that is not the certificate's: the previous pair stays in use, and the log says why, once.
      volume.rotate({ 'tls.crt': reporting.cert.toString(), 'tls.key': next.key.toString() });
      for (let i = 0; i < 2; i++) {
        assert.equal((await call(`${sidecar.proxyUrl}/x`)).status, 200);
        assert.equal(seen.at(-1), 'reporting-next');
      }
      const warnings = lines().filter((line) => line.msg === 'client certificate files changed but cannot be used; new connections present the previous certificate');
      assert.equal(warnings.length, 1);
      assert.match(String(warnings[0]?.reason), /tls\.key is not the key of the certificate in .*tls\.crt/);

      // Fixed: used at once.
      volume.rotate({ 'tls.crt': reporting.cert.toString(), 'tls.key': reporting.key.toString() });
      await eventually(async () => (await call(`${sidecar.proxyUrl}/x`)).status === 200 && seen.at(-1) === 'reporting');
    } finally {
      await sidecar.close();
    }
  });
  test('the Fastify plugin: tls.certFile and tls.keyFile are presented on requests and WebSocket dials, rotated files on the next connection or dial', async () => {
    const next = pki.client('plugin-next');
    const volume = secretVolume({ 'tls.crt': reporting.cert.toString(), 'tls.key': reporting.key.toString() });
    const tls = { caFile: pki.caFile, certFile: join(volume.dir, 'tls.crt'), keyFile: join(volume.dir, 'tls.key') };
    const app = Fastify();
    await app.register(bearerProxy, { prefix: '/api', upstream: upstreamUrl, websocket: true, tls, auth: { tokenUrl: tokens.url, clientId: 'test-client', clientSecret: 'test-secret' } });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/api`;
    try {
      const answer = await call(`${base}/x`);
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.json(), { path: '/x', authorized: true });
      assert.equal(seen.at(-1), 'reporting');
      const socket = await openSocket(`${base.replace(/^http/, 'ws')}/socket`);
      assert.equal((await echo(socket, 'ping')).data.toString(), 'ping');
      assert.equal(seen.at(-1), 'reporting', 'the WebSocket dial presents it');
      socket.terminate();

      volume.rotate({ 'tls.crt': next.cert.toString(), 'tls.key': next.key.toString() });
      audit.addPrivateKey(next.key.toString());
      assert.equal((await call(`${base}/x`)).status, 200);
      assert.equal(seen.at(-1), 'plugin-next', 'the new certificate, on a new connection');
      // WebSocket dials too: http-proxy fixed its options at registration, the dial reads the files.
      const again = await openSocket(`${base.replace(/^http/, 'ws')}/socket`);
      assert.equal((await echo(again, 'pong')).data.toString(), 'pong');
      assert.equal(seen.at(-1), 'plugin-next', 'the WebSocket dial presents the rotated certificate');
      again.terminate();
    } finally {
      await app.close();
    }
  });
});
