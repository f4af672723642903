#!/usr/bin/env node
// The `gatehouse` command: build if needed, then run the compiled CLI.
import { buildIfNeeded, ROOT } from './build-if-needed.js';

buildIfNeeded();
await import(new URL(`file://${ROOT}/dist/src/cli/main.js`).href);
