// The launcher's currency check (bin/build-if-needed.js): every edit a compile must see makes the
// sources newer than a stamp taken before it, in whatever way an editor saves. File times are set
// explicitly (an hour apart), so the test does not depend on the clock's resolution.
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module beside the launcher
import { newestOf } from '../bin/build-if-needed.js';

const HOUR = 3600_000;
let root: string;
let stamp: number;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'gatehouse-build-check-'));
  mkdirSync(join(root, 'src', 'cli'), { recursive: true });
  writeFileSync(join(root, 'src', 'cli', 'main.ts'), 'a');
  writeFileSync(join(root, 'src', 'index.ts'), 'b');
  writeFileSync(join(root, 'tsconfig.json'), '{}');
  // Everything as of two hours ago; the stamp (the last compile) one hour ago.
  const old = new Date(Date.now() - 2 * HOUR);
  for (const p of ['src/cli/main.ts', 'src/index.ts', 'src/cli', 'src', 'tsconfig.json']) utimesSync(join(root, p), old, old);
  stamp = Date.now() - HOUR;
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const stale = (): boolean => (newestOf as (root: string, paths: string[]) => number)(root, ['src', 'tsconfig.json', 'missing.json']) > stamp;

describe('the build check', () => {
  it('finds nothing newer than the last compile when nothing changed (and ignores a listed path that does not exist)', () => {
    expect(stale()).toBe(false);
  });

  it('sees a file edited in place, however deep (its folder times do not change)', () => {
    utimesSync(join(root, 'src', 'cli', 'main.ts'), new Date(), new Date());
    expect(stale()).toBe(true);
  });

  it('sees a file saved by rename (an editor writing a new file over the old one)', () => {
    writeFileSync(join(root, 'src', 'cli', 'main.ts.tmp'), 'c');
    renameSync(join(root, 'src', 'cli', 'main.ts.tmp'), join(root, 'src', 'cli', 'main.ts'));
    expect(stale()).toBe(true);
  });

  it('sees a deleted file (its folder changes)', () => {
    rmSync(join(root, 'src', 'index.ts'));
    expect(stale()).toBe(true);
  });

  it('sees a listed file outside the folders (tsconfig.json)', () => {
    writeFileSync(join(root, 'tsconfig.json'), '{"compilerOptions":{}}');
    expect(stale()).toBe(true);
  });

  // review31: the walk must not die on what editors and checkouts leave in src/, nor skip a linked folder.
  it("survives a dangling symlink (Emacs's .#file lock) and still sees the edit beside it", () => {
    symlinkSync('alice@host.1234:1700000000', join(root, 'src', 'cli', '.#main.ts'));
    utimesSync(join(root, 'src', 'cli'), new Date(Date.now() - 2 * HOUR), new Date(Date.now() - 2 * HOUR));
    expect(stale()).toBe(false);
    utimesSync(join(root, 'src', 'cli', 'main.ts'), new Date(), new Date());
    expect(stale()).toBe(true);
  });

  it('sees an edit inside a folder linked into src/', () => {
    const elsewhere = join(root, 'elsewhere');
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, 'linked.ts'), 'd');
    const old = new Date(Date.now() - 2 * HOUR);
    utimesSync(join(elsewhere, 'linked.ts'), old, old);
    utimesSync(elsewhere, old, old);
    symlinkSync(elsewhere, join(root, 'src', 'linked'));
    utimesSync(join(root, 'src'), old, old);
    expect(stale()).toBe(false);
    utimesSync(join(elsewhere, 'linked.ts'), new Date(), new Date());
    expect(stale()).toBe(true);
  });
});
