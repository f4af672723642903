// Jobs by state and backend, read from the job records at each scrape. On a shared store the
// records are every gateway's, so every gateway reports the same numbers.
import { Gauge, type Registry } from 'prom-client';
import { countLiveJobs, LIVE_STATES } from '../../proxy/index.js';
import type { Store } from '../../store/index.js';

export function installJobMetrics(registry: Registry, store: Store, backends: () => readonly string[]): void {
  new Gauge({
    name: 'gatehouse_jobs',
    help: 'Jobs not yet ended, by state (pending, dispatching, queued, running) and backend, as the store has them. With several gateways over one store every gateway reports the same numbers: take max, not sum. Ended jobs: gatehouse_jobs_finished_total.',
    labelNames: ['state', 'backend'],
    registers: [registry],
    async collect() {
      this.reset();
      // A store that does not answer leaves the series out (its absence alerts) rather than fail the whole scrape.
      const rows = await countLiveJobs(store).catch(() => null);
      if (rows === null) return;
      for (const backend of backends()) for (const state of LIVE_STATES) this.set({ state, backend }, 0);
      for (const r of rows) if (backends().includes(r.backend)) this.set({ state: r.state, backend: r.backend }, r.n);
    },
  });
}
