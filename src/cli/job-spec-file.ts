// job.yaml: a JobSpec written in YAML, plus the shorthands people reach for first — `python: f.py`,
// `node: f.mjs`, `command: 'sort ...'`, `source_file: f` with `runtime:` — and sizes with units.
// Paths in it are relative to the file, so a job folder runs the same from anywhere.
import { readFileSync } from 'node:fs';
import { dirname, extname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';
import { closest } from '../config/index.js';
import { type JobSpec, JobSpecSchema, ResourcesSchema, type Resources, type Runtime } from '../wire/index.js';
import { UsageError } from './fail.js';
import { parseCores, parseList, parseMemoryMb, parsePartitions, parseTimeLimit, splitCommand } from './job-flags.js';

/** Where source files come from; tests pass an in-memory map. */
export interface Files {
  readText(path: string): string;
}

export const diskFiles: Files = { readText: (path) => readFileSync(path, 'utf8') };

/** A spec under construction: fields still unchecked, and the file the source came from (it names the job). */
export type SpecDraft = Partial<Omit<JobSpec, 'resources'>> & { resources?: Partial<Resources>; sourceFile?: string };

const SHORTHANDS = ['python', 'node', 'command', 'source_file'] as const;
const SPEC_KEYS = Object.keys(JobSpecSchema.properties);
const FILE_KEYS = [...SPEC_KEYS, ...SHORTHANDS];
const RESOURCE_KEYS = Object.keys(ResourcesSchema.properties);
const RUNTIME_BY_EXTENSION: Record<string, Runtime> = { '.py': 'python', '.js': 'node', '.mjs': 'node', '.cjs': 'node' };

/** The runtime a source file's extension implies (.py, .mjs), if any. */
export const runtimeOf = (path: string): Runtime | undefined => RUNTIME_BY_EXTENSION[extname(path).toLowerCase()];

/** A positional argument is a job file when it says so (.yaml, .yml, .json); else it is a source file. */
export const isJobFile = (path: string) => /\.(ya?ml|json)$/i.test(path);

/** Reads a source file for the spec, with the one-line error a missing file deserves. */
export function readSource(files: Files, path: string, what: string): string {
  try {
    return files.readText(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read ${what} ${path}${code ? ` (${code})` : ''}`);
  }
}

export function readJobFile(path: string, files: Files = diskFiles): SpecDraft {
  const doc = parseYaml(readSource(files, path, 'the job file'), path);
  checkKeys(doc, path);
  const draft = { ...doc } as SpecDraft & Record<string, unknown>;
  for (const key of SHORTHANDS) delete draft[key];
  Object.assign(draft, program(doc, path, files));
  if (doc.resources !== undefined) draft.resources = resources(doc.resources, path);
  if (typeof doc.partitions === 'string' || typeof doc.partitions === 'number') draft.partitions = parsePartitions(String(doc.partitions), `${path}: partitions:`);
  if (typeof doc.labels === 'string') draft.labels = parseList(doc.labels);
  return draft;
}

function parseYaml(text: string, path: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = parse(text, { prettyErrors: false, uniqueKeys: true });
  } catch (err) {
    throw new UsageError(`${path}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new UsageError(`${path}: expected a mapping of job fields (input, output, python, resources, ...)`);
  return doc as Record<string, unknown>;
}

function checkKeys(doc: Record<string, unknown>, path: string): void {
  unknownKey(Object.keys(doc), FILE_KEYS, path, '');
  const res = doc.resources;
  if (res !== undefined && (res === null || typeof res !== 'object' || Array.isArray(res))) throw new UsageError(`${path}: resources: expected a mapping of ${RESOURCE_KEYS.join(', ')}`);
  if (res) unknownKey(Object.keys(res), RESOURCE_KEYS, path, 'resources.');
}

function unknownKey(keys: string[], known: readonly string[], path: string, prefix: string): void {
  const bad = keys.find((k) => !known.includes(k));
  if (bad === undefined) return;
  // `memory` for memory_mb, `time` for time_limit_s: a prefix is as good a hint as a typo.
  const near = closest(bad, known) ?? known.find((k) => k.startsWith(bad));
  throw new UsageError(`${path}: unknown key "${prefix}${bad}" (${near ? `did you mean "${prefix}${near}"?` : `known keys: ${known.join(', ')}`})`);
}

/** The runtime, source and argv the shorthands stand for; nothing when the file spells them out. */
function program(doc: Record<string, unknown>, path: string, files: Files): SpecDraft {
  const given = SHORTHANDS.filter((k) => doc[k] !== undefined);
  if (given.length > 1) throw new UsageError(`${path}: ${given.join(' and ')}: give one of ${SHORTHANDS.join(', ')}`);
  const key = given[0];
  if (key === undefined) return {};
  if (key === 'command' && doc.argv !== undefined) throw new UsageError(`${path}: command and argv: give the command once`);
  if (key === 'command') return { runtime: conflictFree(doc, 'command', path), argv: commandArgv(doc.command, path) };
  if (doc.source !== undefined) throw new UsageError(`${path}: ${key} and source: give the source once, as a file or as text`);
  const file = doc[key];
  if (typeof file !== 'string' || file === '') throw new UsageError(`${path}: ${key}: expected a file path`);
  const full = isAbsolute(file) ? file : join(dirname(path), file);
  const runtime = key === 'source_file' ? ((doc.runtime as Runtime | undefined) ?? runtimeOf(file)) : conflictFree(doc, key, path);
  return { runtime, source: readSource(files, full, `${key}:`), sourceFile: full };
}

/** `python: f.py` beside `runtime: node` is a contradiction, not a preference. */
function conflictFree(doc: Record<string, unknown>, runtime: Runtime, path: string): Runtime {
  if (doc.runtime !== undefined && doc.runtime !== runtime) throw new UsageError(`${path}: ${runtime}: sets the runtime ${runtime}, but runtime: says ${String(doc.runtime)}`);
  return runtime;
}

function commandArgv(value: unknown, path: string): string[] {
  if (typeof value === 'string') return splitCommand(value, `${path}: command:`);
  if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string')) return value as string[];
  throw new UsageError(`${path}: command: expected a command line or a list of words`);
}

/** Numbers as the spec has them, or the strings the flags take (4g, 30m). */
function resources(value: unknown, path: string): Partial<Resources> {
  const res = { ...(value as Record<string, unknown>) };
  const parsers = { cores: parseCores, memory_mb: parseMemoryMb, time_limit_s: parseTimeLimit };
  for (const [key, parse] of Object.entries(parsers)) {
    if (typeof res[key] === 'string') res[key] = parse(res[key], `${path}: resources.${key}:`);
  }
  return res as Partial<Resources>;
}
