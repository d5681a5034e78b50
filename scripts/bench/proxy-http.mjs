// Baseline 1: node:http server + keep-alive http.Agent, static Authorization header.
// Usage: node proxy-http.mjs PORT UPSTREAM_PORT
import http from 'node:http';

const [port, upstreamPort] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
http
  .createServer((req, res) => {
    const headers = { ...req.headers, authorization: 'Bearer static-bench-token' };
    const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers, agent }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => { res.statusCode = 502; res.end(); });
    req.pipe(up);
  })
  .listen(port, '127.0.0.1', () => process.send?.('ready'));
process.on('SIGTERM', () => process.exit(0));
