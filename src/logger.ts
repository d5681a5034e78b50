// pino options in one place: level, redaction and the destination. Redaction is the last line of
// defence: the code never passes tokens or secrets to the logger in the first place.

import { pino, type Logger } from 'pino';
import type { LogLevel } from './config/types.js';

// Explicit paths only: pino 10's redactor costs ~15 µs per line for `*.x` wildcard paths and
// almost nothing for explicit ones (measured: 23 vs 9 µs a line), and every proxied request
// writes a line. These are the places such a value could sit in anything we log.
const sensitiveKeys = ['authorization', 'proxy-authorization', 'cookie', 'accessToken', 'access_token', 'token', 'clientSecret', 'client_secret'];
const containers = ['', 'headers.', 'req.headers.', 'err.'];
export const redactPaths = containers.flatMap((container) => sensitiveKeys.map((key) => (key.includes('-') ? `${container}["${key}"]`.replace('.[', '[') : `${container}${key}`)));

// pino's isoTime builds a Date and its ISO string for every line (~5 µs a request in the
// profile). Here lines in the same millisecond share one string, rebuilt only when Date.now()
// moves; and a new millisecond in the same second only appends its three digits to the cached
// date-and-time prefix. Same output: `,"time":"2026-11-26T00:10:59.123Z"`.
let timestampMs = Number.NaN;
let timestamp = '';
let prefixSecond = Number.NaN;
let prefix = ''; // `,"time":"2026-11-26T00:10:59.`
export function isoTimestamp(): string {
  const now = Date.now();
  if (now !== timestampMs) {
    timestampMs = now;
    const second = Math.floor(now / 1000);
    if (second !== prefixSecond) {
      prefixSecond = second;
      prefix = `,"time":"${new Date(now).toISOString().slice(0, -4)}`;
    }
    const ms = now - second * 1000;
    timestamp = `${prefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z"`;
  }
  return timestamp;
}

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Where lines go; default stdout, written asynchronously off the request path. */
  readonly destination?: NodeJS.WritableStream | pino.DestinationStream;
}

/**
 * Stdout, asynchronously and in batches: one write() per line cost ~20 µs of each request's CPU
 * (the profile's sonic-boom share). Lines are written once `batchBytes` are waiting, and at the
 * latest every `flushIntervalMs`; pino flushes what is left when the process exits, and the CLI
 * before it does on a signal. 16 KB batches (SonicBoom's largest, it writes at most 16 KiB at once)
 * gave 0.99 of the undici baseline's req/s at 100 connections against 0.90 with 4 KiB, in the same
 * A/B rounds (BENCHMARKS.md).
 *
 * SonicBoom in its buffer mode, each line handed over as a Buffer (issue 14): in its string mode
 * it appends every line to the batch's string and measures the whole batch's byte length, which
 * copies the batch (8 KB on average) once a line: a third of all the memory a request allocated
 * on the JavaScript heap, and the young-generation collections that came with it. A line's Buffer
 * comes from Node's pool; the batch is concatenated once, when written.
 */
export const flushIntervalMs = 100;
export const batchBytes = 16_000;
export function stdoutDestination(): pino.DestinationStream {
  const boom = pino.destination({ dest: 1, sync: false, minLength: batchBytes, contentMode: 'buffer' });
  // The timed flush only when lines wait: SonicBoom's own (periodicFlush) writes an empty batch
  // when there is none, a write(2) of 0 bytes on a libuv pool thread and a wake-up of the event
  // loop ten times a second, however idle the sidecar.
  let waiting = 0;
  boom.on('write', (bytes: number) => (waiting = Math.max(0, waiting - bytes)));
  const timer = setInterval(() => {
    if (waiting > 0) boom.flush();
  }, flushIntervalMs).unref();
  boom.once('close', () => clearInterval(timer));
  return {
    write: (line: string) => {
      const bytes = Buffer.from(line);
      waiting += bytes.length;
      return boom.write(bytes as unknown as string);
    },
    flush: (cb?: (err?: Error) => void) => boom.flush(cb),
    flushSync: () => boom.flushSync(),
  } as pino.DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? stdoutDestination();
  return pino(
    {
      level: options.level,
      base: { service: 'bearer-sidecar' },
      redact: { paths: redactPaths, censor: '[redacted]' },
      timestamp: isoTimestamp,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
