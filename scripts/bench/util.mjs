// Small helpers the benchmark scripts share (bench.mjs, ab.mjs, coldstart.mjs).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

/** Clock ticks per second, the unit of /proc's CPU times. */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100;
  } catch {
    return 100;
  }
})();

/** The fields of /proc/PID/stat after the command name (the first is the state), or undefined once the process is gone. */
function procStat(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds a process has used; NaN once it is gone. */
export const cpuSeconds = (pid) => {
  const f = procStat(pid);
  return f ? (Number(f[11]) + Number(f[12])) / CLK_TCK : NaN;
};

/** Major page faults of a process so far (majflt); NaN once it is gone. */
export const majorFaults = (pid) => {
  const f = procStat(pid);
  return f ? Number(f[9]) : NaN;
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
