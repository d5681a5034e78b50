// Where the configuration comes from: --config FILE, else $BEARER_SIDECAR_CONFIG, else
// BEARER_SIDECAR_* variables for a single route. A reload (SIGHUP) reads it from the same place.

import { ConfigError } from '../errors.js';
import { configFromEnv, envPrefix } from './env.js';
import { loadConfigFile, resolveConfig } from './load.js';
import type { SidecarConfig } from './types.js';

/** Turns on --watch-config; not a config field, so not a sign that the environment holds a route. */
export const watchConfigVariable = 'BEARER_SIDECAR_WATCH_CONFIG';

/** The config file in use (--config FILE, else $BEARER_SIDECAR_CONFIG); undefined when the environment holds the config. */
export function configFile(file: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return (file ?? env.BEARER_SIDECAR_CONFIG) || undefined;
}

export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): SidecarConfig {
  const path = configFile(file, env);
  if (path) return loadConfigFile(path, { env });
  const hasEnv = Object.keys(env).some((key) => key.startsWith(envPrefix) && key !== watchConfigVariable && env[key] !== '');
  if (!hasEnv) {
    throw new ConfigError(['no configuration: pass --config FILE, set BEARER_SIDECAR_CONFIG, or set BEARER_SIDECAR_* variables (see --help)']);
  }
  const { raw, fieldNames } = configFromEnv(env);
  return resolveConfig(raw, { env, fieldNames });
}

export type { SidecarConfig, RouteConfig, AuthConfig } from './types.js';
