// The system programs a task launch goes through, found in the system's own folders (never PATH),
// and a small runner for the start-up probes. Apart because the probes for bubblewrap and for
// namespaces both use them.
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';

// Tools come from the system's own folders, never from PATH: PATH may name folders the task uids
// cannot read (root's home) or that someone else can write.
export const SYSTEM_BIN = ['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin'];

export async function findTool(name: string): Promise<string | null> {
  for (const dir of SYSTEM_BIN) {
    const file = `${dir}/${name}`;
    if (await executable(file)) return file;
  }
  return null;
}

export async function executable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface Ran {
  code: number | null;
  output: string;
}

export function run(file: string, args: string[], timeoutMs = 10_000): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { cwd: '/', env: { PATH: '/usr/bin:/bin' }, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (err) => resolve({ code: null, output: err.message }));
    child.on('close', (code) => resolve({ code, output: output.trim() }));
  });
}
