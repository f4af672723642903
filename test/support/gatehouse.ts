// Starts real Gatehouse processes for a test, each in its own folder with free ports, and stops them.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { storeConfig } from './test-store.js';

export const ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
export const CLI = join(ROOT, 'bin', 'gatehouse.js');
/**
 * The policy every suite starts from: a copy of the shipped policies/ kept with the tests, so an
 * admin's edits to policies/ in a working tree never change what the tests decide.
 */
export const TEST_POLICIES = join(ROOT, 'test', 'fixtures', 'policies');

/**
 * Task uids of their own for each sandbox's engine. Suites run side by side, each with its engine, and
 * an engine kills every process of its range as it starts, and of a job's uid at the job's end (a plain
 * task's at its seal): on the shared default range one suite's engine killed another's tasks. Blocks
 * of 64 above the default range, by process id (one live test process holds a pid) and a count within
 * the process (16 sandboxes alive at once in one suite).
 */
let sandboxes = 0;
function taskUids(): string {
  const first = 300_000 + ((process.pid % 1_000_000) * 16 + (sandboxes++ % 16)) * 64;
  return `${first}-${first + 63}`;
}

export interface Sandbox {
  dir: string;
  configFile: string;
  remove(): void;
}

/**
 * A folder with its own config, state and certificates; ports 0 so suites never collide. Its store is
 * the test run's (test-store.ts): the embedded one, or in the postgres project a fresh database per
 * sandbox. A caller's own `store` section wins, and no database is made for it.
 */
export function sandbox(config: Record<string, Record<string, unknown>> = {}): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-test-'));
  const merged = {
    ...('store' in config ? {} : storeConfig()),
    ...config,
    server: { port: 0, ...config.server },
    engine: { port: 0, task_uids: taskUids(), ...config.engine },
    policies: { dir: TEST_POLICIES, ...config.policies },
    log: { level: 'info', ...config.log },
  };
  const configFile = join(dir, 'gatehouse.yaml');
  writeFileSync(configFile, stringify(merged));
  return { dir, configFile, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `gatehouse ...args` to completion. */
export function runCli(args: string[], options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...cleanEnv(), ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The environment without any GATEHOUSE_* a developer may have set. */
export function cleanEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter(([k, v]) => !k.startsWith('GATEHOUSE_') && v !== undefined)) as Record<string, string>;
}

export interface ReadyLine {
  status: 'ready';
  gateway: { url: string; pid: number; log: string };
  engine: { url: string; pid: number; log: string };
  ca_file: string;
  startup_s: number;
}

export interface Up {
  ready: ReadyLine;
  ca: string;
  process: ChildProcess;
  output(): { stdout: string; stderr: string };
  /** Resolves with the exit code once `up` has ended (by itself or after stop()). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `gatehouse up --json` in a sandbox; resolves at the ready line. */
export function startUp(box: Sandbox, env: Record<string, string> = {}): Promise<Up> {
  const child = spawn(process.execPath, [CLI, 'up', '--json', '--config', box.configFile], {
    cwd: box.dir,
    env: { ...cleanEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gatehouse up printed no ready line within 60 s\n${stdout}\n${stderr}`));
    }, 60_000);
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      if (!line) return;
      clearTimeout(timer);
      const ready = JSON.parse(line) as ReadyLine;
      resolve({
        ready,
        ca: readFileSync(ready.ca_file, 'utf8'),
        process: child,
        exited,
        output: () => ({ stdout, stderr }),
        stop: async (signal = 'SIGTERM') => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          return exited;
        },
      });
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`gatehouse up exited (${code}) before it was ready\n${stdout}\n${stderr}`));
    });
  });
}

/** True while a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
