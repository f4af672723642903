// The monitoring files IT loads (ops/prometheus/alerts.yml, ops/grafana/gatehouse.json), read for
// tests: every PromQL expression in them, with Grafana's variables given plain values.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ROOT } from './gatehouse.js';

export const ALERTS_FILE = join(ROOT, 'ops', 'prometheus', 'alerts.yml');
export const ALERT_TESTS_FILE = join(ROOT, 'ops', 'prometheus', 'alerts.test.yml');
export const DASHBOARD_FILE = join(ROOT, 'ops', 'grafana', 'gatehouse.json');

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

/** Each alert's name and expression. */
export function alertExprs(): { name: string; expr: string }[] {
  const doc = parse(readFileSync(ALERTS_FILE, 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
  return doc.groups.flatMap((g) => g.rules.map((r) => ({ name: r.alert, expr: r.expr })));
}

/** Each dashboard panel's title and its queries, with $__rate_interval and $job as Prometheus would get them. */
export function dashboardExprs(): { title: string; expr: string }[] {
  const doc = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as { panels: Panel[] };
  const all = doc.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  return all.flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr.replaceAll('$__rate_interval', '5m').replaceAll('$job', '.+') })));
}

/** The metric names an expression reads (gatehouse_*, process_*, nodejs_*; not `up`, which Prometheus makes). */
export function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/\b(?:gatehouse|process|nodejs)_[a-zA-Z0-9_]+/g) ?? [])];
}
