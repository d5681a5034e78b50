// `npm run demo`: a local token endpoint, an echo upstream that only accepts tokens from it, and
// the sidecar in front; then one request through the sidecar to show the injected header.
// With --once it exits after that request (used by the tests); otherwise it runs until Ctrl-C.

import { resolveConfig } from '../config/load.js';
import { createLogger } from '../logger.js';
import { createSidecar } from '../server.js';
import { startEchoUpstream } from './echo-upstream.js';
import { startTokenServer } from './token-server.js';

const once = process.argv.includes('--once');
const port = Number(process.env.BEARER_SIDECAR_PORT ?? 8080);
const adminPort = Number(process.env.BEARER_SIDECAR_ADMIN_PORT ?? 9901);
const signingKey = 'demo-signing-key';

const tokenServer = await startTokenServer({ clients: [{ id: 'demo-client', secret: 'demo-secret' }], signingKey, expiresInSeconds: 300 });
const upstream = await startEchoUpstream({ signingKey });

const config = resolveConfig({
  listen: { host: '127.0.0.1', port },
  admin: { host: '127.0.0.1', port: adminPort },
  logLevel: 'warn',
  drainTimeoutMs: 1000,
  routes: [
    {
      name: 'demo',
      prefix: '/',
      upstream: `${upstream.url}/api`,
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
  console.error(`cannot listen on 127.0.0.1:${port} or ${adminPort} (${(err as NodeJS.ErrnoException).code}); set BEARER_SIDECAR_PORT and BEARER_SIDECAR_ADMIN_PORT to free ports`);
  await shutdown(1);
}

console.log(`token endpoint  ${tokenServer.url}   (demo client: demo-client / demo-secret)`);
console.log(`echo upstream   ${upstream.url}/api   (answers 401 without a valid bearer token)`);
console.log(`bearer-sidecar  ${proxyUrl!}   (admin: ${adminUrl!}/readyz)\n`);

const direct = await fetch(`${upstream.url}/api/hello`);
console.log(`without the sidecar:  GET ${upstream.url}/api/hello -> ${direct.status} ${JSON.stringify(await direct.json())}`);

const response = await fetch(`${proxyUrl!}/hello?from=demo`, { headers: { authorization: 'Basic caller-credentials-are-replaced' } });
const echo = (await response.json()) as { method: string; path: string; query: string; headers: Record<string, string>; tokenSubject: string };
const injected = echo.headers.authorization ?? '';
console.log(`through the sidecar:  GET ${proxyUrl!}/hello?from=demo -> ${response.status}`);
console.log(`  the upstream saw:   ${echo.method} ${echo.path}${echo.query}`);
console.log(`                      authorization: ${injected.slice(0, 20)}… (a ${injected.length - 7}-character token for "${echo.tokenSubject}", fetched by the sidecar)`);
console.log(`                      host: ${echo.headers.host}`);

if (once) await shutdown(response.status === 200 && injected.startsWith('Bearer ') ? 0 : 1);
console.log(`\nTry it:\n  curl -s ${proxyUrl!}/hello\n  curl -s ${adminUrl!}/readyz\nPress Ctrl-C to stop.`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void shutdown(0));

async function shutdown(code: number): Promise<never> {
  await sidecar.close().catch(() => {});
  await Promise.all([tokenServer.close(), upstream.close()]);
  process.exit(code);
}
