// Runs `gatehouse` as a person would: with stdin to type into and output read as it arrives.
import { spawn } from 'node:child_process';
import { CLI, cleanEnv, ROOT } from './gatehouse.js';

export interface CliRun {
  /** Resolves with the first match of `pattern` in stdout+stderr, as it is printed. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Sends a signal, as Ctrl-C (SIGINT) in its terminal would. */
  kill(signal: NodeJS.Signals): void;
}

export function startCli(args: string[], env: Record<string, string>, input?: string): CliRun {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...cleanEnv(), ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: (() => void)[] = [];
  const onData = () => {
    for (const w of waiters) w();
  };
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
    onData();
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
    onData();
  });
  if (input !== undefined) child.stdin.end(input);
  else child.stdin.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      onData();
      resolve({ code, stdout, stderr });
    }),
  );
  return {
    done,
    kill: (signal) => void child.kill(signal),
    waitFor: (pattern, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const match = (stdout + stderr).match(pattern);
          if (match) resolve(match);
          else if (child.exitCode !== null) reject(new Error(`gatehouse ${args.join(' ')} exited before printing ${pattern}\n${stdout}\n${stderr}`));
        };
        waiters.push(check);
        setTimeout(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms\n${stdout}\n${stderr}`)), timeoutMs).unref();
        check();
      }),
  };
}
