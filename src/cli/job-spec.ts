// The JobSpec `gatehouse submit` sends: the job file if one is given, the flags over it, the
// defaults under both, checked here against the same schema the gateway uses, so a typo costs a
// line on the terminal rather than a round trip (and nothing is sent).
import { basename, extname } from 'node:path';
import { Value } from 'typebox/value';
import { datasetNameProblem, type JobSpec, jobSpecProblem, JobSpecSchema } from '../wire/index.js';
import { UsageError } from './fail.js';
import { parseCores, parseList, parseMemoryMb, parsePartitions, parseRuntime, parseTimeLimit, splitCommand } from './job-flags.js';
import { diskFiles, type Files, isJobFile, readJobFile, readSource, runtimeOf, type SpecDraft } from './job-spec-file.js';

/** The submit flags as parseArgs hands them over: strings, untouched. */
export interface SubmitArgs {
  /** The positional argument: a job file (.yaml, .yml, .json), or a source file run with --runtime. */
  file?: string | undefined;
  runtime?: string | undefined;
  input?: string | undefined;
  output?: string | undefined;
  python?: string | undefined;
  node?: string | undefined;
  command?: string | undefined;
  entrypoint?: string | undefined;
  cores?: string | undefined;
  memory?: string | undefined;
  time?: string | undefined;
  name?: string | undefined;
  partitions?: string | undefined;
  overwrite?: boolean | undefined;
  labels?: string | undefined;
  backend?: string | undefined;
}

export const DEFAULT_RESOURCES = { cores: 1, memory_mb: 1024, time_limit_s: 3600 } as const;

const NAME_MAX_LENGTH = 128;

export function buildSpec(args: SubmitArgs, files: Files = diskFiles): JobSpec {
  const jobFile = args.file !== undefined && isJobFile(args.file) ? args.file : undefined;
  const fromFile = jobFile === undefined ? {} : readJobFile(jobFile, files);
  const draft = overlay(fromFile, flagDraft(args, files));
  const spec = withDefaults(draft, jobFile);
  checkSpec(spec);
  return spec;
}

/** The flags as a draft: only what was given, so that the job file keeps the rest. */
export function flagDraft(args: SubmitArgs, files: Files = diskFiles): SpecDraft {
  const draft: SpecDraft = { ...programFlags(args, files) };
  const resources = {
    cores: args.cores === undefined ? undefined : parseCores(args.cores),
    memory_mb: args.memory === undefined ? undefined : parseMemoryMb(args.memory),
    time_limit_s: args.time === undefined ? undefined : parseTimeLimit(args.time),
  };
  Object.assign(draft, { name: args.name, input: args.input, output: args.output, entrypoint: args.entrypoint, backend: args.backend, resources });
  if (args.partitions !== undefined) draft.partitions = parsePartitions(args.partitions);
  if (args.labels !== undefined) draft.labels = parseList(args.labels);
  if (args.overwrite) draft.mode = 'overwrite';
  return draft;
}

/**
 * The program the flags name: --python F, --node F or --command '...'; or a source file given as
 * the argument (`submit --runtime python f.py`, the form examples/README.md shows), its runtime
 * from --runtime or its extension.
 */
function programFlags(args: SubmitArgs, files: Files): SpecDraft {
  const key = programFlag(args);
  const sourceArg = args.file !== undefined && !isJobFile(args.file) ? args.file : undefined;
  if (sourceArg !== undefined && (key === 'python' || key === 'node')) throw new UsageError(`${sourceArg} and --${key}: give the source once`);
  const draft: SpecDraft = key === undefined ? {} : key === 'command' ? { runtime: 'command', argv: splitCommand(args.command!) } : { runtime: key, source: readSource(files, args[key]!, `--${key}`), sourceFile: args[key]! };
  if (sourceArg !== undefined) Object.assign(draft, { runtime: draft.runtime ?? runtimeOf(sourceArg), source: readSource(files, sourceArg, 'the source file'), sourceFile: sourceArg });
  if (args.runtime === undefined) return draft;
  const runtime = parseRuntime(args.runtime);
  if (key !== undefined && key !== runtime) throw new UsageError(`--runtime ${runtime} and --${key}: say the runtime once`);
  return { ...draft, runtime };
}

function programFlag(args: SubmitArgs): 'python' | 'node' | 'command' | undefined {
  const given = (['python', 'node', 'command'] as const).filter((k) => args[k] !== undefined);
  if (given.length > 1) throw new UsageError(`--${given.join(' and --')}: choose one of --python FILE, --node FILE or --command 'argv...'`);
  return given[0];
}

/** Flags win over the file; a program given by flags replaces the file's program as a whole. */
export function overlay(base: SpecDraft, top: SpecDraft): SpecDraft {
  const merged: SpecDraft = { ...base };
  if (top.source !== undefined || top.argv !== undefined) {
    delete merged.source;
    delete merged.argv;
    delete merged.sourceFile;
  }
  for (const [key, value] of Object.entries(top)) if (value !== undefined && key !== 'resources') Object.assign(merged, { [key]: value });
  merged.resources = { ...base.resources, ...defined(top.resources ?? {}) };
  return merged;
}

function withDefaults(draft: SpecDraft, jobFile: string | undefined): JobSpec {
  const { sourceFile, ...fields } = draft;
  const spec = { ...fields, resources: { ...DEFAULT_RESOURCES, ...defined(draft.resources ?? {}) } } as JobSpec;
  spec.name = draft.name ?? defaultName([sourceFile, draft.argv?.[0], jobFile]);
  return defined(spec);
}

/** The source file's name (clean.py → clean), else the program's, else the job file's. */
export function defaultName(candidates: (string | undefined)[]): string {
  for (const candidate of candidates) {
    if (candidate === undefined) continue;
    const name = basename(candidate, extname(candidate))
      .replace(/[^A-Za-z0-9._-]+/g, '-')
      .replace(/^[^A-Za-z0-9]+/, '')
      .slice(0, NAME_MAX_LENGTH);
    if (name !== '') return name;
  }
  return 'job';
}

const defined = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

/** Throws a UsageError naming the first bad field, as the gateway would answer 400 invalid_request. */
export function checkSpec(spec: JobSpec): void {
  if (!Value.Check(JobSpecSchema, spec)) throw new UsageError(schemaProblem(spec));
  const problem = jobSpecProblem(spec);
  if (problem !== null) throw new UsageError(problem);
}

const MISSING_HINT: Record<string, string> = {
  input: '--input NAME, or input: in the job file',
  output: '--output NAME, or output: in the job file',
  runtime: "--python FILE, --node FILE or --command 'argv...', or the same keys in the job file",
};

function schemaProblem(spec: JobSpec): string {
  const error = Value.Errors(JobSpecSchema, spec).find((e) => e.keyword !== 'boolean');
  if (error === undefined) return 'the job spec is not valid';
  const segments = error.instancePath.split('/').slice(1);
  if (error.keyword === 'required') {
    const missing = (error.params as { requiredProperties?: string[] }).requiredProperties?.[0] ?? '';
    const field = [...segments, missing].join('.');
    return `${field}: missing${MISSING_HINT[field] ? ` (${MISSING_HINT[field]})` : ''}`;
  }
  const field = segments.map((s, i) => (/^[0-9]+$/.test(s) ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
  const value = segments.reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], spec);
  return `${field}: ${fieldProblem(segments[0], value) ?? `${error.message}, got ${JSON.stringify(value)}`}`;
}

/** Words for the patterns people trip on; the schema's message for the rest. */
function fieldProblem(field: string | undefined, value: unknown): string | null {
  if ((field === 'input' || field === 'output') && typeof value === 'string') return datasetNameProblem(value);
  if (field === 'name' && typeof value === 'string') return `${JSON.stringify(value)}: letters, digits, '.', '_' and '-', starting with a letter or digit, at most ${NAME_MAX_LENGTH}`;
  return null;
}
