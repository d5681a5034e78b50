// The admin listener: liveness and readiness for probes. Never proxied; never shows a token.

import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { TokenSource } from './token/token-source.js';

export function createAdminApp(sources: readonly TokenSource[], logger: Logger): FastifyInstance {
  const app = Fastify({ loggerInstance: logger.child({ listener: 'admin' }) as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }) });

  app.get('/livez', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const routes = sources.map((source) => source.status());
    const ready = routes.every((route) => route.state === 'ready' || route.state === 'refreshing');
    reply.code(ready ? 200 : 503);
    return { ready, routes };
  });

  return app;
}
