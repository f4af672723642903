// review39, as a person whose uid the engine's task range covers without the engine knowing: the
// range check at start-up (uid-range.ts refuseUsedIds) reads /etc/passwd, /etc/group and the
// subordinate ids only, so a directory's accounts (LDAP, SSSD, whose id mapping starts at 200000 by
// default, the default range's first uid) pass it. The start's sweep (uid-leftovers.ts) then killed
// every process of such a uid as a dead engine's leftover: each engine start ended those people's
// sessions on the host. Now a uid the name service names is not killed, and is withheld from jobs.
// A directory cannot be stood up here; the name service answers for /etc/passwd's accounts the same
// way, so the test takes a local account with no process of its own (the range is the test's, not an
// engine's, so the start-up check does not come into it).
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { killRangeLeftovers } from '../../src/compute/sandbox/index.js';
import { liveProcesses } from '../support/uid-processes.js';
import { until } from '../support/until.js';

const ROOT = process.getuid?.() === 0;

/** A local account's uid (not nobody) that runs nothing now, so the test ends nothing of anyone's. */
async function idleAccount(): Promise<number | undefined> {
  const uids = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((l) => Number(l.split(':')[2]))
    .filter((u) => Number.isInteger(u) && u >= 1000 && u < 65534);
  for (const uid of uids) if ((await liveProcesses(uid)).length === 0) return uid;
  return undefined;
}

describe.skipIf(!ROOT)("the start's sweep of the task uid range and a person's account in it", () => {
  let child: ChildProcess | undefined;

  afterAll(() => {
    child?.kill('SIGKILL');
  });

  it('kills nothing of the account and withholds its uid', async () => {
    const uid = await idleAccount();
    expect(uid, 'a local account with no process (cloudsdk, slurm on this machine)').toBeDefined();
    child = spawn('/usr/bin/setpriv', ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', '--no-new-privs', '--', '/bin/sh', '-c', 'echo ready; exec sleep 600'], {
      detached: true,
      cwd: '/',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    await until(() => out.includes('ready'), 30_000, "the person's process ready");
    const range = { first: uid!, last: uid! };
    expect(await killRangeLeftovers(range)).toEqual([uid]);
    expect(child.exitCode === null && child.signalCode === null).toBe(true);
    expect((await liveProcesses(uid!)).map((p) => p.pid)).toEqual([child.pid]);
  }, 60_000);
});
