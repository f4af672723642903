// How a run's wall was spent, from vitest's JSON report (.ci/run writes one):
//   node scripts/test-timeline.mjs REPORT.json [N]
// A file's span is its first test's start to its last test's end (the report has no hooks, imports or
// worker start-up): the time outside every span is set-up, teardown and imports. "files side by side"
// is how long 0, 1, 2... files were inside their tests at once, which shows whether workers overlapped.
// Then the N (default 10) longest spans.
import { readFileSync } from 'node:fs';

const [file, count = '10'] = process.argv.slice(2);
if (!file) {
  console.error('usage: node scripts/test-timeline.mjs REPORT.json [N]');
  process.exit(2);
}
const report = JSON.parse(readFileSync(file, 'utf8'));
const start = report.startTime;
const files = report.testResults;
const s = (ms) => `${(ms / 1000).toFixed(0)} s`;

const edges = files.flatMap((f) => [[f.startTime, 1], [f.endTime, -1]]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
const at = new Map();
let open = 0;
let last = start;
for (const [t, d] of edges) {
  at.set(open, (at.get(open) ?? 0) + (t - last));
  last = t;
  open += d;
}
const spans = files.reduce((sum, f) => sum + (f.endTime - f.startTime), 0);
console.log(`${files.length} file runs; from the run's start to the last test's end ${s(last - start)}; spans add up to ${s(spans)}`);
console.log(`files side by side: ${[...at.keys()].sort((a, b) => a - b).map((k) => `${k}: ${s(at.get(k))}`).join(', ')}`);
for (const f of [...files].sort((a, b) => b.endTime - b.startTime - (a.endTime - a.startTime)).slice(0, Number(count))) {
  console.log(`${s(f.endTime - f.startTime).padStart(6)}  from ${s(f.startTime - start).padStart(6)}  ${f.name.replace(/^.*?\/test\//, 'test/')}`);
}
