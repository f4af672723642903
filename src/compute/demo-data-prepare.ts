// Writes dist/demo-data/ (see demo-data-cache.ts). Run by bin/build-if-needed.js after each compile:
//   node dist/src/compute/demo-data-prepare.js
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DEMO_CACHE_DIR, DEMO_CACHE_INDEX, type DemoCacheIndex, generatorStamp } from './demo-data-cache.js';
import { DEMO_DATASETS } from './demo-data.js';

export function writeDemoCache(dir = DEMO_CACHE_DIR): void {
  const stamp = generatorStamp();
  if (stamp === null) throw new Error('no compiled demo-data.js to fingerprint: run this from dist/');
  // Built beside and moved into place whole: a reader sees the old cache or the new one.
  const building = `${dir.replace(/\/$/, '')}.building-${process.pid}`;
  rmSync(building, { recursive: true, force: true });
  const index: DemoCacheIndex = { generator: stamp, datasets: {} };
  for (const [name, build] of Object.entries(DEMO_DATASETS)) {
    const files: { file: string; rows: number }[] = [];
    let n = 0;
    for (const { text, rows } of build().partitions) {
      const file = `${name}/${n++}`;
      mkdirSync(dirname(join(building, file)), { recursive: true });
      writeFileSync(join(building, file), text);
      files.push({ file, rows });
    }
    index.datasets[name] = files;
  }
  writeFileSync(join(building, DEMO_CACHE_INDEX), `${JSON.stringify(index)}\n`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(building, dir);
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) writeDemoCache();
