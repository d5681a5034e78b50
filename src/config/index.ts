// Where the configuration comes from: --config FILE, else $BEARER_SIDECAR_CONFIG, else
// BEARER_SIDECAR_* variables for a single route.

import { ConfigError } from '../errors.js';
import { configFromEnv, envPrefix } from './env.js';
import { loadConfigFile, resolveConfig } from './load.js';
import type { SidecarConfig } from './types.js';

export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): SidecarConfig {
  const path = file ?? env.BEARER_SIDECAR_CONFIG;
  if (path) return loadConfigFile(path, { env });
  const hasEnv = Object.keys(env).some((key) => key.startsWith(envPrefix) && env[key] !== '');
  if (!hasEnv) {
    throw new ConfigError(['no configuration: pass --config FILE, set BEARER_SIDECAR_CONFIG, or set BEARER_SIDECAR_* variables (see --help)']);
  }
  const { raw, fieldNames } = configFromEnv(env);
  return resolveConfig(raw, { env, fieldNames });
}

export type { SidecarConfig, RouteConfig, AuthConfig } from './types.js';
