// Gatehouse's task launcher: a small process the engine starts once, which starts the engine's
// workers for it (src/compute/runners/launcher.ts is the engine's side). Node's spawn forks the
// calling process before it execs: in the engine (about 110 MB resident) each fork blocked the
// engine's one thread for 4-5 ms quiet and 12 ms under load, twice a job. This process holds a few
// MB of its own heap, its forks are short, and they block only it.
//
// It is the engine's own code, run as the engine's user with an empty environment; the task's
// launch (setpriv, prlimit, bubblewrap, the runner) is built by the engine and started as given.
// Over the IPC channel, one JSON message each:
//
//   engine -> launcher   {op: 'spawn', id, file, args, env, cwd, uid?} (uid: the job uid the task runs as)
//   launcher -> engine   {op: 'stream', id, fd: 1 | 2 | 3} with the task's end of that stream (x3),
//                        then {op: 'spawned', id, pid}; or {op: 'failed', id, message}
//                        {op: 'exit', id, code, signal} once it has exited (and was reaped here)
//
// When the engine is gone (its channel closes, or its death's signal, SIGTERM, arrives: even after a
// SIGKILL) this process kills every process of its tasks' job uids, then exits. The parent-death
// signals of the chain are not enough: each is set some time after its process was forked (setpriv's
// after the fork here, bubblewrap's after its clone), and one whose parent died before that never
// fires; and bubblewrap's sandboxed half waits forever on an eventfd for its outer half, killed
// before it signals (seen as a bwrap of a job uid, ppid 1, deaf to SIGTERM: pid 1 of its namespace).
// A job uid's processes are that job's alone (sandbox/uids.ts), wherever they were reparented.
import { spawn, spawnSync } from 'node:child_process';

/** The job uid of each task still running, by its id. */
const uids = new Map();

let ending = false;
function engineGone() {
  if (ending) return;
  ending = true;
  for (const uid of new Set(uids.values())) killUid(uid);
  process.exit(0);
}
process.on('disconnect', engineGone);
process.on('SIGTERM', engineGone);

/**
 * Every process of `uid`: `kill -KILL -1` run as that uid reaches exactly them (sandbox/uids.ts's
 * killUidProcesses, synchronous here: this process is about to exit). Only a task uid: as root, -1
 * would be every process on the machine.
 */
function killUid(uid) {
  if (!Number.isSafeInteger(uid) || uid < 1000) return;
  spawnSync('/bin/sh', ['-c', 'kill -KILL -1 2>/dev/null; sleep 0.05; kill -KILL -1 2>/dev/null; exit 0'], {
    uid,
    gid: uid,
    cwd: '/',
    env: { PATH: '/usr/bin:/bin' },
    stdio: 'ignore',
  });
}

process.on('message', (message) => {
  if (message === null || typeof message !== 'object' || message.op !== 'spawn') return;
  const { id, file, args, env, cwd, uid } = message;
  if (ending) return;
  let child;
  try {
    // Its own process group, so the engine's kill reaches whatever the task started too.
    child = spawn(file, args, { env, cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
  } catch (err) {
    process.send({ op: 'failed', id, message: String(err?.message ?? err) });
    return;
  }
  if (child.pid === undefined) {
    child.once('error', (err) => process.send({ op: 'failed', id, message: String(err?.message ?? err) }));
    for (const s of child.stdio) s?.destroy();
    return;
  }
  child.on('error', () => {}); // a failed kill; the engine kills by process group itself
  if (uid !== undefined) uids.set(id, uid);
  const streams = [child.stdio[1], child.stdio[2], child.stdio[3]];
  // Node starts reading a child's pipes at once. They are handed over one at a time (each waits for
  // the engine's acknowledgement), and what this process read meanwhile would be lost with it: so
  // nothing is read here. The engine's socket reads from where the pipe stands.
  for (const s of streams) {
    s._handle.reading = false;
    s._handle.readStop();
  }
  streams.forEach((s, i) => process.send({ op: 'stream', id, fd: i + 1 }, s));
  process.send({ op: 'spawned', id, pid: child.pid });
  child.on('exit', (code, signal) => {
    uids.delete(id);
    process.send({ op: 'exit', id, code, signal });
  });
});
