// The README's Node.js statement against package.json and package-lock.json: the version it says is
// needed is the one `engines` declares, and every installed package whose own `engines` refuses that
// version (the EBADENGINE warnings `npm install` prints there) is named beside it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './support/gatehouse.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; engines?: { node?: string } | string[] }> };

/** Whether a Node major version meets an `engines.node` range (the forms the lock holds: >=N, ^N.x, N, N.x || ...). */
function allowsMajor(range: string, major: number): boolean {
  return range.split('||').some((alternative) => {
    const alt = alternative.trim();
    const m = /(\d+)/.exec(alt);
    if (!m) return true; // `*` or empty: anything
    const n = Number(m[1]);
    if (alt.startsWith('>=') || alt.startsWith('>')) return n <= major;
    if (alt.startsWith('<')) return n > major;
    return n === major; // ^20.19.0, ~20, 20, 20.x: that major
  });
}

describe('README: which Node.js', () => {
  const stated = /Needs Node\.js (\d+) or later/.exec(readme);

  it('states the version package.json engines declares', () => {
    expect(stated, 'README says "Needs Node.js N or later"').not.toBeNull();
    expect(pkg.engines.node).toBe(`>=${stated![1]}`);
  });

  it('names every installed package that declares a newer Node (npm warns EBADENGINE for each)', () => {
    const major = Number(stated![1]);
    const sentence = readme.slice(stated!.index, readme.indexOf('\n\n', stated!.index));
    const warned = Object.entries(lock.packages)
      .filter(([path, p]) => path !== '' && p.engines !== undefined && !Array.isArray(p.engines) && p.engines.node !== undefined && !allowsMajor(p.engines.node, major))
      .map(([path, p]) => `${path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)}@${p.version}`);
    for (const name of warned) expect(sentence, `README's Node.js paragraph should name ${name}`).toContain(name);
    expect(allowsMajor('^20.19.0 || >=22.12.0', 20)).toBe(true);
    expect(allowsMajor('>=22', 20)).toBe(false);
    expect(allowsMajor('18 || 20 || >=22', 20)).toBe(true);
  });
});
