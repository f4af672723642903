// The CLI keeps logins and contexts in private files. Writing one must never write through a link
// found at its name (it replaces the link, leaving the linked file as it was), and must leave it 0600.
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writePrivate } from '../src/cli/client/credentials.js';

const dirs: string[] = [];
const fresh = () => {
  const d = mkdtempSync(join(tmpdir(), 'gh-private-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('writePrivate', () => {
  it('writes the content as a 0600 file and leaves no temporary file behind', () => {
    const dir = fresh();
    writePrivate(join(dir, 'credentials.json'), '{"a":1}\n');
    expect(readFileSync(join(dir, 'credentials.json'), 'utf8')).toBe('{"a":1}\n');
    expect(statSync(join(dir, 'credentials.json')).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['credentials.json']);
  });

  it('replaces a link placed at the name instead of writing through it', () => {
    const dir = fresh();
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'untouched\n', { mode: 0o644 });
    symlinkSync(victim, join(dir, 'credentials.json'));
    writePrivate(join(dir, 'credentials.json'), 'secret\n');
    expect(readFileSync(victim, 'utf8')).toBe('untouched\n');
    expect(statSync(victim).mode & 0o777).toBe(0o644);
    expect(lstatSync(join(dir, 'credentials.json')).isSymbolicLink()).toBe(false);
    expect(readFileSync(join(dir, 'credentials.json'), 'utf8')).toBe('secret\n');
  });

  it('does not write through a link planted at a temporary name one could guess (the name and pid)', () => {
    const dir = fresh();
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'untouched\n');
    symlinkSync(victim, join(dir, `credentials.json.${process.pid}.tmp`));
    writePrivate(join(dir, 'credentials.json'), 'secret\n');
    expect(readFileSync(victim, 'utf8')).toBe('untouched\n');
    expect(readFileSync(join(dir, 'credentials.json'), 'utf8')).toBe('secret\n');
  });
});
