// node --import this-file: registers hooks.mjs (test/cli-startup.test.ts).
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
