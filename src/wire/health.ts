/** The body of `GET /healthz` on the gateway and on the engine. */
export interface HealthStatus {
  status: 'ok';
  service: 'gateway' | 'engine';
  version: string;
  uptime_s: number;
  /** The engine's: how its tasks are isolated (bubblewrap, namespaces without it, or none). */
  isolation?: string;
  /** The engine's: how many worker processes it runs at once (engine.slots, resolved). */
  slots?: number;
}
