// The library surface, for programs that embed the sidecar.
export { loadConfig } from './config/index.js';
export { resolveConfig, loadConfigFile } from './config/load.js';
export type { SidecarConfig, RouteConfig, AuthConfig } from './config/types.js';
export { presets, type PresetName } from './config/presets.js';
export { createSidecar, type LiveConfig, type ReloadResult, type Sidecar, type SidecarOptions } from './server.js';
export { TokenSource, type TokenStatus } from './token/token-source.js';
export { exchangeClientCredentials, type Token } from './token/exchange.js';
export { systemClock, type Clock } from './token/clock.js';
export { SidecarError, ConfigError } from './errors.js';
export { TokenError } from './token/errors.js';
// In-process use: the token source and an undici interceptor for any Node program (docs/library.md).
// The Fastify plugin is bearer-sidecar/fastify.
export { createTokenSource, type BearerTokenSource, type CreateTokenSourceOptions, type TokenSourceLike } from './library/token-source.js';
export { bearerInterceptor, type BearerInterceptorOptions } from './library/interceptor.js';
export type { AuthOptions, TlsOptions } from './config/schema.js';
