// The batch script of a Slurm job's array: each task runs gatehouse-task on its partition (Slurm's
// array task id) and, when the partition failed (exit 1: the job's code or its output), runs it
// again up to the job's max_attempts, as the engine retries a partition. Exit 2 (the task could
// not start) is never retried. Every value is quoted for sh; none comes unchecked from a person.
import { DEFAULT_MAX_ATTEMPTS } from '../../wire/index.js';

export interface TaskScriptOptions {
  command: readonly string[];
  python: string;
  jobDir: string;
  attempts?: number | undefined;
}

export function taskScript(o: TaskScriptOptions): string {
  const attempts = o.attempts ?? DEFAULT_MAX_ATTEMPTS;
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > 10) throw new Error(`attempts must be 1 to 10, got ${attempts}`);
  const run = [...o.command, '--job', o.jobDir, '--python', o.python].map(shellQuote).join(' ');
  return [
    '#!/bin/sh',
    '# Gatehouse: one partition of a job per array task; a failed partition is tried again.',
    'n=0',
    'while :; do',
    '  n=$((n + 1))',
    `  ${run} --partition "$SLURM_ARRAY_TASK_ID"`,
    '  rc=$?',
    '  [ "$rc" -eq 0 ] && exit 0',
    `  if [ "$rc" -ne 1 ] || [ "$n" -ge ${attempts} ]; then exit "$rc"; fi`,
    '  echo "gatehouse-task: partition $SLURM_ARRAY_TASK_ID failed (attempt $n); trying again" >&2',
    'done',
    '',
  ].join('\n');
}

export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}
