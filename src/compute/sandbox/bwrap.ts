// Bubblewrap: the read-only view of the system every sandbox gets, the namespaces every task gets,
// and the start-up probe that runs it (an installed bwrap still fails where user namespaces are off).
// Apart because the probe and every task launch must agree on these arguments.
import { lstatSync, readlinkSync } from 'node:fs';
import { type Ran, run } from './system-tools.js';

let systemArgs: string[] | undefined;

/**
 * The read-only view of the system every sandbox gets: /usr, the top-level links a merged-/usr
 * system has (/bin -> usr/bin ...) or the real folders an older one has, and the few /etc files
 * programs need to load libraries and check TLS peers. Nothing else of the host is visible.
 */
export function bwrapSystemArgs(): string[] {
  if (!systemArgs) {
    const args = ['--ro-bind', '/usr', '/usr'];
    for (const name of ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
      const path = `/${name}`;
      let st: ReturnType<typeof lstatSync>;
      try {
        st = lstatSync(path);
      } catch {
        continue;
      }
      if (st.isSymbolicLink()) args.push('--symlink', readlinkSync(path), path);
      else if (st.isDirectory()) args.push('--ro-bind-try', path, path);
    }
    for (const path of ['/etc/ld.so.cache', '/etc/alternatives', '/etc/ssl']) args.push('--ro-bind-try', path, path);
    systemArgs = args;
  }
  return [...systemArgs];
}

/** The namespaces every task gets (and the probe tries): all of them, and no nested user namespace. */
export const BWRAP_NAMESPACES = ['--unshare-all', '--unshare-user', '--disable-userns', '--die-with-parent', '--new-session'];

const probes = new Map<string, Promise<Ran>>();

/** Runs `bwrap ... /usr/bin/true` as the uid tasks will have; cached per (bwrap, uid). */
export function probeBwrap(tools: { bwrap: string; setpriv: string }, uid: number | null): Promise<Ran> {
  const key = `${tools.bwrap}\0${uid ?? 'self'}`;
  let probe = probes.get(key);
  if (!probe) {
    probe = (async () => {
      const sandbox = [tools.bwrap, ...BWRAP_NAMESPACES, ...bwrapSystemArgs(), '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--remount-ro', '/', '--', '/usr/bin/true'];
      if (uid === null) return run(sandbox[0]!, sandbox.slice(1));
      return run(tools.setpriv, ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', '--', ...sandbox]);
    })();
    probes.set(key, probe);
  }
  return probe;
}
