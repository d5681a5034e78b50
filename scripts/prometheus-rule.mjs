// Writes deploy/kubernetes/monitoring/prometheusrule.yaml: the PrometheusRule (Prometheus Operator)
// that carries the same groups as deploy/prometheus/bearer-sidecar.rules.yaml, the one file the
// rules are edited in. test/deploy/kubernetes.test.ts fails when the two differ.
//   node scripts/prometheus-rule.mjs

import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';

const source = 'deploy/prometheus/bearer-sidecar.rules.yaml';
const target = 'deploy/kubernetes/monitoring/prometheusrule.yaml';
const { groups } = parse(readFileSync(source, 'utf8'));
const rule = {
  apiVersion: 'monitoring.coreos.com/v1',
  kind: 'PrometheusRule',
  metadata: { name: 'bearer-sidecar', labels: { 'app.kubernetes.io/name': 'bearer-sidecar' } },
  spec: { groups },
};
const header = [
  `# Generated from ${source} by scripts/prometheus-rule.mjs: edit that file, then run the script.`,
  '# The alerts of bearer-sidecar for the Prometheus Operator; the runbooks are in docs/observability.md.',
  "# Your Prometheus selects rules by label (ruleSelector; kube-prometheus-stack's default is",
  '# release: <its release name>): add that label here or in the kustomization.',
];
writeFileSync(target, `${header.join('\n')}\n${stringify(rule, { lineWidth: 0 })}`);
