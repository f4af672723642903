/** The body of `GET /healthz` on the gateway and on the engine. */
export interface HealthStatus {
  status: 'ok';
  service: 'gateway' | 'engine';
  version: string;
  uptime_s: number;
}
