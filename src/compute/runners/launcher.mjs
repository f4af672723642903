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
//   engine -> launcher   {op: 'spawn', id, file, args, env, cwd}
//   launcher -> engine   {op: 'stream', id, fd: 1 | 2 | 3} with the task's end of that stream (x3),
//                        then {op: 'spawned', id, pid}; or {op: 'failed', id, message}
//                        {op: 'exit', id, code, signal} once it has exited (and was reaped here)
//
// When the engine is gone (its channel closes, even after a SIGKILL) this process exits, and every
// task with it: their launches start with setpriv --pdeathsig KILL, and this process is their parent.
import { spawn } from 'node:child_process';

process.on('disconnect', () => process.exit(0));

process.on('message', (message) => {
  if (message === null || typeof message !== 'object' || message.op !== 'spawn') return;
  const { id, file, args, env, cwd } = message;
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
  child.on('exit', (code, signal) => process.send({ op: 'exit', id, code, signal }));
});
