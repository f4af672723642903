// A service of Gatehouse as its own process for a bench (`gatehouse <service> --config FILE`), with no
// GATEHOUSE_* variable of the bench's own environment leaking in; resolves once it listens.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/version.js';

const CLI = join(PACKAGE_ROOT, 'bin', 'gatehouse.js');
/** Kept of the service's output, for the error when it fails to start or a job fails. */
const OUTPUT_TAIL = 16 * 1024;
const LISTEN_TIMEOUT_MS = 60_000;

export interface Service {
  url: string;
  pid: number;
  output(): string;
  stop(): Promise<void>;
}

/** `gatehouse <service> --config FILE` run from `cwd`. */
export function startService(configFile: string, cwd: string, service: 'engine' | 'dev-idp' | 'gateway', extraEnv: Record<string, string> = {}): Promise<Service> {
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GATEHOUSE_'))), ...extraEnv } as NodeJS.ProcessEnv;
  const child: ChildProcess = spawn(process.execPath, [CLI, service, '--config', configFile], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (c: Buffer) => {
    output += c.toString();
    if (output.length > 2 * OUTPUT_TAIL) output = output.slice(-OUTPUT_TAIL);
  };
  child.stdout!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${service} did not listen within ${LISTEN_TIMEOUT_MS / 1000} s\n${output}`));
    }, LISTEN_TIMEOUT_MS);
    let listening = false;
    child.stderr!.on('data', (c: Buffer) => {
      keep(c);
      if (listening) return;
      const match = /listening on (https?:\/\/\S+)/.exec(output);
      if (match === null) return;
      listening = true;
      clearTimeout(timer);
      resolve({
        url: match[1]!,
        pid: child.pid!,
        output: () => output,
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
          await exited;
          clearTimeout(kill);
        },
      });
    });
    void exited.then(() => {
      clearTimeout(timer);
      if (!listening) reject(new Error(`${service} exited (${child.exitCode ?? child.signalCode}) before it listened\n${output}`));
    });
  });
}
