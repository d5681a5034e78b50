// The PromQL the project ships: the alerting rules' expressions and the Grafana dashboard's
// queries, with the dashboard's variables filled in as Grafana would, and the metric names each one
// reads. Shared by the tests of the rules and of a real Prometheus.

import { read, readYaml } from '../deploy/files.js';

export const rulesFile = 'deploy/prometheus/bearer-sidecar.rules.yaml';
export const dashboardFile = 'deploy/grafana/bearer-sidecar.json';

export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function ruleGroups(): { name: string; rules: Rule[] }[] {
  return readYaml(rulesFile).groups as { name: string; rules: Rule[] }[];
}

/** One query to check: where it comes from, and the PromQL as Prometheus would get it. */
export interface Query {
  readonly from: string;
  readonly expr: string;
}

export function ruleQueries(): Query[] {
  return ruleGroups().flatMap((group) => group.rules.map((rule) => ({ from: `rule ${rule.alert ?? rule.record}`, expr: rule.expr })));
}

interface Panel {
  title?: string;
  type: string;
  panels?: Panel[];
  targets?: { expr?: string; refId?: string }[];
}

export interface Dashboard {
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown; definition?: string }[] };
}

export function dashboard(): Dashboard {
  return JSON.parse(read(dashboardFile)) as Dashboard;
}

/** Every panel, those inside collapsed rows too. */
export function panelsOf(board: Dashboard): Panel[] {
  return board.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
}

/** The values Grafana puts in for its built-in variables and for "All" of the dashboard's own. */
export function withVariables(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__interval', '15s')
    .replaceAll('$__range', '1h')
    .replace(/\$\{?(job|instance|route)\}?/g, '.*');
}

/** Every panel's queries, and each query variable's series selector (the metric of `label_values(metric{...}, label)`). */
export function dashboardQueries(board = dashboard()): Query[] {
  const panels = panelsOf(board).flatMap((panel) => (panel.targets ?? []).map((target) => ({ from: `panel "${panel.title}" ${target.refId}`, expr: withVariables(target.expr ?? '') })));
  const variables = board.templating.list
    .filter((variable) => variable.type === 'query')
    .map((variable) => {
      const match = /^label_values\((.+),\s*\w+\)$/.exec(variable.definition ?? '');
      return { from: `variable $${variable.name}`, expr: withVariables(match?.[1] ?? `unparsed: ${variable.definition}`) };
    });
  return [...panels, ...variables];
}

/** The sidecar's metric names a query reads (a histogram's by their _bucket/_sum/_count series). */
export function metricNames(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\bbearer_sidecar_[a-z0-9_]+/g)].map((m) => m[0]))];
}
