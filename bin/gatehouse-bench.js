#!/usr/bin/env node
// `npm run bench`: build if needed, then run the compiled benchmark runner (dist/bench/runner.js).
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildIfNeeded, ROOT } from './build-if-needed.js';

buildIfNeeded();
const { run } = await import(pathToFileURL(join(ROOT, 'dist', 'bench', 'runner.js')).href);
// exitCode, not exit(): stdout may still be draining into a pipe (`--json | jq`), and a handle
// left open by a benchmark's teardown should show up as a hang here, not be hidden.
process.exitCode = await run(process.argv.slice(2));
