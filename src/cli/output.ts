// `-o json|yaml|table` (`--output`): the one switch between the text a person reads and a value a
// script parses, the same on every verb that prints a result. `table` is the human text (the
// default); `--json` stays as `-o json`. Where a verb's --output already names a destination (get,
// submit, audit export), it keeps that meaning and --json is its machine form.
// The yaml package is loaded only when YAML is asked for: help and the client verbs stay light.
import { Option } from 'commander';
import { safeJson, visibleLines } from './safe-text.js';

export const FORMATS = ['json', 'yaml', 'table'] as const;
export type Format = (typeof FORMATS)[number];

let format: Format = 'table';
let yamlStringify: ((value: unknown) => string) | undefined;

/** The flag itself, for a verb's definition. */
export const outputOption = () => new Option('-o, --output <format>', 'json, yaml or table (the default: text for people)').choices(FORMATS);

/** True when the verb's --output is this flag, not a destination of its own. */
export const isFormatOption = (option: { long?: string | undefined; argChoices?: string[] | undefined }) => option.long === '--output' && (option.argChoices?.includes('yaml') ?? false);

/** Chooses the format for this run (before the verb runs): loads the YAML writer only when it is needed. */
export async function chooseFormat(chosen: Format): Promise<void> {
  format = chosen;
  if (chosen === 'yaml' && yamlStringify === undefined) {
    const yaml = await import('yaml');
    yamlStringify = (value) => yaml.stringify(value, { lineWidth: 0 });
  }
}

export const currentFormat = (): Format => format;

/** json or yaml: a script reads stdout; notes and progress go to stderr. */
export const isStructured = () => format !== 'table';

/**
 * A result as the chosen structured format, with no character a terminal acts on left raw (JSON
 * escapes; YAML's double-quoted scalars use the same escapes, and visibleLines catches the rest).
 */
export function structured(value: unknown): string {
  if (format === 'yaml' && yamlStringify !== undefined) return visibleLines(yamlStringify(value)).trimEnd();
  return safeJson(value);
}
