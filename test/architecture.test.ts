// The shape of src/, checked: rooms talk through their faces (index.ts; lean.ts for the command line), nothing imports in a circle,
// and the leaf rooms stay leaves. Read from the source text, so it holds for type-only imports too.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** file (relative to src/) → the files of ours it imports, statically or dynamically. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8');
    const targets = [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^import\s+)'(\.{1,2}\/[^']+)'/gm)].map((m) =>
      relative(SRC, normalize(join(dirname(file), m[1]!))).replace(/\.js$/, '.ts'),
    );
    graph.set(relative(SRC, file), targets);
  }
  return graph;
}

const roomOf = (file: string) => (file.includes('/') ? file.split('/')[0]! : '(top)');

function findCycle(edges: Map<string, Iterable<string>>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): string[] | null => {
    state.set(node, 'open');
    path.push(node);
    for (const next of edges.get(node) ?? []) {
      if (!edges.has(next)) continue;
      if (state.get(next) === 'open') return [...path.slice(path.indexOf(next)), next];
      if (!state.has(next)) {
        const found = visit(next);
        if (found) return found;
      }
    }
    path.pop();
    state.set(node, 'done');
    return null;
  };
  for (const node of edges.keys()) {
    if (state.has(node)) continue;
    const found = visit(node);
    if (found) return found;
  }
  return null;
}

describe('the import graph of src/', () => {
  const graph = importGraph();
  const rooms = new Map<string, Set<string>>();
  for (const [file, targets] of graph) {
    const from = roomOf(file);
    if (!rooms.has(from)) rooms.set(from, new Set());
    for (const t of targets) if (roomOf(t) !== from) rooms.get(from)!.add(roomOf(t));
  }

  it('reads every source file and finds imports between rooms (the check can see what it checks)', () => {
    expect(graph.size).toBeGreaterThan(100);
    expect(rooms.get('gateway')).toContain('auth');
  });

  it('has no circle between files', () => {
    expect(findCycle(graph)).toBeNull();
  });

  it('has no circle between rooms', () => {
    expect(findCycle(rooms)).toBeNull();
  });

  // boot.ts is a third face for `gatehouse up` and the processes it starts besides the gateway (the
  // certificates, the demo data): without the room's services, which only the gateway or the engine runs.
  it("imports another room only through its face (index.ts, or lean.ts, or boot.ts), never its internals", () => {
    const reaching = [...graph].flatMap(([file, targets]) =>
      targets.filter((t) => roomOf(t) !== roomOf(file) && roomOf(t) !== '(top)' && !/^[^/]+\/(index|lean|boot)\.ts$/.test(t)).map((t) => `${file} → ${t}`),
    );
    expect(reaching).toEqual([]);
  });

  // lean.ts is a room's second face for the command line: constants and small readers that must load
  // without the room's heavy libraries (test/cli-startup.test.ts counts what the CLI loads). It may
  // import only its own room's files that import nothing but node: and other lean faces.
  it('keeps the lean faces lean: they reach only other lean faces and files with no heavy import', () => {
    const heavy = [...graph].filter(([file]) => /^[^/]+\/lean\.ts$/.test(file)).flatMap(([file, targets]) =>
      targets.filter((t) => roomOf(t) !== roomOf(file) && !/^[^/]+\/lean\.ts$/.test(t)).map((t) => `${file} → ${t}`),
    );
    expect(heavy).toEqual([]);
    expect([...graph.keys()].filter((f) => /^[^/]+\/lean\.ts$/.test(f)).length).toBeGreaterThanOrEqual(3);
  });

  it('keeps the leaf rooms leaves: identity and wire import nothing of ours but wire', () => {
    expect([...(rooms.get('wire') ?? [])]).toEqual([]);
    expect([...(rooms.get('identity') ?? [])].filter((r) => r !== 'wire')).toEqual([]);
  });

  it("keeps the data root's reader a kernel both sides may use: catalog imports only wire, the engine reads through it, and no gateway room imports the engine", () => {
    expect([...(rooms.get('catalog') ?? ['(no src/catalog)'])].filter((r) => r !== 'wire')).toEqual([]);
    expect(rooms.get('compute')).toContain('catalog');
    for (const room of ['gateway', 'proxy', 'auth', 'policy', 'quota', 'audit', 'store', 'identity', 'http', 'config', 'wire', 'catalog']) {
      expect(rooms.get(room) ?? new Set(), room).not.toContain('compute');
    }
  });

  it('keeps authentication and policy apart: neither imports the other', () => {
    expect(rooms.get('auth')).not.toContain('policy');
    expect(rooms.get('policy')).not.toContain('auth');
  });

  it('finds a circle when there is one (the detector itself)', () => {
    const edges = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
    ]);
    expect(findCycle(edges)).toEqual(['a', 'b', 'c', 'a']);
  });
});

describe('the tests themselves', () => {
  const TEST = join(import.meta.dirname);
  const files = sourceFiles(TEST).filter((f) => !f.includes(`${join('test', 'fixtures')}`));

  it("never read the working tree's policies/, which an admin may have changed (they use test/fixtures/policies)", () => {
    expect(files.length).toBeGreaterThan(50);
    const offending = files.filter((f) => /join\(\s*(ROOT|PACKAGE_ROOT)\s*,\s*'policies'/.test(readFileSync(f, 'utf8')));
    expect(offending.map((f) => relative(TEST, f))).toEqual([]);
  });
});
