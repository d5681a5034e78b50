// The plugin in an app that has not installed @fastify/http-proxy (package.test.ts hides it): the
// error says which package to install. Prints one JSON line.
import Fastify from 'fastify';
import { bearerProxy } from 'bearer-sidecar/fastify';

const app = Fastify();
try {
  await app.register(bearerProxy, { upstream: 'http://127.0.0.1:9', auth: { tokenUrl: 'http://127.0.0.1:9/token', clientId: 'id', clientSecret: 'secret' } });
  console.log(JSON.stringify({ register: 'accepted' }));
} catch (err) {
  console.log(JSON.stringify({ register: { code: err.code, message: err.message } }));
}
