// Aggregates a V8 .cpuprofile (node --cpu-prof) by function (name + url + line) and by package.
// Usage as a CLI: node scripts/bench/cpuprofile.mjs FILE.cpuprofile [top=25]
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SPECIAL = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);

const sourceMaps = new Map();

/** A frame in a bundle (dist/main.js, whose .map sits beside it) as the frame of the file it came
 * from, so that bundled code is still charged to its package; other frames as they are. */
export function originalFrame(frame) {
  const { url, lineNumber, columnNumber } = frame;
  if (!url.startsWith('file:') || lineNumber < 0) return frame;
  if (!sourceMaps.has(url)) {
    const mapFile = `${fileURLToPath(url)}.map`;
    sourceMaps.set(url, existsSync(mapFile) ? new SourceMap(JSON.parse(readFileSync(mapFile, 'utf8'))) : undefined);
  }
  const entry = sourceMaps.get(url)?.findEntry(lineNumber, columnNumber);
  if (!entry?.originalSource) return frame;
  return { ...frame, url: new URL(entry.originalSource, url).href, lineNumber: entry.originalLine, columnNumber: entry.originalColumn };
}

/** Which package a frame belongs to: node_modules/<pkg>, node:internal, the app (dist/), or native. */
export function packageOf(frame) {
  const { url, functionName } = frame;
  if (SPECIAL.has(functionName)) return functionName;
  if (!url) return '(native/V8 builtin)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.startsWith('node:')) {
    const m = /^node:(?:internal\/)?([^/]+)/.exec(url);
    return `node:${m ? m[1] : url}`;
  }
  if (url.includes('/dist/') || url.includes('/src/')) return 'bearer-sidecar (dist)';
  if (url.includes('/scripts/bench/')) return 'bench script';
  return url;
}

function shortUrl(url) {
  if (!url) return '';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const d = url.indexOf('/dist/');
  if (d >= 0) return url.slice(d + 1);
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1);
  const b = url.indexOf('/scripts/');
  if (b >= 0) return url.slice(b + 1);
  return url;
}

/** The package a sample is charged to: its deepest frame in a dependency, the app or the bench
 * script; else "node core" (or the special category). Natives count for whoever called them. */
function responsibleOf(chain) {
  for (const frame of chain) {
    const pkg = packageOf(frame);
    if (pkg === '(root)') continue;
    if (SPECIAL.has(pkg)) return pkg;
    if (!pkg.startsWith('node:') && pkg !== '(native/V8 builtin)') return pkg;
  }
  return 'node core (no package frame)';
}

/** Aggregates samples, optionally only those taken between from and to (µs, monotonic clock,
 * the same as process.hrtime in any process on the machine). */
export function aggregate(profile, { from = -Infinity, to = Infinity } = {}) {
  const byId = new Map();
  const parent = new Map();
  for (const node of profile.nodes) {
    node.callFrame = originalFrame(node.callFrame);
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const keyOf = (node) => {
    const f = node.callFrame;
    return `${f.functionName || '(anonymous)'}\t${shortUrl(f.url)}${f.url ? `:${f.lineNumber + 1}` : ''}`;
  };
  const self = new Map();
  const inclusive = new Map();
  const pkgSelf = new Map();
  const charged = new Map();
  let total = 0;
  let idle = 0;
  const { samples, timeDeltas } = profile;
  let t = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    const dt = timeDeltas[i] ?? 0;
    t += dt;
    if (dt <= 0 || t < from || t > to) continue;
    total += dt;
    const node = byId.get(samples[i]);
    if (!node) continue;
    if (node.callFrame.functionName === '(idle)') idle += dt;
    const key = keyOf(node);
    self.set(key, (self.get(key) ?? 0) + dt);
    let pkg = packageOf(node.callFrame);
    if (pkg === '(native/V8 builtin)') pkg = `native ${node.callFrame.functionName || '(anonymous)'}`;
    pkgSelf.set(pkg, (pkgSelf.get(pkg) ?? 0) + dt);
    const seen = new Set();
    const chain = [];
    for (let id = samples[i]; id !== undefined; id = parent.get(id)) {
      const n = byId.get(id);
      chain.push(n.callFrame);
      const k = keyOf(n);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
    }
    const who = responsibleOf(chain);
    charged.set(who, (charged.get(who) ?? 0) + dt);
  }
  const busy = total - idle;
  const rows = (map) =>
    [...map.entries()]
      .map(([key, us]) => ({ key, us, pctBusy: busy > 0 ? (100 * us) / busy : 0 }))
      .sort((a, b) => b.us - a.us);
  return { totalUs: total, idleUs: idle, busyUs: busy, self: rows(self), inclusive: rows(inclusive), packages: rows(pkgSelf), charged: rows(charged) };
}

export function loadProfile(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** Markdown tables: packages and the top self-time functions. */
export function toMarkdown(agg, { top = 25, title = '' } = {}) {
  const f1 = (x) => x.toFixed(1);
  const lines = [];
  if (title) lines.push(`#### ${title}`, '');
  lines.push(`Sampled ${f1(agg.totalUs / 1e6)} s, busy (not idle) ${f1(agg.busyUs / 1e6)} s. Percentages are of busy time.`, '');
  lines.push('| package / category (self time; natives by name) | self % |', '| --- | ---: |');
  for (const r of agg.packages.filter((r) => r.key !== '(idle)').slice(0, 15)) lines.push(`| ${r.key} | ${f1(r.pctBusy)} |`);
  lines.push('', '| # | function | where | self % |', '| ---: | --- | --- | ---: |');
  agg.self
    .filter((r) => !r.key.startsWith('(idle)'))
    .slice(0, top)
    .forEach((r, i) => {
      const [name, where] = r.key.split('\t');
      lines.push(`| ${i + 1} | \`${name}\` | ${where ? `\`${where}\`` : ''} | ${f1(r.pctBusy)} |`);
    });
  return lines.join('\n');
}

export function inclusiveOf(agg, pattern) {
  return agg.inclusive.filter((r) => pattern.test(r.key));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node scripts/bench/cpuprofile.mjs FILE.cpuprofile [top]\n');
    process.exit(2);
  }
  const agg = aggregate(loadProfile(file));
  process.stdout.write(`${toMarkdown(agg, { top: Number(process.argv[3] ?? 25) })}\n\nTop inclusive:\n`);
  for (const r of agg.inclusive.slice(0, 40)) process.stdout.write(`${r.pctBusy.toFixed(1).padStart(6)}%  ${r.key.replace('\t', '  ')}\n`);
}
