// The per-request routing cost before reloads (find-my-way with each route's prefix) and after
// (find-my-way with one catch-all, then RouteTable.match): `npm run build && node
// scripts/bench/route-lookup.mjs`. Interleaved rounds, the fastest of each; the machine may be shared.
import FindMyWay from 'find-my-way';
import { RouteTable } from '../../dist/proxy/route-table.js';
const methods = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'];
const opts = { ignoreDuplicateSlashes: false, ignoreTrailingSlash: false, maxParamLength: 2048 };
function oldRouter(prefixes) {
  const r = FindMyWay(opts);
  for (const p of prefixes) { const base = p === '/' ? '' : p; for (const url of [base || '/', `${base}/*`]) r.on(methods, url, () => p); }
  return r;
}
const neu = FindMyWay(opts); for (const url of ['/', '/*']) neu.on(methods, url, () => 'x');
function bench(fn, urls) {
  let sink = 0; const n = 500_000;
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) sink += fn(urls[i % urls.length]) ? 1 : 0;
  if (sink !== n) throw new Error('miss');
  return Number(process.hrtime.bigint() - t) / n;
}
const setups = [
  { name: '1 route "/"', prefixes: ['/'], urls: ['/v2/ports?x=1', '/locations/123', '/'] },
  { name: '1 route "/api"', prefixes: ['/api'], urls: ['/api/v2/ports?x=1', '/api/locations/123', '/api'] },
  { name: '10 routes', prefixes: ['/a', '/b/c', '/megaport', '/cyxtera', '/api', '/api/v2', '/x', '/y', '/z', '/'], urls: ['/v2/ports?x=1', '/api/v2/locations/123', '/megaport/ports', '/z/q', '/api/x?q=%20'] },
];
for (const { name, prefixes, urls } of setups) {
  const old = oldRouter(prefixes), table = new RouteTable(prefixes.map((prefix) => ({ prefix })));
  const cases = { before: (u) => old.find('GET', u), after: (u) => neu.find('GET', u) && table.match(u), table: (u) => table.match(u) };
  const results = { before: [], after: [], table: [] };
  for (let round = 0; round < 15; round++) for (const [k, f] of Object.entries(cases)) results[k].push(bench(f, urls));
  const med = (a) => Math.min(...a).toFixed(0);
  console.log(`${name.padEnd(16)} min: before ${med(results.before)} ns   after ${med(results.after)} ns   (RouteTable.match ${med(results.table)} ns)`);
}
