// Retention: once an hour (and shortly after start), events older than audit.retention are
// archived in chunks, each its own file, until none is that old. Chunks keep each pause of the
// writer short; appends go on between them.
import type { AuditTrail } from '../audit/index.js';

const HOUR = 3600_000;

export function startRetention(trail: AuditTrail, options: { maxAgeMs: number; archiveDir: string }, log: { info(o: object, m: string): void; error(o: object, m: string): void }): { stop(): void } {
  let running: Promise<number> | null = null;
  const run = async (): Promise<number> => {
    if (options.maxAgeMs <= 0) return 0;
    let archived = 0;
    for (;;) {
      const result = await trail.archive(new Date(Date.now() - options.maxAgeMs), options.archiveDir);
      if (!result) return archived;
      archived += result.events;
      log.info({ archive: result }, `audit events #${result.from_id}..#${result.to_id} archived to ${result.file}`);
    }
  };
  const tick = () => {
    if (running) return; // one pass at a time; the next tick starts another
    running = run()
      .catch((err: Error) => {
        log.error({ err }, 'audit retention failed; the events stay in the trail');
        return 0;
      })
      .finally(() => {
        running = null;
      });
  };
  const first = options.maxAgeMs > 0 ? setTimeout(tick, 10_000) : null;
  const every = options.maxAgeMs > 0 ? setInterval(tick, HOUR) : null;
  first?.unref();
  every?.unref();
  return {
    stop() {
      if (first) clearTimeout(first);
      if (every) clearInterval(every);
    },
  };
}
