#!/usr/bin/env node
// `npm run soak`: build if needed, then run the compiled soak (dist/bench/soak/main.js): its own
// Gatehouse on 127.0.0.1, many simulated people at work on it, and the checks that must hold after.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildIfNeeded, ROOT } from './build-if-needed.js';

buildIfNeeded();
const { run } = await import(pathToFileURL(join(ROOT, 'dist', 'bench', 'soak', 'main.js')).href);
process.exitCode = await run(process.argv.slice(2));
