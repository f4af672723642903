// The submit values people type (4g, 30m, 0,1,5-9, 'sort -o {output} {input}') turned into JobSpec
// values. Each refuses a bad value with one line naming where it came from: a flag, or a job-file key.
import { closest, durationSeconds } from '../config/index.js';
import { type Runtime, RUNTIMES } from '../wire/index.js';
import { UsageError } from './fail.js';

/** Partition numbers the engine accepts (JobSpecSchema): a range above it is a typo, not a request. */
const MAX_PARTITION = 9999;

export function parseCores(text: string, source = '--cores'): number {
  if (!/^[1-9][0-9]*$/.test(text)) throw new UsageError(`${source} ${text}: expected a whole number of cores, at least 1`);
  return Number(text);
}

/** Megabytes: a bare number is MB (as memory_mb is), m/mb and g/gb say the unit (4g = 4096). */
export function parseMemoryMb(text: string, source = '--memory'): number {
  const match = /^([0-9]+(?:\.[0-9]+)?)(m|mb|g|gb)?$/i.exec(text.trim());
  const mb = match ? Number(match[1]) * (match[2]?.toLowerCase().startsWith('g') ? 1024 : 1) : NaN;
  if (!Number.isInteger(mb) || mb < 1) throw new UsageError(`${source} ${text}: expected megabytes (1024) or a size such as 512m or 4g`);
  return mb;
}

/** Seconds: a bare number is seconds (as time_limit_s is), else a duration such as 30m, 2h or 1d. */
export function parseTimeLimit(text: string, source = '--time'): number {
  const trimmed = text.trim();
  if (/^[1-9][0-9]*$/.test(trimmed)) return Number(trimmed);
  try {
    return durationSeconds(trimmed);
  } catch {
    throw new UsageError(`${source} ${text}: expected seconds (3600) or a duration such as 30m or 2h`);
  }
}

/** `0,1,5-9` → [0, 1, 5, 6, 7, 8, 9]: sorted and without repeats, as the spec requires. */
export function parsePartitions(text: string, source = '--partitions'): number[] {
  const found = new Set<number>();
  for (const item of text.split(',').map((s) => s.trim())) {
    const match = /^([0-9]+)(?:-([0-9]+))?$/.exec(item);
    if (!match) throw new UsageError(`${source} ${text}: expected partition numbers and ranges such as 0,1,5-9`);
    const low = Number(match[1]);
    const high = match[2] === undefined ? low : Number(match[2]);
    if (high < low) throw new UsageError(`${source} ${text}: the range ${item} goes down; write it low-high (${high}-${low})`);
    if (high > MAX_PARTITION) throw new UsageError(`${source} ${text}: partition numbers go up to ${MAX_PARTITION}`);
    for (let p = low; p <= high; p++) found.add(p);
  }
  return [...found].sort((a, b) => a - b);
}

export function parseRuntime(text: string, source = '--runtime'): Runtime {
  if ((RUNTIMES as readonly string[]).includes(text)) return text as Runtime;
  const near = closest(text, RUNTIMES);
  throw new UsageError(`${source} ${text}: expected ${RUNTIMES.join(', ')}${near ? ` (did you mean ${near}?)` : ''}`);
}

/** `a, b,c` → ['a', 'b', 'c']. */
export const parseList = (text: string) =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/**
 * A command line split the way a POSIX shell splits words (quotes and backslashes, nothing else),
 * so `--command 'grep -v "^#" {input}'` reaches the engine as the argv the user meant. No
 * variables, globs or pipes: the engine runs argv without a shell.
 */
export function splitCommand(text: string, source = '--command'): string[] {
  const words: string[] = [];
  let word: string | null = null;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else word += c;
    } else if (c === '\\' && i + 1 < text.length && (quote === null || '"\\$`'.includes(text[i + 1]!))) {
      word = (word ?? '') + text[++i];
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else word += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      word ??= '';
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else word = (word ?? '') + c;
  }
  if (quote) throw new UsageError(`${source} ${text}: a ${quote} quote is not closed`);
  if (word !== null) words.push(word);
  if (words.length === 0) throw new UsageError(`${source}: expected a program and its arguments, such as 'sort -o {output} {input}'`);
  return words;
}
