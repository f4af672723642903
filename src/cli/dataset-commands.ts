// `gatehouse datasets`: what the caller may use, and how.
import { structured } from './output.js';
import { call, type Target } from './client/api.js';
import { accessToken } from './client/session.js';
import { printLine, visible } from './safe-text.js';
import { formatBytes, table } from './table.js';

interface Listed {
  name: string;
  actions: string[];
  // Absent when the caller may only write the dataset.
  format?: string;
  partitions?: number;
  rows?: number;
  bytes?: number;
  labels?: string[];
  owner?: string | null;
}

export async function datasets(target: Target, json: boolean): Promise<number> {
  const answer = await call<{ datasets: Listed[]; policy_version: string; writable?: string[] }>(target, 'GET', '/v1/datasets', { token: await accessToken(target) });
  if (json) {
    printLine(structured(answer));
    return 0;
  }
  // Where `gatehouse put` (or a job's output) may create datasets, as the policy grants it: on
  // stderr, so stdout stays the table (one row per dataset) that scripts read.
  if (answer.writable !== undefined) process.stderr.write(`you may write: ${answer.writable.length === 0 ? 'nowhere' : answer.writable.map(visible).join(', ')}\n`);
  if (answer.datasets.length === 0) {
    printLine('no datasets you may use (gatehouse can-i read dataset:NAME says which rule decides)');
    return 0;
  }
  const rows = answer.datasets.map((d) =>
    d.format === undefined ? [d.name, d.actions.join(','), '-', '-', '-', '-', '-', '-'] : [d.name, d.actions.join(','), d.format, String(d.partitions), d.rows!.toLocaleString('en-US'), formatBytes(d.bytes!), d.labels!.join(',') || '-', d.owner ?? '-'],
  );
  printLine(table(['dataset', 'you may', 'format', 'parts', 'rows', 'size', 'labels', 'owner'], rows));
  return 0;
}
