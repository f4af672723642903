// Where the runner scripts are on the engine's own disk. tsc compiles only this folder's .ts into
// dist/, so from dist/src/compute/runners the scripts are found back in src/compute/runners.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The runner script of each warm runtime; the engine copies them where its tasks can read them. */
export const RUNNER_FILES = { python: 'python_runner.py', node: 'node_runner.mjs' } as const;

/** Absolute path of a runtime's runner script, whether the engine runs from src/ or dist/. */
export function runnerScript(runtime: keyof typeof RUNNER_FILES): string {
  const file = RUNNER_FILES[runtime];
  const beside = fileURLToPath(new URL(`./${file}`, import.meta.url));
  if (existsSync(beside)) return beside;
  const source = fileURLToPath(new URL(`../../../../src/compute/runners/${file}`, import.meta.url));
  if (existsSync(source)) return source;
  throw new Error(`the ${runtime} runner script ${file} is missing (looked in ${beside} and ${source})`);
}
