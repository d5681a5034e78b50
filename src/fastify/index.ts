// bearer-sidecar/fastify: the Fastify plugin (a subpath of its own, so that the main entry never
// needs @fastify/http-proxy).
export { bearerProxy, type BearerProxyOptions } from './plugin.js';
export type { AuthOptions, TlsOptions } from '../config/schema.js';
