// pino options in one place: level, redaction and the destination. Redaction is the last line of
// defence: the code never passes tokens or secrets to the logger in the first place.

import { pino, type Logger } from 'pino';
import type { LogLevel } from './config/types.js';

export const redactPaths = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'headers["proxy-authorization"]',
  'accessToken',
  'access_token',
  'token',
  'clientSecret',
  'client_secret',
  '*.authorization',
  '*.accessToken',
  '*.access_token',
  '*.token',
  '*.clientSecret',
  '*.client_secret',
];

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Where lines go; default stdout, written asynchronously off the request path. */
  readonly destination?: NodeJS.WritableStream | pino.DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: false });
  return pino(
    {
      level: options.level,
      base: { service: 'bearer-sidecar' },
      redact: { paths: redactPaths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
