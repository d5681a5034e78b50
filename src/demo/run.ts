// `npm run demo`: a local token endpoint, an echo upstream that only accepts tokens from it, and
// the sidecar in front; then one request through the sidecar to show the injected header.
// With --once it exits after that request (used by the tests); otherwise it runs until Ctrl-C.
// BEARER_SIDECAR_SOCKET=/path puts the sidecar on that Unix socket instead of 127.0.0.1:8080.

import { Agent, fetch as undiciFetch } from 'undici';
import { resolveConfig } from '../config/load.js';
import { createLogger } from '../logger.js';
import { createSidecar } from '../server.js';
import { startEchoUpstream } from './echo-upstream.js';
import { startTokenServer } from './token-server.js';

const once = process.argv.includes('--once');
const port = Number(process.env.BEARER_SIDECAR_PORT ?? 8080);
const adminPort = Number(process.env.BEARER_SIDECAR_ADMIN_PORT ?? 9901);
const socket = process.env.BEARER_SIDECAR_SOCKET || undefined;
const signingKey = 'demo-signing-key';

const tokenServer = await startTokenServer({ clients: [{ id: 'demo-client', secret: 'demo-secret' }], signingKey, expiresInSeconds: 300 });
const upstream = await startEchoUpstream({ signingKey });

const config = resolveConfig({
  listen: socket ? { socket } : { host: '127.0.0.1', port },
  admin: { host: '127.0.0.1', port: adminPort },
  logLevel: 'warn',
  drainTimeoutMs: 1000,
  routes: [
    {
      name: 'demo',
      prefix: '/',
      upstream: `${upstream.url}/api`,
      websocket: true,
      auth: { tokenUrl: tokenServer.url, method: 'client_secret_basic', clientId: 'demo-client', clientSecret: 'demo-secret' },
    },
  ],
});
const sidecar = await createSidecar(config, { logger: createLogger({ level: config.logLevel }) });
let proxyUrl: string;
let adminUrl: string;
try {
  ({ proxyUrl, adminUrl } = await sidecar.listen());
} catch (err) {
  const where = socket ?? `127.0.0.1:${port}`;
  console.error(`cannot listen on ${where} or ${adminPort} (${(err as NodeJS.ErrnoException).code}: ${(err as Error).message}); set BEARER_SIDECAR_PORT and BEARER_SIDECAR_ADMIN_PORT to free ports`);
  await shutdown(1);
}

console.log(`token endpoint  ${tokenServer.url}   (demo client: demo-client / demo-secret)`);
console.log(`echo upstream   ${upstream.url}/api   (answers 401 without a valid bearer token)`);
console.log(`bearer-sidecar  ${proxyUrl!}   (admin: ${adminUrl!}/readyz)\n`);

const direct = await fetch(`${upstream.url}/api/hello`);
console.log(`without the sidecar:  GET ${upstream.url}/api/hello -> ${direct.status} ${JSON.stringify(await direct.json())}`);

// On a Unix socket the URL's host is only a name; the connection goes to the socket file.
const base = socket ? 'http://localhost' : proxyUrl!;
const dispatcher = socket ? new Agent({ connect: { socketPath: socket } }) : undefined;
const response = await undiciFetch(`${base}/hello?from=demo`, { headers: { authorization: 'Basic caller-credentials-are-replaced' }, ...(dispatcher ? { dispatcher } : {}) });
const echo = (await response.json()) as { method: string; path: string; query: string; headers: Record<string, string>; tokenSubject: string };
await dispatcher?.close();
const injected = echo.headers.authorization ?? '';
console.log(`through the sidecar:  GET ${base}/hello?from=demo -> ${response.status}${socket ? ` (via ${socket})` : ''}`);
console.log(`  the upstream saw:   ${echo.method} ${echo.path}${echo.query}`);
console.log(`                      authorization: ${injected.slice(0, 20)}… (a ${injected.length - 7}-character token for "${echo.tokenSubject}", fetched by the sidecar)`);
console.log(`                      host: ${echo.headers.host}`);

if (once) await shutdown(response.status === 200 && injected.startsWith('Bearer ') ? 0 : 1);
const curl = socket ? `curl -s --unix-socket ${socket} http://localhost` : `curl -s ${proxyUrl!}`;
console.log(`\nTry it:\n  ${curl}/hello\n  curl -s ${adminUrl!}/readyz\nA WebSocket to /echo gets every message back. Press Ctrl-C to stop.`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void shutdown(0));

async function shutdown(code: number): Promise<never> {
  await sidecar.close().catch(() => {});
  await Promise.all([tokenServer.close(), upstream.close()]);
  process.exit(code);
}
