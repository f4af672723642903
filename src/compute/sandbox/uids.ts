// Task uids: which job holds which (one uid per job, all its tasks share it, so jobs cannot read or
// signal one another), and ending everything a uid runs. The pool is bookkeeping only, persisted by
// the engine with its job state and restored after a restart so a running job's files keep their owner.
// A uid is given only while no process of it from before runs: the engine kills what a dead engine
// left in the range as it opens (uid-leftovers.ts) and withholds a uid it could not clear; a job's
// end kills its uid's processes (or its pid namespace took them) before the uid is released.
import { spawn } from 'node:child_process';
import { SandboxError } from './sandbox-error.js';
import type { UidRange } from './uid-range.js';

export class UidPool {
  private readonly byJob = new Map<string, number>();
  private readonly byUid = new Map<number, string>();
  /** Uids a process from before still holds (uid-leftovers.ts): given to no job, restored to none. */
  private readonly withheld = new Set<number>();
  /** Where the next spare's uid is looked for (take): going down from the top of the range. */
  private spareNext: number;

  constructor(private readonly range: UidRange) {
    if (!Number.isSafeInteger(range.first) || !Number.isSafeInteger(range.last) || range.first > range.last) {
      throw new SandboxError('invalid_config', `a uid range needs first <= last, got ${range.first}-${range.last}`);
    }
    this.spareNext = range.last;
  }

  /**
   * The lowest free uid for `jobId` (the one it already holds, if any). With `spare` (a spare
   * sandbox's, jobs/spares.ts) the next free one going down from the last spare's, round the range: not
   * the uid a job just gave back, so a job's uid is held by nothing for a while after its end.
   */
  take(jobId: string, spare = false): number {
    const held = this.byJob.get(jobId);
    if (held !== undefined) return held;
    const size = this.range.last - this.range.first + 1;
    for (let i = 0; i < size; i++) {
      const uid = spare ? this.range.first + ((((this.spareNext - this.range.first - i) % size) + size) % size) : this.range.first + i;
      if (!this.byUid.has(uid) && !this.withheld.has(uid)) {
        if (spare) this.spareNext = uid - 1;
        this.byJob.set(jobId, uid);
        this.byUid.set(uid, jobId);
        return uid;
      }
    }
    throw new SandboxError('uids_exhausted', `all ${size} task uids (${this.range.first}-${this.range.last}) are held by running jobs${this.withheld.size > 0 ? ` or withheld (${this.withheld.size})` : ''}; widen engine.task_uids or wait`);
  }

  /** Keeps `uid` from every job for the pool's life: a process no kill could end still runs as it. */
  withhold(uid: number): void {
    if (uid >= this.range.first && uid <= this.range.last) this.withheld.add(uid);
  }

  /** Gives `jobId` back the uid it had before a restart; refuses one outside the range or held by another job. */
  restore(jobId: string, uid: number): void {
    if (!Number.isInteger(uid) || uid < this.range.first || uid > this.range.last) {
      throw new SandboxError('invalid_config', `job ${jobId}: uid ${uid} is outside engine.task_uids ${this.range.first}-${this.range.last}`);
    }
    if (this.withheld.has(uid)) throw new SandboxError('invalid_config', `job ${jobId}: uid ${uid} is withheld: a process a previous engine left still runs as it`);
    const holder = this.byUid.get(uid);
    if (holder !== undefined && holder !== jobId) throw new SandboxError('invalid_config', `job ${jobId}: uid ${uid} is already held by job ${holder}`);
    const held = this.byJob.get(jobId);
    if (held !== undefined && held !== uid) throw new SandboxError('invalid_config', `job ${jobId} already holds uid ${held}, not ${uid}`);
    this.byJob.set(jobId, uid);
    this.byUid.set(uid, jobId);
  }

  /**
   * Frees `jobId`'s uid for the next job. Call it after `removeJobArea` (which kills whatever the
   * job left running under that uid), or the next job would share a uid with those leftovers.
   */
  release(jobId: string): void {
    const uid = this.byJob.get(jobId);
    if (uid === undefined) return;
    this.byJob.delete(jobId);
    this.byUid.delete(uid);
  }

  /**
   * Passes `from`'s uid to `to` (a spare sandbox's uid to the job that takes it, jobs/spares.ts).
   * `to` must hold none.
   */
  transfer(from: string, to: string): number {
    const uid = this.byJob.get(from);
    if (uid === undefined) throw new SandboxError('invalid_config', `${from} holds no uid to pass on`);
    if (this.byJob.has(to)) throw new SandboxError('invalid_config', `job ${to} already holds uid ${this.byJob.get(to)}`);
    this.byJob.delete(from);
    this.byJob.set(to, uid);
    this.byUid.set(uid, to);
    return uid;
  }

  /** Uids no job holds (and none withheld). */
  get free(): number {
    return this.range.last - this.range.first + 1 - this.byJob.size - this.withheld.size;
  }

  uidOf(jobId: string): number | undefined {
    return this.byJob.get(jobId);
  }

  get inUse(): number {
    return this.byJob.size;
  }
}

/**
 * Kills every process running as `uid`, wherever it is: tasks that left their process group
 * (setsid, double fork) escape `killTaskGroup` and, in plain mode, the parent-death signal. A
 * process signalling -1 reaches exactly the processes of its own uid, so this runs `kill -KILL -1`
 * as that uid. Twice, for a child forked while the first signal was being delivered.
 */
export function killUidProcesses(uid: number): Promise<void> {
  // As root, kill -1 would end every process on the machine: only task uids may come here.
  if (!Number.isInteger(uid) || uid < 1000) throw new SandboxError('invalid_config', `refusing to kill every process of uid ${uid}: not a task uid`);
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', 'kill -KILL -1 2>/dev/null; sleep 0.05; kill -KILL -1 2>/dev/null; exit 0'], {
      uid,
      gid: uid,
      cwd: '/',
      env: { PATH: '/usr/bin:/bin' },
      stdio: 'ignore',
    });
    child.on('error', reject);
    child.on('close', () => resolve());
  });
}
