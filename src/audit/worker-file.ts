// Where the compiled thread files are (the writer, the verifier), whether the gateway runs from
// dist/ or from sources under test.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The compiled `name` thread beside this module, else in dist/; a clear error when neither exists. */
export function workerFile(name: string): string {
  const beside = fileURLToPath(new URL(`./${name}.js`, import.meta.url));
  if (existsSync(beside)) return beside;
  const built = fileURLToPath(new URL(`../../dist/src/audit/${name}.js`, import.meta.url));
  if (existsSync(built)) return built;
  throw new Error(`the audit ${name} thread is missing (looked in ${beside} and ${built}); run npm run build`);
}
