// The demo datasets as generated at build time (dist/demo-data/, written by demo-data-prepare.ts
// when the TypeScript is compiled, during `npm install`'s prepare): generating them takes about a
// second of CPU (300,000 transactions), which a first `npm start` would otherwise spend before its
// engine starts. The cache is used only when it came from this very generator: it carries the
// SHA-256 of the compiled demo-data.js, and any other (an edit, a `tsc` without the prepare step)
// makes `up` generate as before. The bytes are the same either way (a seeded generator).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PartitionData } from './catalog/index.js';

/** dist/demo-data/ beside dist/src/ (from the TypeScript sources, a folder that never exists). */
export const DEMO_CACHE_DIR = fileURLToPath(new URL('../../demo-data/', import.meta.url));
export const DEMO_CACHE_INDEX = 'index.json';

export interface DemoCacheIndex {
  /** SHA-256 of the generator (demo-data.js) that wrote it. */
  generator: string;
  datasets: Record<string, { file: string; rows: number }[]>;
}

/** The generator's fingerprint, or null where there is no compiled generator (run from the sources). */
export function generatorStamp(): string | null {
  try {
    return createHash('sha256').update(readFileSync(fileURLToPath(new URL('./demo-data.js', import.meta.url)))).digest('hex');
  } catch {
    return null;
  }
}

/** A dataset's partitions from the cache; null when there is none, or it is another generator's. */
export function cachedPartitions(name: string, dir = DEMO_CACHE_DIR): PartitionData[] | null {
  let index: DemoCacheIndex;
  try {
    index = JSON.parse(readFileSync(join(dir, DEMO_CACHE_INDEX), 'utf8')) as DemoCacheIndex;
  } catch {
    return null;
  }
  const stamp = generatorStamp();
  const files = index.datasets?.[name];
  if (stamp === null || index.generator !== stamp || !Array.isArray(files)) return null;
  try {
    return files.map(({ file, rows }) => ({ text: readFileSync(join(dir, file), 'utf8'), rows }));
  } catch {
    return null; // a cache someone trimmed: generate instead
  }
}
