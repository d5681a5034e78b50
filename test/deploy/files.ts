// Shared by the deployment tests: where the files are, a small Dockerfile parser, .dockerignore
// matching, compose-style ${VAR} interpolation, and YAML loading.

import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';

export const root = fileURLToPath(new URL('../../', import.meta.url));

export function read(path: string): string {
  return readFileSync(join(root, path), 'utf8');
}

export type Yaml = Record<string, unknown>;

/** One YAML document (compose files use `<<:` merge keys). */
export function readYaml(path: string): Yaml {
  const value: unknown = parse(read(path), { merge: true });
  if (!isObject(value)) throw new Error(`${path}: not a YAML mapping`);
  return value;
}

/** Every document of a file; throws on any YAML error. */
export function readYamlDocuments(path: string): Yaml[] {
  return parseAllDocuments(read(path), { merge: true }).map((doc, index) => {
    if (doc.errors.length > 0) throw new Error(`${path} (document ${index}): ${doc.errors[0]?.message}`);
    const value: unknown = doc.toJS();
    if (!isObject(value)) throw new Error(`${path} (document ${index}): not a YAML mapping`);
    return value;
  });
}

export function isObject(value: unknown): value is Yaml {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Walks a path of keys and indexes; throws naming the path when something is missing. */
export function at(value: unknown, ...path: (string | number)[]): unknown {
  let node = value;
  for (const [i, key] of path.entries()) {
    const next = typeof key === 'number' ? (Array.isArray(node) ? node[key] : undefined) : isObject(node) ? node[key] : undefined;
    if (next === undefined) throw new Error(`missing ${path.slice(0, i + 1).join('.')}`);
    node = next;
  }
  return node;
}

export function obj(value: unknown, ...path: (string | number)[]): Yaml {
  const found = at(value, ...path);
  if (!isObject(found)) throw new Error(`${path.join('.')}: not a mapping`);
  return found;
}

export function list(value: unknown, ...path: (string | number)[]): unknown[] {
  const found = at(value, ...path);
  if (!Array.isArray(found)) throw new Error(`${path.join('.')}: not a list`);
  return found;
}

export function str(value: unknown, ...path: (string | number)[]): string {
  const found = at(value, ...path);
  if (typeof found !== 'string') throw new Error(`${path.join('.')}: not a string`);
  return found;
}

/** Files under a directory of the repository, as repository-relative paths with "/". */
export function filesUnder(dir: string): string[] {
  const walk = (abs: string): string[] =>
    readdirSync(abs, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? walk(join(abs, entry.name)) : [join(abs, entry.name)]));
  return walk(join(root, dir)).map((abs) => relative(root, abs).split(sep).join('/'));
}

// ---- Dockerfile ----

export interface Instruction {
  /** Upper-case keyword, e.g. COPY. */
  readonly keyword: string;
  /** Everything after the keyword, continuation lines joined. */
  readonly args: string;
  readonly line: number;
}

export interface Stage {
  readonly image: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

export interface Dockerfile {
  /** ARGs declared before the first FROM, with their defaults. */
  readonly globalArgs: ReadonlyMap<string, string>;
  readonly stages: Stage[];
  readonly instructions: Instruction[];
}

export function parseDockerfile(text: string): Dockerfile {
  const instructions: Instruction[] = [];
  let buffer = '';
  let startLine = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trimEnd();
    if (buffer === '' && (line.trim() === '' || line.trimStart().startsWith('#'))) return;
    if (buffer !== '' && line.trimStart().startsWith('#')) return; // comment inside a continuation
    if (buffer === '') startLine = index + 1;
    if (line.endsWith('\\')) {
      buffer += `${line.slice(0, -1)} `;
      return;
    }
    buffer += line;
    const match = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(buffer);
    if (match) instructions.push({ keyword: (match[1] as string).toUpperCase(), args: (match[2] as string).trim(), line: startLine });
    buffer = '';
  });

  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const words = instruction.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      const image = (words[0] ?? '').replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a: string | undefined, b: string | undefined) => globalArgs.get((a ?? b) as string) ?? '');
      const name = words[1]?.toUpperCase() === 'AS' ? words[2] : undefined;
      stages.push({ image, name, instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.keyword === 'ARG') {
        const [name, value = ''] = instruction.args.split('=', 2) as [string, string?];
        globalArgs.set(name.trim(), value.trim());
      }
    } else {
      stages[stages.length - 1]?.instructions.push(instruction);
    }
  }
  return { globalArgs, stages, instructions };
}

/** The JSON array of an exec-form instruction (ENTRYPOINT, CMD, HEALTHCHECK ... CMD), else undefined. */
export function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === 'string')) return undefined;
  return parsed as string[];
}

/** Splits leading --flag=value options from the rest of an instruction's arguments. */
export function flags(args: string): { flags: Map<string, string>; rest: string } {
  const found = new Map<string, string>();
  let rest = args;
  for (;;) {
    const match = /^--([\w-]+)(?:=(\S*))?\s*/.exec(rest);
    if (!match) break;
    found.set(match[1] as string, match[2] ?? '');
    rest = rest.slice(match[0].length);
  }
  return { flags: found, rest };
}

export function last(stage: Stage, keyword: string): Instruction | undefined {
  return stage.instructions.filter((i) => i.keyword === keyword).at(-1);
}

export function finalStage(dockerfile: Dockerfile): Stage {
  const stage = dockerfile.stages.at(-1);
  if (!stage) throw new Error('Dockerfile has no FROM');
  return stage;
}

// ---- .dockerignore (moby/patternmatcher semantics: last matching rule wins; a rule that matches
// a directory matches everything under it) ----

export function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const negated = line.startsWith('!');
      const pattern = (negated ? line.slice(1) : line).trim().replace(/^\/+|\/+$/g, '').replace(/^\.\//, '');
      return { negated, regex: globToRegex(pattern) };
    });
  return (path) => {
    const parts = path.split('/');
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const rule of rules) {
      if (candidates.some((candidate) => rule.regex.test(candidate))) excluded = !rule.negated;
    }
    return excluded;
  };
}

function globToRegex(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*' && pattern[i + 1] === '*') {
      out += '.*';
      i++;
      if (pattern[i + 1] === '/') i++;
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

// ---- compose ----

/** Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} interpolation, for one string. */
export function composeInterpolate(text: string, env: Record<string, string | undefined>): string {
  return text.replace(/\$\{(\w+)(?::([-?])([^}]*))?\}/g, (_match, name: string, op: string | undefined, word: string | undefined) => {
    const value = env[name];
    if (value !== undefined && value !== '') return value;
    if (op === '-') return word ?? '';
    if (op === '?') throw new Error(`compose: ${name} is required: ${word}`);
    return '';
  });
}

/** A service's environment as a map (compose allows a mapping or a list of NAME=value). */
export function environmentOf(service: Yaml): Record<string, string> {
  const env = service.environment;
  if (env === undefined) return {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((item) => {
        const text = String(item);
        const eq = text.indexOf('=');
        return eq < 0 ? [text, ''] : [text.slice(0, eq), text.slice(eq + 1)];
      }),
    );
  }
  if (!isObject(env)) throw new Error('environment: not a mapping or list');
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null || v === undefined ? '' : String(v)]));
}

// ---- processes ----

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
