// `gatehouse config check|docs`: validate a configuration without starting anything, and keep
// the README's reference table generated from the schema.
import { structured } from './output.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { configReference, type LoadedConfig, redactSecrets, withReference } from '../config/index.js';
import { UsageError } from './fail.js';

export async function configCommand(sub: string | undefined, loaded: () => Promise<LoadedConfig>, options: { json: boolean; write?: string | undefined }): Promise<void> {
  switch (sub) {
    case 'check': {
      const { config, file } = await loaded();
      if (options.json) process.stdout.write(`${structured({ file, config: redactSecrets(config) })}\n`);
      else process.stdout.write(`config ok: ${file ?? 'built-in defaults'}\n`);
      return;
    }
    case 'docs': {
      if (!options.write) {
        process.stdout.write(`${configReference()}\n`);
        return;
      }
      const before = readFileSync(options.write, 'utf8');
      const after = withReference(before);
      if (after !== before) writeFileSync(options.write, after);
      process.stdout.write(`${options.write}: configuration reference ${after === before ? 'already up to date' : 'updated'}\n`);
      return;
    }
    default:
      throw new UsageError(`usage: gatehouse config check|docs [--write FILE]`);
  }
}
