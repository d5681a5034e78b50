// Type-checked (not run) inside the packed app by package.test.ts: the `types` of both entries
// resolve through package.json `exports`, and `auth` is typed by the config file's schema.
import Fastify from 'fastify';
import { bearerInterceptor, createTokenSource, type AuthOptions, type BearerTokenSource } from 'bearer-sidecar';
import { bearerProxy, type BearerProxyOptions } from 'bearer-sidecar/fastify';
import { Agent } from 'undici';

const auth: AuthOptions = { preset: 'megaport', clientIdFile: '/run/secrets/id', clientSecretFile: '/run/secrets/secret', retry: { retries: 3 } };
const app = Fastify();
const options: BearerProxyOptions = { prefix: '/megaport', auth };
void app.register(bearerProxy, options);
const source: BearerTokenSource = createTokenSource(auth, { name: 'megaport' });
const token: Promise<string> = source.getToken();
const dispatcher = new Agent().compose(bearerInterceptor(source, { origins: ['https://api.megaport.com'] }));
// @ts-expect-error an unknown auth field is a type error too
createTokenSource({ tokenUrl: 'https://auth.example.com/token', clientId: 'id', clientSecret: 'secret', clientSecrett: 'typo' });
void token;
void dispatcher;
