// node --import this-file: registers hooks.mjs (test/cli-startup.test.ts), which sees what `import`
// resolves; require() (a CommonJS package, or createRequire for a lazy load) is traced here, as the
// resolve hooks of Node 20 do not see it (a built-in required as `node:x` skips this step: not listed).
import { appendFileSync } from 'node:fs';
import Module, { register } from 'node:module';
import { pathToFileURL } from 'node:url';

register('./hooks.mjs', import.meta.url);

const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (...args) {
  const file = resolveFilename.apply(this, args);
  if (process.env.TRACE_OUT) appendFileSync(process.env.TRACE_OUT, `${file.startsWith('/') ? pathToFileURL(file).href : `node:${file.replace(/^node:/, '')}`}\n`);
  return file;
};
