// Prints CI's closing line, `tests: N passed, N failed, N skipped`, from vitest's JSON report.
// A test file that fails before any test runs (an import error) counts as one failure.
import { readFileSync } from 'node:fs';

const file = process.argv[2];
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (err) {
  console.log(`no vitest report at ${file}: ${err.message}`);
  console.log('tests: 0 passed, 1 failed');
  process.exit(1);
}
const brokenFiles = report.testResults.filter(
  (f) => f.status === 'failed' && !f.assertionResults.some((a) => a.status === 'failed'),
);
for (const f of brokenFiles) console.log(`failed to run: ${f.name}: ${(f.message ?? '').split('\n')[0]}`);
const passed = report.numPassedTests;
const failed = report.numFailedTests + brokenFiles.length;
const skipped = report.numPendingTests + report.numTodoTests;
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
