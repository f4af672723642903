// The demo datasets generated at build time (src/compute/demo-data-cache.ts): the compiled modules
// are tested (a fingerprint exists only for the compiled generator), each cache in its own folder.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PartitionData } from '../src/compute/catalog/index.js';
import type * as Cache from '../src/compute/demo-data-cache.js';
import type * as Generator from '../src/compute/demo-data.js';
import type * as Prepare from '../src/compute/demo-data-prepare.js';
import { PACKAGE_ROOT } from '../src/version.js';

const compiled = (file: string) => import(join(PACKAGE_ROOT, 'dist', 'src', 'compute', file));
const { cachedPartitions, DEMO_CACHE_INDEX } = (await compiled('demo-data-cache.js')) as typeof Cache;
const { DEMO_DATASETS } = (await compiled('demo-data.js')) as typeof Generator;
const { writeDemoCache } = (await compiled('demo-data-prepare.js')) as typeof Prepare;
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-demo-cache-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const cache = join(dir, 'demo-data');
writeDemoCache(cache);

describe('the demo data cache', () => {
  it('holds the very bytes and row counts the generator makes', () => {
    for (const [name, build] of Object.entries(DEMO_DATASETS)) {
      const generated: PartitionData[] = [...build().partitions];
      expect(cachedPartitions(name, cache), name).toEqual(generated);
    }
  });

  it("is not used when another generator wrote it (an edited demo-data.ts, a plain tsc since)", () => {
    const indexFile = join(cache, DEMO_CACHE_INDEX);
    const index = readFileSync(indexFile, 'utf8');
    writeFileSync(indexFile, index.replace(/"generator":"[0-9a-f]+"/, `"generator":"${'0'.repeat(64)}"`));
    try {
      expect(cachedPartitions('words', cache)).toBeNull();
    } finally {
      writeFileSync(indexFile, index);
    }
    expect(cachedPartitions('words', cache)).not.toBeNull();
  });

  it('is not used when a file is missing, nor for a name it does not have, nor where there is none', () => {
    rmSync(join(cache, 'words', '0'));
    expect(cachedPartitions('words', cache)).toBeNull();
    expect(cachedPartitions('transactions', cache)).not.toBeNull();
    expect(cachedPartitions('nope', cache)).toBeNull();
    expect(cachedPartitions('words', join(dir, 'nowhere'))).toBeNull();
  });
});
