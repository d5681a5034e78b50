// Baseline 2: node:http server + undici Pool, static Authorization header.
// Usage: node proxy-undici.mjs PORT UPSTREAM_PORT
import http from 'node:http';
import { Pool } from 'undici';

const [port, upstreamPort] = process.argv.slice(2).map(Number);
const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections: 128, pipelining: 1 });
http
  .createServer((req, res) => {
    const headers = { ...req.headers, authorization: 'Bearer static-bench-token' };
    delete headers.connection;
    delete headers['keep-alive'];
    delete headers['transfer-encoding'];
    delete headers.expect;
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    pool.request({ method: req.method, path: req.url, headers, body: hasBody ? req : null }).then(
      ({ statusCode, headers: h, body }) => {
        delete h.connection;
        delete h['keep-alive'];
        res.writeHead(statusCode, h);
        body.pipe(res);
      },
      () => { res.statusCode = 502; res.end(); },
    );
  })
  .listen(port, '127.0.0.1', () => process.send?.('ready'));
process.on('SIGTERM', () => process.exit(0));
