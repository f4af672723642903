// How `up` forks its children, and forks them first: before it has loaded its own code and its
// configuration (together about a second of CPU on one core while the other waited), from what a
// quick read of the configuration says (config/up-settings.ts). Each child loads its code and waits
// for its go (up-handshake.ts), which carries the configuration file; up.ts checks the quick read
// against the loaded configuration and forks again where they differ. Imports nothing heavy.
import { type ChildProcess, fork } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CaKeyPair, newCaKeyPair } from '../auth/lean.js';
import { upSettings } from '../config/boot.js';
import { CERT_FILES } from '../wire/lean.js';
import { WAIT_FOR_GO } from './up-handshake.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

export type ChildName = 'engine' | 'gateway' | 'dev-idp';

export interface Child {
  name: ChildName;
  process: ChildProcess;
  log: string;
  url?: string;
}

/** Children forked before the configuration was loaded, and what they were forked for. */
export interface EarlyChildren {
  logDir: string;
  devIdp: boolean;
  children: Child[];
  /** On a first start (no CA key in certsDir yet): the CA's key pair, being made on the thread pool. */
  caKey?: { certsDir: string; pair: Promise<CaKeyPair> };
}

/** Forks `name` with its output appended to logDir/NAME.log; it waits for its go before it reads any configuration. */
export function forkChild(name: ChildName, logDir: string): Child {
  mkdirSync(logDir, { recursive: true, mode: 0o700 });
  const log = join(logDir, `${name}.log`);
  const fd = openSync(log, 'a', 0o600);
  try {
    const child = fork(MAIN, [name], {
      env: { ...process.env, [WAIT_FOR_GO]: '1' },
      stdio: ['ignore', fd, fd, 'ipc'],
      // Its own process group: a terminal's Ctrl-C reaches only `up`, which stops the children in order.
      detached: true,
    });
    return { name, log, process: child };
  } finally {
    closeSync(fd);
  }
}

/** The engine, the gateway and (when the quick read says so) the development provider, forked now; undefined when the quick read is unsure. */
export function forkEarly(configPath: string | undefined): EarlyChildren | undefined {
  const settings = upSettings(configPath);
  if (!settings) return undefined;
  const logDir = join(settings.stateDir, 'log');
  const names: ChildName[] = settings.devIdp ? ['engine', 'dev-idp', 'gateway'] : ['engine', 'gateway'];
  const early: EarlyChildren = { logDir, devIdp: settings.devIdp, children: names.map((n) => forkChild(n, logDir)) };
  if (!existsSync(join(settings.certsDir, CERT_FILES.ca.key))) {
    const pair = newCaKeyPair();
    pair.catch(() => {}); // up.ts makes its own if this failed
    early.caKey = { certsDir: settings.certsDir, pair };
  }
  return early;
}

/** Children that were not needed after all (the configuration said otherwise, or it failed to load): stopped without a word. */
export function dropChildren(children: Child[]): Promise<void> {
  return Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          const p = c.process;
          if (p.exitCode !== null || p.signalCode !== null) return resolve();
          p.once('exit', () => resolve());
          // Still waiting for its go: it has opened nothing, SIGTERM's default ends it.
          p.kill('SIGTERM');
        }),
    ),
  ).then(() => {});
}
