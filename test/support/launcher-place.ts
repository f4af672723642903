// A data root for suites that start workers through the real launcher as root (launcher-review,
// launcher-orphan-review): a one-partition dataset, the engine's staging and runtime folders secured
// as the engine secures them, and a stand-in runner installed.
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectIsolation, installRuntime, secureDataRoot } from '../../src/compute/sandbox/index.js';

export interface LauncherPlace {
  base: string;
  dataRoot: string;
  stagingRoot: string;
  runtimeDir: string;
}

export async function launcherPlace(prefix: string, taskUids: string, partition: string): Promise<LauncherPlace> {
  const base = await mkdtemp(join(tmpdir(), prefix));
  await chmod(base, 0o711);
  const dataRoot = join(base, 'data');
  await mkdir(join(dataRoot, 'sales'), { recursive: true });
  await writeFile(join(dataRoot, 'sales', 'part-00000.csv'), partition);
  const columns = partition.split('\n')[0]!.split(',');
  await writeFile(join(dataRoot, 'sales', '_dataset.json'), JSON.stringify({ format: 'csv', columns }));
  const plain = await detectIsolation({ mode: 'none', taskUids });
  const { stagingRoot, runtimeDir } = await secureDataRoot(dataRoot, plain);
  const runner = join(base, 'runner.py');
  await writeFile(runner, 'print("runner")\n');
  await installRuntime(stagingRoot, [runner]);
  return { base, dataRoot, stagingRoot, runtimeDir };
}
