// The alert rules and the dashboard IT loads, checked by Debian's promtool (package prometheus):
// the rules parse (`promtool check rules`) and fire as their unit tests say (`promtool test rules`),
// and every dashboard query is valid PromQL (checked as a recording rule by the same parser). That
// each metric they read exists on a live gateway is checked by test/metrics.test.ts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ALERT_TESTS_FILE, ALERTS_FILE, alertExprs, dashboardExprs } from './support/ops-files.js';

function promtool(args: string[], cwd?: string): { status: number | null; out: string } {
  const run = spawnSync('promtool', args, { encoding: 'utf8', ...(cwd ? { cwd } : {}) });
  if (run.error) throw new Error(`promtool (Debian package prometheus) is needed: ${run.error.message}`);
  return { status: run.status, out: run.stdout + run.stderr };
}

const scratch = mkdtempSync(join(tmpdir(), 'gatehouse-ops-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('ops/prometheus/alerts.yml', () => {
  it('names the alerts IT asked for', () => {
    expect(alertExprs().map((a) => a.name)).toEqual(
      expect.arrayContaining(['GatehouseAuditUnavailable', 'GatehousePolicyReloadFailing', 'GatehouseCertificateExpiringSoon', 'GatehouseEngineSaturated', 'GatehouseLoginFailuresSpiking', 'GatehouseDecisionsRefused5xx']),
    );
  });

  it('passes promtool check rules', () => {
    const check = promtool(['check', 'rules', ALERTS_FILE]);
    expect(check.status, check.out).toBe(0);
    expect(check.out).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('passes its unit tests (promtool test rules)', () => {
    const run = promtool(['test', 'rules', ALERT_TESTS_FILE], dirname(ALERT_TESTS_FILE));
    expect(run.status, run.out).toBe(0);
    expect(run.out).toContain('SUCCESS');
  });

  it('has unit tests for every alert', () => {
    const tested = new Set([...readFileSync(ALERT_TESTS_FILE, 'utf8').matchAll(/alertname: (\w+)/g)].map((m) => m[1]));
    for (const a of alertExprs()) expect(tested.has(a.name), `${a.name} has no test in alerts.test.yml`).toBe(true);
  });
});

describe('ops/grafana/gatehouse.json', () => {
  it('has panels, each query valid PromQL', () => {
    const exprs = dashboardExprs();
    expect(exprs.length).toBeGreaterThan(20);
    const file = join(scratch, 'dashboard-rules.yml');
    writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: exprs.map((e, i) => ({ record: `dashboard:query_${i}`, expr: e.expr })) }] }));
    const check = promtool(['check', 'rules', file]);
    expect(check.status, check.out).toBe(0);
  });
});
