// openTunnel against proxies that answer CONNECT byte by byte as the test writes them: answers
// split over many writes, tunnel bytes right behind the 200, HTTP/1.0 answers, refusals with a
// body, garbage, headers too large, and silence. Each outcome is checked from the proxy's side
// too: a failed tunnel leaves no connection open at the proxy.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, test } from 'node:test';
import { OutboundProxyError } from '../../src/outbound/errors.js';
import { ProxyEndpoint } from '../../src/config/proxy-endpoint.js';
import { openTunnel, tunnelConnector, webSocketConnector } from '../../src/outbound/tunnel.js';

interface ScriptedProxy {
  readonly endpoint: ProxyEndpoint;
  /** The request head of each CONNECT, as the proxy read it. */
  readonly heads: string[];
  /** Connections accepted and not yet closed. */
  readonly open: number;
  close(): Promise<void>;
}

/** A proxy that reads a CONNECT request head, then runs `answer` on the connection. */
async function scriptedProxy(answer: (socket: Socket) => Promise<void> | void, credentials = ''): Promise<ScriptedProxy> {
  const sockets = new Set<Socket>();
  const heads: string[] = [];
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      heads.push(head);
      void answer(socket);
    };
    socket.on('data', onData);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const endpoint = ProxyEndpoint.parse(`http://${credentials}127.0.0.1:${port}`);
  assert.ok(endpoint instanceof ProxyEndpoint);
  return {
    endpoint,
    heads,
    get open() {
      return sockets.size;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** Waits (generously: the machine may be loaded) until the proxy has no open connection. */
async function allClosed(proxy: ScriptedProxy): Promise<void> {
  for (let waited = 0; proxy.open > 0; waited += 10) {
    if (waited > 10_000) assert.fail(`${proxy.open} connection(s) still open at the proxy`);
    await sleep(10);
  }
}

async function writeSlowly(socket: Socket, text: string, pieces: number): Promise<void> {
  const size = Math.ceil(text.length / pieces);
  for (let i = 0; i < text.length; i += size) {
    socket.write(text.slice(i, i + size));
    await sleep(5);
  }
}

/** The next chunk the socket reads, as text. */
async function nextText(socket: Socket): Promise<string> {
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  return chunk.toString();
}

async function refusal(promise: Promise<unknown>): Promise<OutboundProxyError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof OutboundProxyError, `an OutboundProxyError, not ${String(err)}`);
    return err;
  }
  return assert.fail('the tunnel opened');
}

describe('openTunnel: the answer to CONNECT', () => {
  const proxies: ScriptedProxy[] = [];
  const start = async (answer: (socket: Socket) => Promise<void> | void, credentials?: string) => {
    const proxy = await scriptedProxy(answer, credentials);
    proxies.push(proxy);
    return proxy;
  };
  after(async () => {
    await Promise.all(proxies.map((proxy) => proxy.close()));
  });
  /** A proxy that lets the tunnel open, keeps the first bytes sent through it (a TLS ClientHello), and answers them with no TLS server's answer. */
  const helloCatcher = async () => {
    let hello: Buffer = Buffer.alloc(0);
    const proxy = await start((socket) => {
      socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
      socket.once('data', (chunk: Buffer) => {
        hello = chunk;
        socket.write('HTTP/1.1 400 Bad Request\r\n\r\n');
      });
    });
    return { proxy, hello: () => hello };
  };

  test('asks for host:port with Host and the decoded Proxy-Authorization; an answer split over many writes, and the bytes behind it, reach the caller', async () => {
    const proxy = await start(async (socket) => {
      await writeSlowly(socket, 'HTTP/1.1 200 Connection established\r\nX-Proxy: one\r\nX-Long: ' + 'y'.repeat(200) + '\r\n\r\n', 12);
      // The target speaks first, in the same write as nothing else.
      socket.write('hello from the target');
      socket.pipe(socket);
    }, 'u%40x:p%3As%25@');
    const tunnel = await openTunnel(proxy.endpoint, 'api.example', 8443, 5000);
    try {
      const head = proxy.heads[0] ?? '';
      assert.match(head, /^CONNECT api\.example:8443 HTTP\/1\.1\r\n/);
      assert.match(head, /\r\nhost: api\.example:8443\r\n/i);
      assert.match(head, new RegExp(`\\r\\nproxy-authorization: Basic ${Buffer.from('u@x:p:s%').toString('base64')}\\r\\n`, 'i'));
      assert.equal(await nextText(tunnel), 'hello from the target');
      tunnel.write('echo');
      assert.equal(await nextText(tunnel), 'echo');
    } finally {
      tunnel.destroy();
    }
    await allClosed(proxy);
  });

  test('tunnel bytes in the same write as the 200 are kept; HTTP/1.0 answers work; IPv6 targets go in brackets', async () => {
    const proxy = await start((socket) => {
      socket.write('HTTP/1.0 200 Connection established\r\nProxy-Agent: test\r\n\r\nfirst bytes');
    });
    const tunnel = await openTunnel(proxy.endpoint, '::1', 443, 5000);
    const first = await nextText(tunnel).finally(() => tunnel.destroy());
    assert.equal(first, 'first bytes');
    assert.match(proxy.heads[0] ?? '', /^CONNECT \[::1\]:443 HTTP\/1\.1\r\n/);
    await allClosed(proxy);
  });

  test('a refusal with a body: BSC_OUTBOUND_PROXY_REFUSED naming the status, the connection closed', async () => {
    const proxy = await start((socket) => {
      const body = '<html>'.padEnd(5000, 'x');
      socket.write(`HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="x"\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 100)}`);
    });
    const err = await refusal(openTunnel(proxy.endpoint, 'api.example', 443, 5000));
    assert.equal(err.code, 'BSC_OUTBOUND_PROXY_REFUSED');
    assert.equal(err.retryable, false);
    assert.match(err.message, /refused the connection to api\.example:443: 407 Proxy Authentication Required/);
    await allClosed(proxy);
  });

  test('silence: BSC_OUTBOUND_PROXY_TIMEOUT within the bound, the connection closed', async () => {
    const proxy = await start(() => {});
    const started = Date.now();
    const err = await refusal(openTunnel(proxy.endpoint, 'api.example', 443, 300));
    assert.equal(err.code, 'BSC_OUTBOUND_PROXY_TIMEOUT');
    assert.ok(Date.now() - started < 5000);
    await allClosed(proxy);
  });

  test('not HTTP (a SOCKS proxy, say): BSC_OUTBOUND_PROXY_UNREACHABLE saying the answer is not HTTP, the connection closed', async () => {
    // What a SOCKS5 server answers to bytes it does not understand.
    const proxy = await start((socket) => {
      socket.write(Buffer.from([0x05, 0xff]));
    });
    const err = await refusal(openTunnel(proxy.endpoint, 'api.example', 443, 5000));
    assert.equal(err.code, 'BSC_OUTBOUND_PROXY_UNREACHABLE');
    assert.match(err.message, /^the outbound proxy 127\.0\.0\.1:\d+ answered CONNECT with something that is not HTTP: is it an HTTP proxy, and does it speak the URL's scheme\? \(on the way to api\.example:443\)$/);
    await allClosed(proxy);
  });

  test('headers larger than the limit: refused without reading on, the connection closed', async () => {
    const proxy = await start((socket) => {
      socket.write(`HTTP/1.1 200 Connection established\r\nX-Big: ${'z'.repeat(64 * 1024)}\r\n\r\n`);
    });
    const err = await refusal(openTunnel(proxy.endpoint, 'api.example', 443, 5000));
    assert.equal(err.code, 'BSC_OUTBOUND_PROXY_UNREACHABLE');
    assert.match(err.message, /answered CONNECT with headers larger than .* \(on the way to api\.example:443\)$/);
    await allClosed(proxy);
  });

  test('an answer cut off mid-headers: BSC_OUTBOUND_PROXY_UNREACHABLE, closed before answering', async () => {
    const proxy = await start((socket) => {
      socket.end('HTTP/1.1 200 Connection est');
    });
    const err = await refusal(openTunnel(proxy.endpoint, 'api.example', 443, 5000));
    assert.equal(err.code, 'BSC_OUTBOUND_PROXY_UNREACHABLE');
    await allClosed(proxy);
  });

  test('https:// through tunnelConnector: the TLS ClientHello inside the tunnel names the target (SNI), and a failed handshake closes the tunnel', async () => {
    const { proxy, hello } = await helloCatcher();
    const connect = tunnelConnector(proxy.endpoint, { rejectUnauthorized: true }, 5000);
    const err = await new Promise<Error | null>((resolve) => {
      connect({ hostname: 'api.example', host: 'api.example:8443', protocol: 'https:', port: '8443', servername: 'api.example' } as Parameters<typeof connect>[0], (error, socket) => {
        socket?.destroy();
        resolve(error);
      });
    });
    assert.ok(err, 'the handshake failed');
    assert.equal(hello()[0], 0x16, 'a TLS handshake record came through the tunnel');
    assert.ok(hello().includes(Buffer.from('api.example')), 'with the target as server name');
    assert.match(proxy.heads[0] ?? '', /^CONNECT api\.example:8443 /);
    await allClosed(proxy);
  });

  test('wss:// through webSocketConnector: SNI names the target, the request path is not taken for a Unix socket, and a failed handshake closes the tunnel', async () => {
    const { proxy, hello } = await helloCatcher();
    const connect = webSocketConnector(proxy.endpoint, true, 5000);
    const failed = await new Promise<Error>((resolve, reject) => {
      // As node:http passes ws's options: host without brackets, the request path, the route's TLS settings.
      connect({ host: 'api.example', port: 8443, path: '/stream?x=1', rejectUnauthorized: true } as Parameters<typeof connect>[0], (error, socket) => {
        if (error || !socket) return reject(error ?? new Error('no socket'));
        socket.once('error', (err) => {
          socket.destroy();
          resolve(err);
        });
      });
    });
    assert.ok(failed);
    assert.equal(hello()[0], 0x16, 'a TLS handshake record came through the tunnel');
    assert.ok(hello().includes(Buffer.from('api.example')), 'with the target as server name');
    await allClosed(proxy);
  });
});
