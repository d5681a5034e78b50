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
