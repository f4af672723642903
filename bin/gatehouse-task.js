#!/usr/bin/env node
// One partition of a job, as a Slurm array task runs it: `--job <job folder> --partition N`
// (src/compute/partition-task.ts). Exit 0 done, 1 the partition failed, 2 it could not start.
// It runs as the person's account on a node, so it never compiles anything: dist/ is built once by
// whoever installed the checkout (`npm run build`), and a checkout without it cannot start a task.
import { existsSync } from 'node:fs';
import { ROOT } from './build-if-needed.js';

const entry = `${ROOT}/dist/src/compute/index.js`;
if (!existsSync(entry)) {
  process.stderr.write(`gatehouse-task: ${ROOT} is not built (no dist/); run npm run build there as its owner\n`);
  process.exit(2);
}
const { taskMain } = await import(new URL(`file://${entry}`).href);
process.exitCode = await taskMain(process.argv.slice(2));
