// Small helpers the benchmark scripts share (bench.mjs, ab.mjs, coldstart.mjs).
import { readFileSync } from 'node:fs';
import http from 'node:http';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

/** User + system CPU seconds a process has used (/proc, clock ticks of 10 ms). */
export const cpuSeconds = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};

/** GET on a fresh connection: resolves with the status, 0 on any failure; never throws. */
export const getStatus = (url) =>
  new Promise((res) => {
    const q = http.get(url, { agent: false, timeout: 1000 }, (r) => {
      r.resume();
      r.on('end', () => res(r.statusCode));
    });
    q.on('error', () => res(0));
    q.on('timeout', () => q.destroy());
  });

/** The config the bench tools start the sidecar with: one route, log level info (one line per request). */
export const sidecarYaml = ({ port, adminPort, route, upstream, tokenUrl, clientId, clientSecret }) => `listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: ${adminPort} }
logLevel: info
routes:
  - name: ${route}
    prefix: /
    upstream: ${upstream}
    auth:
      tokenUrl: ${tokenUrl}
      clientId: ${clientId}
      clientSecret: ${clientSecret}
`;
