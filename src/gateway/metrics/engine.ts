// The engine's metrics, relayed: its /metrics answers only to the gateway's own certificate, so at
// each scrape the gateway asks every backend that has metrics and appends their gatehouse_engine_*
// families (slots, busy slots, queue depth, jobs by state, partitions done/retried/failed and their
// durations) to its own. Prometheus then needs to reach only the gateway.
import { Gauge, type Registry } from 'prom-client';
import type { ComputeBackend } from '../../proxy/index.js';

const RELAYED = /^gatehouse_engine_[a-zA-Z0-9_]*/;
const NOTE = ' Relayed from the engine; every gateway in front of it relays the same values.';

/** Returns the text to append to /metrics: each backend's relayed families. */
export function installEngineRelay(registry: Registry, backends: readonly ComputeBackend[]): () => Promise<string> {
  const relaying = backends.filter((b) => b.metrics !== undefined);
  const up = new Gauge({ name: 'gatehouse_engine_scrape_ok', help: '1 when the last relay of the backend\'s own metrics worked, else 0 (its gatehouse_engine_* series are then absent).', labelNames: ['backend'], registers: [registry] });
  return async () => {
    const texts = await Promise.all(
      relaying.map(async (b) => {
        try {
          const text = relayed(await b.metrics!());
          up.set({ backend: b.name }, 1);
          return text;
        } catch {
          up.set({ backend: b.name }, 0);
          return '';
        }
      }),
    );
    return texts.join('');
  };
}

/** Only the gatehouse_engine_* families of a Prometheus text (not the engine's process metrics), with a note in their help. */
export function relayed(text: string): string {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const name = line.startsWith('# HELP ') || line.startsWith('# TYPE ') ? line.slice(7) : line;
    if (!RELAYED.test(name)) continue;
    out.push(line.startsWith('# HELP ') ? `${line}${NOTE}` : line);
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}
