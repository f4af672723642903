// The gateway's mTLS connection to the bundled engine: our CA, our client certificate, keep-alive.
import { Agent, request } from 'node:https';
import { Value } from 'typebox/value';
import { httpsUrl } from '../http/index.js';
import { type DatasetInfo, type DatasetList, DatasetListSchema, GatehouseError, type HealthStatus, type TlsMaterial } from '../wire/index.js';

export interface EngineClient {
  readonly url: string;
  health(timeoutMs?: number): Promise<HealthStatus>;
  /** Every dataset of the engine's catalog, sorted by name; policy filters them on the gateway. */
  datasets(timeoutMs?: number): Promise<DatasetInfo[]>;
  close(): void;
}

export function engineClient(options: { host: string; port: number; tls: TlsMaterial }): EngineClient {
  const { host, port, tls } = options;
  const agent = new Agent({ keepAlive: true, maxSockets: 64, ca: tls.ca, cert: tls.cert, key: tls.key });
  const url = httpsUrl(host, port);

  function getJson<T>(path: string, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const req = request(`${url}${path}`, { agent, method: 'GET', timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) {
            reject(new GatehouseError('not_ready', `engine answered ${res.statusCode} on ${path}: ${text.slice(0, 200)}`));
            return;
          }
          try {
            resolve(JSON.parse(text) as T);
          } catch {
            reject(new GatehouseError('not_ready', `engine sent invalid JSON on ${path}`));
          }
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new GatehouseError('not_ready', `engine did not answer ${path} within ${timeoutMs} ms`)));
      req.on('error', (err) => reject(err instanceof GatehouseError ? err : new GatehouseError('not_ready', `engine unreachable at ${url}: ${err.message}`)));
      req.end();
    });
  }

  return {
    url,
    health: (timeoutMs = 2000) => getJson<HealthStatus>('/healthz', timeoutMs),
    datasets: async (timeoutMs = 10_000) => {
      const body = await getJson<DatasetList>('/datasets', timeoutMs);
      // Policy decisions rest on owner and labels: a body of another shape is refused, not guessed at.
      if (!Value.Check(DatasetListSchema, body)) throw new GatehouseError('not_ready', 'engine sent an unexpected body on /datasets');
      return body.datasets;
    },
    close: () => agent.destroy(),
  };
}
