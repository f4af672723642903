// A first start within 5 s (issue 21): `npm start` as a person runs it, from a prepared dist/ (what
// `npm install` leaves), to the ready line, in a folder of its own with the repository's policies:
//   up-first   a fresh folder: the CA and certificates made, the demo datasets written, the store created
//   up-later   the same folder again: everything reused
// Against four `node -e 0` started at once in the same round (`up` and its three children: the floor
// of starting the processes this command starts). The goal is the absolute figure (≤ 5,000 ms for
// up-first); the ratio only says how far above that floor it is. The gateway's port, the engine's and
// the SSO provider's are 0, so a round never collides with a running Gatehouse.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { PACKAGE_ROOT } from '../src/version.js';
import type { Benchmark } from './measure.js';

const READY_TIMEOUT_MS = 120_000;

/** A folder with a configuration like gatehouse.yaml's (the development SSO provider on), ports 0. */
function folder(): { dir: string; config: string } {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-start-'));
  const config = join(dir, 'gatehouse.yaml');
  writeFileSync(
    config,
    stringify({
      server: { port: 0 },
      engine: { port: 0 },
      dev_idp: { enabled: true, port: 0, users_file: join(PACKAGE_ROOT, 'dev-idp', 'users.yaml') },
      policies: { dir: join(PACKAGE_ROOT, 'policies') },
    }),
  );
  return { dir, config };
}

/** Milliseconds from spawning `npm start` to its ready line; the command is stopped (and waited for) after. */
async function startOnce(config: string): Promise<number> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GATEHOUSE_'))) as Record<string, string>;
  const t0 = performance.now();
  // Its own process group: npm does not pass SIGTERM on to `up`, the group gets it.
  const child = spawn('npm', ['start', '--silent', '--', '--json', '--config', config], { cwd: PACKAGE_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  let output = '';
  try {
    return await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ready line within ${READY_TIMEOUT_MS / 1000} s\n${output}`)), READY_TIMEOUT_MS);
      child.stderr.on('data', (c: Buffer) => (output += c.toString()));
      child.stdout.on('data', (c: Buffer) => {
        output += c.toString();
        if (output.split('\n').some((l) => l.startsWith('{"status":"ready"'))) {
          clearTimeout(timer);
          resolve(performance.now() - t0);
        }
      });
      void exited.then(() => reject(new Error(`npm start ended before its ready line\n${output}`)));
    });
  } finally {
    stopGroup(child);
    await exited;
  }
}

function stopGroup(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
  } catch {
    // already gone
  }
}

/** Four `node -e 0` at once, until the last has ended. */
async function processFloor(): Promise<number> {
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 4 }, () => new Promise<void>((resolve, reject) => spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' }).on('close', () => resolve()).on('error', reject))));
  return performance.now() - t0;
}

interface Ctx {
  dirs: string[];
  later?: string;
}

export const benchmarks: Benchmark[] = [
  {
    name: 'up-first',
    unit: 'ms',
    baseline: 'four `node -e 0` at once (up and its three children)',
    warmup: 0,
    rounds: 3,
    setup: async () => ({ dirs: [] }),
    candidate: async (ctx: Ctx) => {
      const { dir, config } = folder();
      ctx.dirs.push(dir);
      return startOnce(config);
    },
    baselineRun: async () => processFloor(),
    teardown: async (ctx: Ctx) => {
      for (const dir of ctx.dirs) rmSync(dir, { recursive: true, force: true });
    },
  } satisfies Benchmark<Ctx> as Benchmark,
  {
    name: 'up-later',
    unit: 'ms',
    baseline: 'four `node -e 0` at once (up and its three children)',
    warmup: 0,
    rounds: 5,
    setup: async () => {
      const { dir, config } = folder();
      await startOnce(config); // the first start, not counted
      return { dirs: [dir], later: config };
    },
    candidate: async (ctx: Ctx) => startOnce(ctx.later!),
    baselineRun: async () => processFloor(),
    teardown: async (ctx: Ctx) => {
      for (const dir of ctx.dirs) rmSync(dir, { recursive: true, force: true });
    },
  } satisfies Benchmark<Ctx> as Benchmark,
];
