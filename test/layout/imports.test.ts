// The source's import graph (issue 21 §5): no cycles, and data flows one way (config/ imports
// nothing from outbound/, proxy/, token/ or the server). Every import counts, type-only and
// dynamic import() alike, read with TypeScript's own pre-processor (ts.preProcessFile).

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const src = fileURLToPath(new URL('../../src/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Each source file (relative to src/) with the source files it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sources(src)) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const local = importedFiles.map((i) => i.fileName).filter((name) => name.startsWith('.'));
    graph.set(
      relative(src, file),
      local.map((name) => relative(src, resolve(dirname(file), name.replace(/\.js$/, '.ts')))),
    );
  }
  return graph;
}

/** The cycles of a graph, each as the path that closes it (a → b → a). */
function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') found.push([...path.slice(path.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    path.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return found;
}

test('the cycle check finds a cycle (of two and of three) and passes a tree', () => {
  assert.deepEqual(cycles(new Map([['a', ['b']], ['b', ['a']]])), [['a', 'b', 'a']]);
  assert.deepEqual(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]])), [['a', 'b', 'c', 'a']]);
  assert.deepEqual(cycles(new Map([['a', ['b', 'c']], ['b', ['c']], ['c', []]])), []);
});

test('src/ has no import cycles (type-only and dynamic imports included)', () => {
  const graph = importGraph();
  assert.ok(graph.size > 50, `read ${graph.size} files`);
  assert.ok(graph.get('config/types.ts')?.length, 'imports are read');
  assert.deepEqual(cycles(graph).map((c) => c.join(' → ')), []);
});

test('config/ imports only from config/, errors.ts and node: modules (data flows config → token sources → proxy)', () => {
  const outside = [...importGraph()]
    .filter(([file]) => file.startsWith('config/'))
    .flatMap(([file, imports]) => imports.filter((i) => !i.startsWith('config/') && i !== 'errors.ts').map((i) => `${file} → ${i}`));
  assert.deepEqual(outside, []);
});
