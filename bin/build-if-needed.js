// Compiles src/ and bench/ into dist/ when dist/ is missing or older than the sources.
// Used by the `gatehouse` launcher (so `npm start` on a fresh clone just works), the bench
// runner and the test set-up. A checkout without TypeScript (an installed package) runs dist/ as is.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const STAMP = join(ROOT, 'dist', '.built');
// The policy bench compiles the policy generator from test/support along with it, the soak the
// browser that approves its device logins.
const SOURCES = ['src', 'bench', 'test/support/policy-generator.ts', 'test/support/oidc-browser.ts', 'tsconfig.json', 'package.json'];

function newest(path) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let latest = st.mtimeMs; // a deleted file changes its folder's mtime
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)));
  return latest;
}

export function buildIfNeeded({ quiet = false } = {}) {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  if (!existsSync(join(ROOT, 'src')) || !existsSync(tsc)) return;
  const built = existsSync(STAMP) ? statSync(STAMP).mtimeMs : 0;
  const sources = Math.max(...SOURCES.map((s) => newest(join(ROOT, s))));
  // Within a millisecond: the stamp is set to `sources` below, and a file time set through utimes
  // comes back rounded (…087 is stored as …086.999).
  if (built + 1 >= sources) return;
  if (!quiet) process.stderr.write('gatehouse: compiling TypeScript (first run or sources changed)…\n');
  const result = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.json')], { stdio: 'inherit' });
  if (result.status !== 0) {
    process.stderr.write('gatehouse: the TypeScript build failed (see above)\n');
    process.exit(1);
  }
  writeFileSync(STAMP, `${new Date().toISOString()}\n`);
  // Stamped with the sources' time as the compile began, not now: a file edited while tsc ran is
  // newer than the stamp, so the next call compiles it instead of running the older dist/.
  utimesSync(STAMP, new Date(), new Date(sources));
}

// `npm install` / `npm ci` run this file as the `prepare` script, so the first `npm start` finds dist/
// current instead of compiling while the person waits for the ready line.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) buildIfNeeded();
