// Runs inside a temporary app that installed the packed bearer-sidecar next to fastify,
// @fastify/http-proxy and undici, as a user's app would (package.test.ts). Prints one JSON line of
// what it saw, and must then exit by itself: nothing it started may keep the process alive.
import Fastify from 'fastify';
import { bearerInterceptor, createTokenSource } from 'bearer-sidecar';
import { bearerProxy } from 'bearer-sidecar/fastify';
import { Agent, fetch as undiciFetch } from 'undici';

const { TOKEN_URL, UPSTREAM_URL } = process.env;
const results = {};
const answer = async (response) => ({ status: response.status, body: await response.json() });

// The plugin: 100 cold concurrent requests, each with an Authorization of its own.
const app = Fastify();
await app.register(bearerProxy, {
  prefix: '/api',
  upstream: UPSTREAM_URL,
  auth: { tokenUrl: TOKEN_URL, clientId: 'packed-plugin', clientSecret: 'packed-plugin-secret', refreshOn401CooldownSeconds: 0 },
});
await app.listen({ host: '127.0.0.1', port: 0 });
const base = `http://127.0.0.1:${app.server.address().port}/api`;
results.cold = await Promise.all(Array.from({ length: 100 }, (_, i) => fetch(`${base}/items/${i}`, { headers: { authorization: `Bearer caller-${i}` } }).then(answer)));
// The upstream revokes the token this request carries: the plugin replays it once with a new one.
results.revoked = await fetch(`${base}/revoke-me`).then(answer);
await app.close();

// The token source: 50 concurrent callers.
const source = createTokenSource({ tokenUrl: TOKEN_URL, clientId: 'packed-library', clientSecret: 'packed-library-secret' });
const tokens = await Promise.all(Array.from({ length: 50 }, () => source.getToken()));
results.library = { callers: tokens.length, distinct: new Set(tokens).size };

// The interceptor, with undici's fetch and with Node's own.
const dispatcher = new Agent().compose(bearerInterceptor(source, { origins: [UPSTREAM_URL] }));
results.interceptor = {
  undici: await undiciFetch(`${UPSTREAM_URL}/library/undici`, { dispatcher, headers: { authorization: 'Bearer caller-library' } }).then(answer),
  global: await fetch(`${UPSTREAM_URL}/library/global`, { dispatcher }).then(answer),
};
await source.close();
await dispatcher.close();
console.log(JSON.stringify(results));
