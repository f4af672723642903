#!/usr/bin/env node
// The `gatehouse` command: build if needed (checking only what the command runs from), then run
// the compiled CLI.
import { buildIfNeeded, CLI_SOURCES, ROOT } from './build-if-needed.js';

buildIfNeeded({ sources: CLI_SOURCES });
await import(new URL(`file://${ROOT}/dist/src/cli/main.js`).href);
