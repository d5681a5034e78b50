// Everything the sidecar let out during a test file (log lines, the bodies and headers of its
// answers, /readyz) and everything secret it held (client secrets, every token a test token
// endpoint issued), so that one assertion can check that none of the latter is in the former.
// The sidecar and token-server helpers register here on their own; tests record answers with
// `call`. The log level of every in-process sidecar can be raised for a whole file.

import assert from 'node:assert/strict';

const outputs: (readonly string[])[] = [];
const answers: string[] = [];
const secrets = new Set<string>();
const tokenLists: (readonly string[])[] = [];
const levelsUsed = new Set<string>();
let logLevel = 'debug';
let tracesTo: string | undefined;

export const audit = {
  /** Log lines, live: the array is read when checked. */
  addOutput(lines: readonly string[]): void {
    outputs.push(lines);
  },
  addSecret(value: string): void {
    if (value.trim().length >= 4) secrets.add(value.trim());
  },
  /** A PEM private key: each line of its base64 body, so that any part of it leaking is caught (a JSON log line would escape the newlines of the whole). */
  addPrivateKey(pem: string): void {
    for (const line of pem.split('\n')) if (/^[A-Za-z0-9+/=]{16,}$/.test(line.trim())) secrets.add(line.trim());
  },
  /** Issued tokens, live. */
  addTokens(list: readonly string[]): void {
    tokenLists.push(list);
  },
  /** The level for in-process sidecars that do not set one; the levels they ran at are kept. */
  get logLevel(): string {
    return logLevel;
  },
  ranAt(level: string): void {
    levelsUsed.add(level);
  },
  levelsUsed(): string[] {
    return [...levelsUsed];
  },
  set logLevel(level: string) {
    logLevel = level;
  },
  /** An OTLP receiver's base URL: every in-process sidecar that configures no tracing exports its spans there (audit/traces.test.ts). */
  get tracesTo(): string | undefined {
    return tracesTo;
  },
  set tracesTo(url: string | undefined) {
    tracesTo = url;
  },
  /** How many log lines at `level` were captured (proves a level was really in force). */
  linesAt(level: string): number {
    return outputs.flat().filter((line) => line.includes(`"level":"${level}"`)).length;
  },
  /** Fails naming the kind of value that leaked, never printing the value itself. */
  assertNothingLeaked(extraOutputs: readonly string[] = []): void {
    const text = [...outputs.flat(), ...answers, ...extraOutputs].join('\n');
    for (const secret of secrets) assert.ok(!text.includes(secret), `a secret (${secret.length} chars) appears in the output`);
    const tokens = tokenLists.flat();
    for (const [i, token] of tokens.entries()) assert.ok(!text.includes(token), `issued token #${i} appears in the output`);
    assert.doesNotMatch(text, /ey[A-Za-z0-9_-]{10,}\.ey[A-Za-z0-9_-]{4,}/, 'something shaped like a JWT appears in the output');
  },
};

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  json<T = Record<string, unknown>>(): T;
}

/**
 * fetch, reading the whole answer. The sidecar's own answers (errors, health) are recorded for the
 * audit; a proxied success is the upstream's, and the test echo upstream echoes the token on purpose.
 */
export async function call(url: string, init?: RequestInit): Promise<Answer> {
  const response = await fetch(url, init);
  const text = await response.text();
  if (response.status >= 400 || /\/(readyz|livez)$/.test(new URL(url).pathname)) {
    answers.push(`${response.status} ${JSON.stringify([...response.headers])} ${text}`);
  }
  return { status: response.status, headers: response.headers, text, json: <T>() => JSON.parse(text) as T };
}
