// Configuration shown to people (config check --json, logs) never carries a secret.
import { type Config, SECRET_KEYS } from './schema.js';

export function redactSecrets(config: Config): Config {
  const copy = structuredClone(config) as unknown as Record<string, Record<string, unknown>>;
  for (const path of SECRET_KEYS) {
    const [section, key] = path.split('.') as [string, string];
    const values = copy[section];
    if (values && values[key] !== '') values[key] = '(secret)';
  }
  return copy as unknown as Config;
}
