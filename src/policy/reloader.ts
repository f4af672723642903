// Keeps the serving policy current: a change to policies/ is noticed (a directory watch, and a
// once-a-second look at the files for the cases a watch misses, such as a replaced directory),
// debounced, built beside the serving version and swapped in only if it is entirely valid. A bad
// version leaves the old one serving. Reloads run one at a time; a change during one runs next.
import { watch, type FSWatcher } from 'node:fs';
import type { AuditActor } from '../audit/index.js';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileHashes, lintFiles, MODEL_FILE, POLICY_FILE, policyVersion, readPolicyFiles, testProblems } from './load.js';
import { TESTS_FILE } from './policy-tests.js';
import { formatProblem, PolicyError, type PolicyProblem } from './problems.js';
import { diffPolicies, type PolicyDiff } from './diff.js';
import type { PolicySnapshot } from './snapshot.js';

export type ReloadTrigger = { by: 'start' | 'file-change' } | { by: 'api'; user: string; actor: AuditActor; request_id: string };

export interface ReloadOutcome {
  outcome: 'loaded' | 'unchanged' | 'failed';
  /** The version serving after this attempt. */
  version: string;
  /** The version that served before it. */
  previous_version: string | null;
  /** The version of the files that were tried (for a failure: the one refused). */
  attempted_version: string | null;
  trigger: ReloadTrigger;
  at: string;
  duration_ms: number;
  /** Errors for a failure; warnings for a success. */
  problems: PolicyProblem[];
  /** SHA-256 of each file as read for this attempt (tests.yaml null when there is none); null when unread. */
  files: Record<string, string | null> | null;
}

/** The access diff of the latest version put in service by a reload, against the one it replaced. */
export interface ReloadDiff extends PolicyDiff {
  /** When the new version was put in service, and what triggered it. */
  at: string;
  trigger: ReloadTrigger['by'];
  user: string | null;
}

export interface ReloaderOptions {
  watch?: boolean;
  debounceMs?: number;
  pollMs?: number;
  /** Rules per slice of a load, between which the event loop serves requests. */
  yieldEvery?: number;
  /** Run tests.yaml on every load and refuse a version that fails it (policies.require_tests). Default true. */
  requireTests?: boolean;
  log?: { info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void };
}

export class PolicyReloader {
  private snapshot: PolicySnapshot;
  private last: ReloadOutcome;
  private watcher: FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private running: Promise<ReloadOutcome> | undefined;
  private readonly queue: { trigger: ReloadTrigger; waiters: { resolve: (o: ReloadOutcome) => void; reject: (e: unknown) => void }[] }[] = [];
  private signature = '';
  /** SHA-256 of the tests.yaml the serving version last passed (null: none was read). */
  private testsHash: string | null = null;
  private closed = false;
  readonly counts = { loaded: 0, unchanged: 0, failed: 0 };
  private readonly listeners: ((outcome: ReloadOutcome) => void)[] = [];
  private auditor: ((outcome: ReloadOutcome, next: PolicySnapshot | null) => Promise<void>) | undefined;
  /** The latest reload's diff (null: no reload since start), computed once on the first ask. */
  private diff: (() => Promise<ReloadDiff>) | null = null;

  private constructor(
    readonly dir: string,
    snapshot: PolicySnapshot,
    private readonly options: ReloaderOptions,
  ) {
    this.snapshot = snapshot;
    this.last = { outcome: 'loaded', version: snapshot.version, previous_version: null, attempted_version: snapshot.version, trigger: { by: 'start' }, at: snapshot.loadedAt.toISOString(), duration_ms: 0, problems: [...snapshot.warnings], files: null };
  }

  /** Loads the folder (a bad policy stops start-up with every problem) and starts watching it. */
  static async start(dir: string, options: ReloaderOptions = {}): Promise<PolicyReloader> {
    const files = await readPolicyFiles(dir);
    // tests.yaml too: a version that fails its own tests does not start serving either.
    const result = await lintFiles(dir, files, { tests: options.requireTests ?? true });
    if (!result.snapshot) throw new PolicyError(result.problems);
    const reloader = new PolicyReloader(dir, result.snapshot, options);
    reloader.last.files = fileHashes(files);
    reloader.testsHash = reloader.last.files[TESTS_FILE] ?? null;
    reloader.signature = await reloader.fileSignature();
    if (options.watch ?? true) reloader.watchFiles();
    return reloader;
  }

  /** The version serving now. Read it once per decision. */
  current(): PolicySnapshot {
    return this.snapshot;
  }

  lastOutcome(): ReloadOutcome {
    return this.last;
  }

  /**
   * Reloads now, or after the reloads already waiting; resolves with this attempt's outcome. A file
   * change joins any waiting reload; an admin's request is never merged into another admin's, so
   * each is audited as theirs.
   */
  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    if (!this.running) return this.run(trigger);
    return new Promise((resolve, reject) => {
      const last = this.queue[this.queue.length - 1];
      if (last && (trigger.by !== 'api' || last.trigger.by !== 'api')) {
        if (trigger.by === 'api') last.trigger = trigger;
        last.waiters.push({ resolve, reject });
      } else this.queue.push({ trigger, waiters: [{ resolve, reject }] });
    });
  }

  /**
   * Called before a new version replaces the old one, and after a refused one: the gateway audits
   * here. If it throws for a good version, the swap does not happen (nothing changes unaudited).
   */
  attach(hooks: { auditor: (outcome: ReloadOutcome, next: PolicySnapshot | null) => Promise<void>; log: NonNullable<ReloaderOptions['log']> }): void {
    this.auditor = hooks.auditor;
    this.options.log = hooks.log;
  }

  /** Who gained and lost what with the latest version a reload put in service; null before any reload. */
  lastDiff(): Promise<ReloadDiff> | null {
    return this.diff?.() ?? null;
  }

  /** Called after every recorded outcome (metrics). */
  onOutcome(listener: (outcome: ReloadOutcome) => void): void {
    this.listeners.push(listener);
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    clearInterval(this.poller);
    clearTimeout(this.debounce);
  }

  private run(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    this.running = this.attempt(trigger).finally(() => {
      this.running = undefined;
      const next = this.queue.shift();
      // Every waiter hears the outcome or the failure (an audit outage must not crash the process).
      if (next)
        this.run(next.trigger).then(
          (o) => {
            for (const w of next.waiters) w.resolve(o);
          },
          (e: unknown) => {
            for (const w of next.waiters) w.reject(e);
          },
        );
    });
    return this.running;
  }

  private async attempt(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    const started = performance.now();
    const previous = this.snapshot;
    const base = { previous_version: previous.version, trigger, at: new Date().toISOString() };
    let hashes: ReloadOutcome['files'] = null;
    const done = (o: Omit<ReloadOutcome, 'duration_ms' | 'files' | keyof typeof base>): ReloadOutcome => ({ ...base, ...o, files: hashes, duration_ms: Math.round(performance.now() - started) });
    let outcome: ReloadOutcome;
    try {
      const files = await this.readSettled();
      hashes = fileHashes(files);
      const version = policyVersion(files);
      // The version is model.conf and policy.csv; tests.yaml changed alone is run against the serving
      // version: a failing (or removed) test is refused and shown, though nothing new would serve.
      const testsChanged = (this.options.requireTests ?? true) && hashes[TESTS_FILE] !== this.testsHash;
      const testFailures = version === previous.version && testsChanged ? testProblems(previous, files.tests ?? null) : [];
      if (testFailures.length > 0) {
        outcome = done({ outcome: 'failed', version: previous.version, attempted_version: version, problems: testFailures });
      } else if (version === previous.version) {
        this.testsHash = hashes[TESTS_FILE] ?? null;
        outcome = done({ outcome: 'unchanged', version, attempted_version: version, problems: [...previous.warnings] });
      } else {
        const result = await lintFiles(this.dir, files, { yieldEvery: this.options.yieldEvery ?? 5_000, tests: this.options.requireTests ?? true });
        if (!result.snapshot) {
          outcome = done({ outcome: 'failed', version: previous.version, attempted_version: version, problems: result.problems.filter((p) => p.severity === 'error') });
        } else {
          outcome = done({ outcome: 'loaded', version, attempted_version: version, problems: result.problems });
          try {
            await this.auditor?.(outcome, result.snapshot);
          } catch (err) {
            // Not audited, not applied: the old version keeps serving.
            const refused = done({ outcome: 'failed', version: previous.version, attempted_version: version, problems: [{ severity: 'error', file: POLICY_FILE, line: null, message: `not applied: ${(err as Error).message}` }] });
            await this.record(refused, false);
            throw err;
          }
          this.snapshot = result.snapshot;
          this.testsHash = hashes[TESTS_FILE] ?? null;
          // The access diff of this reload: the two versions are at hand only here, so they are kept
          // (the old one until the next reload) and compared on the first ask. Not now: on a large
          // policy the comparison takes long, and reloads must not hold decisions up for it.
          const next = result.snapshot;
          const meta = { at: outcome.at, trigger: trigger.by, user: trigger.by === 'api' ? trigger.user : null };
          let memo: Promise<ReloadDiff> | undefined;
          this.diff = () => (memo ??= new Promise<ReloadDiff>((resolve) => resolve({ ...diffPolicies(previous, next), ...meta })));
          await this.record(outcome, false);
          return outcome;
        }
      }
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      outcome = done({ outcome: 'failed', version: previous.version, attempted_version: null, problems: err.problems });
    }
    await this.record(outcome, true);
    return outcome;
  }

  /** Remembers, counts and logs an outcome; `notify` also hands it to onOutcome (for failures and no-ops). */
  private async record(outcome: ReloadOutcome, notify: boolean): Promise<void> {
    this.counts[outcome.outcome]++;
    for (const l of this.listeners) l(outcome);
    const log = this.options.log;
    const problems = outcome.problems.map(formatProblem);
    if (outcome.outcome === 'failed') {
      this.last = outcome;
      log?.error({ policy_dir: this.dir, attempted_version: outcome.attempted_version, serving_version: outcome.version, trigger: outcome.trigger, problems }, 'policy reload refused; the previous version keeps serving');
    } else if (outcome.outcome === 'unchanged') {
      // The files are back to the serving version: a refusal before this no longer stands.
      if (this.last.outcome === 'failed') this.last = outcome;
    } else {
      this.last = outcome;
      log?.info({ version: outcome.version, previous_version: outcome.previous_version, trigger: outcome.trigger, rules: this.snapshot.rules.length, duration_ms: outcome.duration_ms, warnings: problems }, 'policy reloaded');
    }
    // A no-op from the watcher is not an event; one an admin asked for is.
    if (notify && (outcome.outcome !== 'unchanged' || outcome.trigger.by === 'api')) {
      try {
        await this.auditor?.(outcome, null);
      } catch (err) {
        log?.error({ err }, 'could not audit a policy reload outcome');
        if (outcome.trigger.by === 'api') throw err; // the admin's request fails closed
      }
    }
  }

  private watchFiles(): void {
    const schedule = () => {
      if (this.closed) return;
      clearTimeout(this.debounce);
      // Editors and git write a file in several steps: wait for them to finish.
      this.debounce = setTimeout(() => void this.reload({ by: 'file-change' }).catch((err) => this.options.log?.error({ err }, 'policy reload crashed')), this.options.debounceMs ?? 150);
    };
    try {
      this.watcher = watch(this.dir, { persistent: false }, (_event, name) => {
        if (!name || name === MODEL_FILE || name === POLICY_FILE || name === TESTS_FILE) schedule();
      });
      this.watcher.on('error', () => undefined); // the poll below still notices changes
    } catch {
      // Some filesystems cannot be watched; the poll covers them.
    }
    this.poller = setInterval(() => {
      void this.fileSignature().then((sig) => {
        if (sig !== this.signature && !this.running) {
          this.signature = sig;
          schedule();
        }
      });
    }, this.options.pollMs ?? 1000);
    this.poller.unref();
  }

  /** Reads both files once they hold still: a file still being written is read again, not served. */
  private async readSettled(): Promise<Awaited<ReturnType<typeof readPolicyFiles>>> {
    for (let tries = 0; ; tries++) {
      const before = await this.fileSignature();
      const files = await readPolicyFiles(this.dir);
      const after = await this.fileSignature();
      this.signature = after;
      if (before === after || tries >= 20) return files;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** What the poll compares: size, modification time and inode of the three files. */
  private async fileSignature(): Promise<string> {
    const parts = await Promise.all(
      [MODEL_FILE, POLICY_FILE, TESTS_FILE].map((name) =>
        stat(join(this.dir, name)).then(
          (s) => `${s.size}:${s.mtimeMs}:${s.ino}`,
          () => 'missing',
        ),
      ),
    );
    return parts.join('|');
  }
}
