// Every relative link in README.md and docs/*.md reaches a file that exists and, when it names an
// anchor, a heading of that file (GitHub's slugs), so moving a section cannot leave a dead link.
// README.md links every file in docs/, so no document is unreachable.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const root = fileURLToPath(new URL('../../', import.meta.url));
const documents = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/`/g, '')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchorsOf(text: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  // Headings outside code blocks only.
  for (const heading of text.replace(/```[\s\S]*?```/g, '').matchAll(/^#{1,6} (.+)$/gm)) {
    const base = slug(heading[1] as string);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

function linksOf(text: string): string[] {
  return [...text.replace(/```[\s\S]*?```/g, '').matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1] as string).filter((target) => !/^[a-z]+:/i.test(target));
}

test('every relative link and anchor in the docs resolves', () => {
  const broken: string[] = [];
  for (const document of documents) {
    const text = readFileSync(join(root, document), 'utf8');
    for (const link of linksOf(text)) {
      const [path, anchor] = link.split('#') as [string, string | undefined];
      const target = path === '' ? join(root, document) : join(root, dirname(document), path);
      if (!existsSync(target)) {
        broken.push(`${document}: ${link} (no file ${relative(root, target)})`);
        continue;
      }
      if (anchor !== undefined && target.endsWith('.md') && !anchorsOf(readFileSync(target, 'utf8')).has(anchor)) {
        broken.push(`${document}: ${link} (no heading #${anchor} in ${relative(root, target)})`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

test('README.md links every document in docs/', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const unlinked = documents.filter((d) => d !== 'README.md' && !linksOf(readme).some((link) => link.split('#')[0] === d));
  assert.deepEqual(unlinked, []);
});

test('the README stays a landing page', () => {
  const size = Buffer.byteLength(readFileSync(join(root, 'README.md'), 'utf8'));
  assert.ok(size < 12_000, `README.md is ${size} bytes; references belong in docs/`);
});
