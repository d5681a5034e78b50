// Benchmark upstream: a minimal node:http server. Run as its own process.
//   GET  /            small JSON body (the main case)
//   GET  /big         1 MiB body from one preallocated buffer
//   GET  /bytes/<n>   n bytes, streamed in 64 KiB chunks with backpressure
//   POST|PUT any      counts the body's bytes, answers {"bytes":n}
// Usage: node upstream.mjs PORT
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? 18000);
const small = Buffer.from(JSON.stringify({ ok: true, id: 12345, name: 'bench', items: [1, 2, 3] }));
const big = Buffer.alloc(1024 * 1024, 'x');
const chunk = Buffer.alloc(64 * 1024, 'x');
const smallHeaders = { 'content-type': 'application/json', 'content-length': String(small.length) };
const bigHeaders = { 'content-type': 'application/octet-stream', 'content-length': String(big.length) };

const server = createServer((req, res) => {
  if (req.method === 'POST' || req.method === 'PUT') {
    let bytes = 0;
    req.on('data', (d) => (bytes += d.length));
    req.on('end', () => {
      const body = JSON.stringify({ bytes });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
    });
    return;
  }
  const url = req.url;
  if (url === '/big') {
    res.writeHead(200, bigHeaders);
    res.end(big);
    return;
  }
  if (url.startsWith('/bytes/')) {
    let left = Number(url.slice(7));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(left) });
    const write = () => {
      while (left > 0) {
        const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= part.length;
        if (!res.write(part)) return void res.once('drain', write);
      }
      res.end();
    };
    write();
    return;
  }
  res.writeHead(200, smallHeaders);
  res.end(small);
});
server.keepAliveTimeout = 65_000;
server.listen(port, '127.0.0.1', () => process.send?.('ready'));
process.on('SIGTERM', () => process.exit(0));
