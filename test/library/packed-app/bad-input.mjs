// An invalid `auth`, given to the plugin and to createTokenSource, inside the packed app
// (package.test.ts): both refuse it with the config file's messages. Prints one JSON line.
import Fastify from 'fastify';
import { createTokenSource } from 'bearer-sidecar';
import { bearerProxy } from 'bearer-sidecar/fastify';

const refusal = (err) => ({ name: err.name, code: err.code, problems: err.problems, message: err.message });
const results = {};
const app = Fastify();
try {
  await app.register(bearerProxy, { upstream: 'http://127.0.0.1:9', auth: { tokenUrl: 'not a url', clientId: 'id' } });
  results.register = 'accepted';
} catch (err) {
  results.register = refusal(err);
}
try {
  createTokenSource({ tokenUrl: 'https://auth.example.com/token', clientId: 'id', clientSecret: 'secret', retry: { retries: 'many' } });
  results.createTokenSource = 'accepted';
} catch (err) {
  results.createTokenSource = refusal(err);
}
console.log(JSON.stringify(results));
