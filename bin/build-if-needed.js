// Compiles src/ and bench/ into dist/ when dist/ is missing or older than the sources.
// Used by the `gatehouse` launcher (so `npm start` on a fresh clone just works), the bench
// runner and the test set-up. A checkout without TypeScript (an installed package) runs dist/ as is.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const STAMP = join(ROOT, 'dist', '.built');
// The policy bench compiles the policy generator from test/support along with it, the soak the
// browser that approves its device logins.
const SOURCES = ['src', 'bench', 'test/support/policy-generator.ts', 'test/support/oidc-browser.ts', 'tsconfig.json', 'package.json'];
/**
 * What the `gatehouse` command runs from: it checks these only (320 of the 360 files) on every call.
 * A compile is always of the whole project, so a bench/ file edited since is compiled by the next
 * bench run's own check (at worst once more, never missed).
 */
export const CLI_SOURCES = ['src', 'tsconfig.json', 'package.json'];

/**
 * The newest modification time under `path` (0 when it does not exist), the folders' own included:
 * a deleted or renamed file changes its folder's time, an edit its own. One stat per entry (every
 * call of the command pays for this walk, so no existsSync before it).
 */
function newest(path) {
  const top = statSync(path, { throwIfNoEntry: false });
  if (top === undefined) return 0;
  let latest = top.mtimeMs;
  if (!top.isDirectory()) return latest;
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const child = `${dir}/${entry.name}`;
      // Followed, as tsc follows it: a folder linked in is walked. Gone or dangling (an editor's lock
      // link such as Emacs's .#file, a file removed since readdir): nothing to compile, and no crash.
      const st = statSync(child, { throwIfNoEntry: false });
      if (st === undefined) continue;
      if (st.mtimeMs > latest) latest = st.mtimeMs;
      if (st.isDirectory()) walk(child);
    }
  };
  walk(path);
  return latest;
}

/** The newest modification time of `paths` (files or folders, relative to `root`). */
export function newestOf(root, paths) {
  let latest = 0;
  for (const path of paths) latest = Math.max(latest, newest(join(root, path)));
  return latest;
}

export function buildIfNeeded({ quiet = false, sources: checked = SOURCES } = {}) {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  if (!existsSync(join(ROOT, 'src')) || !existsSync(tsc)) return;
  const built = statSync(STAMP, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const sources = newestOf(ROOT, checked);
  // Within a millisecond: the stamp is set to `sources` below, and a file time set through utimes
  // comes back rounded (…087 is stored as …086.999).
  if (built + 1 >= sources) return;
  // The check above is what every call pays; what compiling needs is loaded only when it must.
  const require = createRequire(import.meta.url);
  const { spawnSync } = require('node:child_process');
  const { utimesSync, writeFileSync } = require('node:fs');
  if (!quiet) process.stderr.write('gatehouse: compiling TypeScript (first run or sources changed)…\n');
  const result = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.json')], { stdio: 'inherit' });
  if (result.status !== 0) {
    process.stderr.write('gatehouse: the TypeScript build failed (see above)\n');
    process.exit(1);
  }
  // The demo datasets, generated now rather than at the first `npm start` (src/compute/demo-data-cache.ts);
  // without them `up` generates as before, so a failure here is said, not fatal.
  const demo = spawnSync(process.execPath, [join(ROOT, 'dist', 'src', 'compute', 'demo-data-prepare.js')], { stdio: 'inherit' });
  if (demo.status !== 0) process.stderr.write('gatehouse: could not prepare the demo datasets (the first start will generate them)\n');
  writeFileSync(STAMP, `${new Date().toISOString()}\n`);
  // Stamped with the sources' time as the compile began, not now: a file edited while tsc ran is
  // newer than the stamp, so the next call compiles it instead of running the older dist/.
  utimesSync(STAMP, new Date(), new Date(sources));
}

// `npm install` / `npm ci` run this file as the `prepare` script, so the first `npm start` finds dist/
// current instead of compiling while the person waits for the ready line.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) buildIfNeeded();
