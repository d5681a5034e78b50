// The alerting rules (deploy/prometheus/bearer-sidecar.rules.yaml): promtool checks them and runs
// their unit tests; and each alert has what an on-call person needs (a `for`, a severity, a summary
// and description naming the route or the instance, a runbook heading in docs/observability.md)
// and is shown by the unit tests both firing and silent.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { read, readYaml, root, type Yaml } from '../deploy/files.js';
import { skipUnlessTools } from '../helpers/system-tools.js';
import { ruleGroups, rulesFile } from './queries.js';

const testsFile = 'deploy/prometheus/bearer-sidecar.rules.test.yaml';
const runbook = 'https://github.com/bearer-sidecar/bearer-sidecar/blob/main/docs/observability.md';

const alerts = ruleGroups().flatMap((group) => group.rules.filter((rule) => rule.alert));

function promtool(...args: string[]): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

test('promtool check rules: the rule file is valid', { skip: skipUnlessTools('promtool') }, () => {
  const { status, output } = promtool('check', 'rules', rulesFile);
  assert.equal(status, 0, output);
  assert.match(output, new RegExp(`SUCCESS: ${alerts.length} rules found`));
});

test('promtool test rules: every unit test of the alerts passes', { skip: skipUnlessTools('promtool') }, () => {
  const { status, output } = promtool('test', 'rules', testsFile);
  assert.equal(status, 0, output);
  assert.match(output, /SUCCESS/);
});

test('the alerts the issue asks for, each with for, severity, a summary and description naming what it is about, and a runbook', () => {
  const names = alerts.map((rule) => rule.alert);
  for (const wanted of [
    'BearerSidecarRouteWithoutToken',
    'BearerSidecarTokenGrantsFailing',
    'BearerSidecarCredentialsRejected',
    'BearerSidecarTokenExpiringWhileRefreshFails',
    'BearerSidecarUpstreamErrors',
    'BearerSidecarHighLatency',
    'BearerSidecarWorkerRestarts',
    'BearerSidecarConfigReloadFailed',
    'BearerSidecarTokenCacheDown',
  ]) {
    assert.ok(names.includes(wanted), wanted);
  }
  assert.equal(new Set(names).size, names.length, 'names are unique');
  const headings = new Set([...read('docs/observability.md').matchAll(/^### (\S+)$/gm)].map((m) => m[1]));
  for (const rule of alerts) {
    const name = rule.alert as string;
    assert.match(rule.for ?? '', /^\d+[smh]$/, `${name}: for`);
    assert.ok(['critical', 'warning'].includes(rule.labels?.severity ?? ''), `${name}: severity`);
    const { summary = '', description = '', runbook_url: url } = rule.annotations ?? {};
    // Per route when the series have a route, else per instance (a sidecar with its workers).
    const about = /\{\{ \$labels\.route \}\}/.test(summary) ? 'route' : 'instance';
    assert.match(summary, new RegExp(`\\{\\{ \\$labels\\.${about} \\}\\}`), `${name}: the summary names the ${about}`);
    assert.match(description, new RegExp(`\\{\\{ \\$labels\\.${about} \\}\\}`), `${name}: the description names the ${about}`);
    assert.ok(description.length > 120, `${name}: the description says what to do`);
    assert.equal(url, `${runbook}#${name.toLowerCase()}`, `${name}: runbook_url`);
    assert.ok(headings.has(name), `${name}: docs/observability.md has a heading "### ${name}" (its runbook)`);
  }
});

test('the unit tests show every alert firing, and every alert silent where it should be', () => {
  const tests = readYaml(testsFile).tests as Yaml[];
  for (const rule of alerts) {
    const evals = tests.flatMap((t) => (t.alert_rule_test as Yaml[]).filter((e) => e.alertname === rule.alert).map((e) => ({ test: t, exp: e.exp_alerts as Yaml[] })));
    assert.ok(evals.some((e) => e.exp.length > 0), `${rule.alert}: a test where it fires`);
    assert.ok(evals.some((e) => e.exp.length === 0), `${rule.alert}: a test where it is silent`);
    // And in the test where it fires, a series it must leave alone: more input series than alerts.
    for (const { test: t, exp } of evals.filter((e) => e.exp.length > 0)) {
      assert.ok((t.input_series as unknown[]).length > exp.length, `${rule.alert}: "${String(t.name)}" has series that must not fire it`);
    }
  }
});
