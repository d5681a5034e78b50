// The Grafana dashboard (deploy/grafana/bearer-sidecar.json) as a file: the current JSON model, a
// datasource variable every query goes through, job/instance/route variables, and a panel for each
// thing the issue lists. That its queries parse and read real metrics is proven against a real
// Prometheus (prometheus.test.ts).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dashboard, dashboardQueries, panelsOf } from './queries.js';

const board = dashboard();
const panels = panelsOf(board).filter((panel) => panel.type !== 'row');

test('dashboard: current JSON model, importable anywhere (no fixed id or datasource uid), a datasource variable that every panel and query uses', () => {
  assert.ok(board.schemaVersion >= 39, `schemaVersion ${board.schemaVersion}`);
  assert.equal(board.uid, 'bearer-sidecar');
  assert.equal((board as unknown as { id: unknown }).id, null, 'no id: Grafana assigns one at import');
  const variables = Object.fromEntries(board.templating.list.map((v) => [v.name, v]));
  assert.deepEqual([variables.datasource?.type, variables.datasource?.query], ['datasource', 'prometheus']);
  for (const name of ['job', 'instance', 'route']) {
    const variable = variables[name] as unknown as { type: string; multi: boolean; includeAll: boolean; allValue: string; datasource: { uid: string } };
    assert.deepEqual([variable.type, variable.multi, variable.includeAll, variable.allValue, variable.datasource.uid], ['query', true, true, '.*', '${datasource}'], name);
  }
  const ids = panelsOf(board).map((panel) => (panel as unknown as { id: number }).id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const panel of panels as unknown as { title: string; description?: string; datasource: { uid: string }; targets: { datasource: { uid: string }; expr: string }[]; gridPos: { x: number; w: number } }[]) {
    assert.equal(panel.datasource.uid, '${datasource}', panel.title);
    assert.ok((panel.description ?? '').length > 20, `${panel.title}: says what it shows`);
    assert.ok(panel.gridPos.x + panel.gridPos.w <= 24, `${panel.title}: fits the grid`);
    assert.ok(panel.targets.length > 0, `${panel.title}: has a query`);
    for (const target of panel.targets) {
      assert.equal(target.datasource.uid, '${datasource}', panel.title);
      if (/route/.test(target.expr) && /bearer_sidecar_(requests_total|request_duration|token_|upstream_)/.test(target.expr)) {
        assert.match(target.expr, /route=~"\$route"/, `${panel.title}: follows the route variable`);
      }
      assert.match(target.expr, /job=~"\$job", instance=~"\$instance"/, `${panel.title}: follows the job and instance variables`);
    }
  }
});

test('dashboard: a panel for each thing the issue lists', () => {
  const titles = panels.map((panel) => panel.title);
  for (const wanted of [
    'Requests by route and status',
    'Latency percentiles',
    'Token time left per route',
    'Token grants and outcomes',
    '401 replays',
    'Upstream errors',
    'In-flight requests',
    'Memory per process',
    'CPU per process',
    'Workers',
  ]) {
    assert.ok(titles.includes(wanted), wanted);
  }
  const latency = dashboardQueries(board).filter((q) => q.from.startsWith('panel "Latency percentiles"'));
  assert.deepEqual(
    latency.map((q) => /histogram_quantile\((0\.\d+),/.exec(q.expr)?.[1]),
    ['0.5', '0.9', '0.99'],
  );
});
