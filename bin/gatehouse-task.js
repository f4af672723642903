#!/usr/bin/env node
// One partition of a job, as a Slurm array task runs it: build if needed, then run
// `--job <job folder> --partition N` (src/compute/partition-task.ts). Exit 0 done, 1 the partition
// failed, 2 it could not start.
import { buildIfNeeded, ROOT } from './build-if-needed.js';

buildIfNeeded({ quiet: true });
const { taskMain } = await import(new URL(`file://${ROOT}/dist/src/compute/index.js`).href);
process.exitCode = await taskMain(process.argv.slice(2));
