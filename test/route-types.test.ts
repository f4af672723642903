// One schema per route is the source of its validation, its handler's types and its documentation:
// every file that declares routes takes its handler types from the TypeBox type provider, so what a
// handler reads is what Ajv checked (bodies as sent, see security/body-types.test.ts) and what
// /openapi.json publishes. Read from the source text, so a cast or a hand-written request type
// beside a schema is caught before it can drift from the schema.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** Files of src/ that add HTTP routes with schemas (fastify route options with a `schema:`). */
function routeFiles(): { file: string; text: string }[] {
  return sourceFiles(SRC)
    .map((path) => ({ file: relative(SRC, path), text: readFileSync(path, 'utf8') }))
    .filter(({ text }) => /\.(get|post|put|patch|delete)(<[^(]*>)?\(/.test(text) && /\bschema:\s*\{/.test(text) && /from 'fastify'/.test(text));
}

/** `where:line  text` for every line of `text` that matches. */
function hits(file: string, text: string, pattern: RegExp): string[] {
  return text.split('\n').flatMap((line, i) => (pattern.test(line) ? [`${file}:${i + 1}  ${line.trim()}`] : []));
}

describe('route handler types', () => {
  const files = routeFiles();

  it('finds the route files of the gateway and the engine', () => {
    const names = files.map((f) => f.file);
    for (const expected of ['proxy/job-routes.ts', 'compute/job-routes.ts', 'auth/routes/login-routes.ts', 'policy/routes.ts', 'audit/routes.ts', 'gateway/health.ts']) {
      expect(names).toContain(expected);
    }
  });

  it('come from the schemas through the TypeBox type provider in every route file', () => {
    const without = files.filter(({ text }) => !text.includes('withTypeProvider<TypeBoxTypeProvider>()')).map((f) => f.file);
    expect(without).toEqual([]);
  });

  it('are never cast nor restated beside the schema', () => {
    const found = files.flatMap(({ file, text }) => [
      // request.body as {...}, (request.query as ...).x, (request.body ?? {}) as ..., request.params as Record<...>
      ...hits(file, text, /\b(request|req)\.(body|query|params|headers)(\s*\?\?\s*\{\})?\)?\s+as\s/),
      // app.get<{ Querystring: {...} }>(...): a hand-written request type beside the route's schema
      ...hits(file, text, /\.(get|post|put|patch|delete|route)<\{/),
      // a helper taking FastifyRequest<{ Body: ... }>: the part it needs belongs in its parameters
      ...hits(file, text, /FastifyRequest<\{/),
    ]);
    expect(found).toEqual([]);
  });
});
