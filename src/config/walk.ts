// Walks the schema's sections and keys: the environment overrides, the unknown-key check and
// the reference table all come from this one list, so they cannot drift apart.
import { ConfigSchema } from './schema.js';

export interface KeySpec {
  section: string;
  key: string;
  path: string; // "server.port"
  env: string; // "GATEHOUSE_SERVER_PORT"
  schema: Record<string, unknown>;
}

type Props = Record<string, { properties?: Props } & Record<string, unknown>>;

export function configKeys(): KeySpec[] {
  const out: KeySpec[] = [];
  const sections = ConfigSchema.properties as unknown as Props;
  for (const [section, sectionSchema] of Object.entries(sections)) {
    for (const [key, schema] of Object.entries(sectionSchema.properties ?? {})) {
      out.push({
        section,
        key,
        path: `${section}.${key}`,
        env: `GATEHOUSE_${section}_${key}`.toUpperCase(),
        schema,
      });
    }
  }
  return out;
}

export function sectionNames(): string[] {
  return Object.keys(ConfigSchema.properties);
}

/** What a value of this key looks like, in words for an error message or the reference. */
export function expected(schema: Record<string, unknown>): string {
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.join(', ')}`;
  switch (schema.type) {
    case 'integer': {
      const { minimum, maximum } = schema as { minimum?: number; maximum?: number };
      if (minimum !== undefined && maximum !== undefined) return `an integer from ${minimum} to ${maximum}`;
      return 'an integer';
    }
    case 'number':
      return 'a number';
    case 'boolean':
      return 'true or false';
    case 'array':
      return 'a list of strings';
    case 'string':
      return (schema.minLength as number | undefined) ? 'a non-empty string' : 'a string';
    default:
      return String(schema.type ?? 'a value');
  }
}
