// Datasets as both sides see them: the naming rule (the gateway checks it before policy, the
// engine before it touches a path) and the listing the engine sends the gateway.
import Type, { type Static } from 'typebox';

export const DATASET_NAME_MAX_LENGTH = 128;

/** `name` or `namespace/name`; each part lower-case letters, digits, `_` and `-`, not starting with `_` or `-`. */
export const DATASET_NAME_PATTERN = '^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)?$';

const NAME = new RegExp(DATASET_NAME_PATTERN);
const ALLOWED_CHARACTER = /[a-z0-9_/-]/;

export const DATASET_FORMATS = ['csv', 'jsonl'] as const;
export type DatasetFormat = (typeof DATASET_FORMATS)[number];

export function isDatasetName(name: unknown): name is string {
  return typeof name === 'string' && wellFormed(name);
}

function wellFormed(name: string): boolean {
  return name.length <= DATASET_NAME_MAX_LENGTH && NAME.test(name);
}

/** Null for a good name, else one sentence saying what is wrong with it. */
export function datasetNameProblem(name: string): string | null {
  if (typeof name !== 'string' || name === '') return 'a dataset name must not be empty';
  if (wellFormed(name)) return null;
  const shown = JSON.stringify(name.length > 60 ? `${name.slice(0, 60)}…` : name);
  if (name.length > DATASET_NAME_MAX_LENGTH) {
    return `dataset name ${shown} is ${name.length} characters long; the limit is ${DATASET_NAME_MAX_LENGTH}`;
  }
  if (name.startsWith('/')) return `dataset name ${shown} is an absolute path; names are relative to the data root (name or namespace/name)`;
  const parts = name.split('/');
  // Before the slash count, so `../../etc` is called what it is.
  const climb = parts.find((p) => p === '.' || p === '..');
  if (climb !== undefined) return `dataset name ${shown} contains a "${climb}" part; names cannot point outside their folder`;
  if (name.endsWith('/')) return `dataset name ${shown} ends with /`;
  if (name.includes('//')) return `dataset name ${shown} has an empty part (//)`;
  if (parts.length > 2) return `dataset name ${shown} has ${parts.length - 1} slashes; at most one namespace is allowed (namespace/name)`;
  if (/[A-Z]/.test(name)) return `dataset name ${shown} has upper-case letters; names are lower case`;
  const bad = [...name].find((c) => !ALLOWED_CHARACTER.test(c));
  if (bad !== undefined) {
    return `dataset name ${shown} contains ${describeCharacter(bad)}; allowed are a-z, 0-9, _ and -, and one / after a namespace`;
  }
  const part = parts.find((p) => !/^[a-z0-9]/.test(p)) ?? name;
  return `dataset name ${shown}: "${part}" must start with a letter or a digit`;
}

function describeCharacter(c: string): string {
  if (c === ' ') return 'a space';
  const code = c.codePointAt(0) ?? 0;
  if (code < 0x20 || code === 0x7f) return `a control character (U+${code.toString(16).toUpperCase().padStart(4, '0')})`;
  return JSON.stringify(c);
}

/** One dataset in a listing: its manifest, with partitions summed up. */
export const DatasetInfoSchema = Type.Object(
  {
    name: Type.String({ pattern: DATASET_NAME_PATTERN, maxLength: DATASET_NAME_MAX_LENGTH }),
    format: Type.Union([Type.Literal('csv'), Type.Literal('jsonl')]),
    columns: Type.Array(Type.String()),
    partitions: Type.Integer({ minimum: 0 }),
    rows: Type.Integer({ minimum: 0 }),
    bytes: Type.Integer({ minimum: 0 }),
    owner: Type.Union([Type.String(), Type.Null()]),
    labels: Type.Array(Type.String()),
    created_at: Type.Union([Type.String(), Type.Null()]),
    produced_by: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false },
);

export type DatasetInfo = Static<typeof DatasetInfoSchema>;

/** The body of the engine's `GET /datasets`, sorted by name. */
export const DatasetListSchema = Type.Object({ datasets: Type.Array(DatasetInfoSchema) }, { additionalProperties: false });

export type DatasetList = Static<typeof DatasetListSchema>;
