// Starts the engine process on its mTLS listener.
import type { Config } from '../config/index.js';
import { httpsUrl } from '../http/index.js';
import { readTlsMaterial } from '../wire/index.js';
import { buildEngine } from './server.js';

export async function startEngine(config: Config): Promise<{ url: string; port: number; close(): Promise<void> }> {
  const app = buildEngine({ tls: readTlsMaterial(config.certs.dir, 'engine'), logLevel: config.log.level, dataRoot: config.data.root });
  await app.listen({ host: config.engine.host, port: config.engine.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.engine.port;
  app.log.info({ port, data_root: config.data.root }, 'engine listening (mTLS, gateway only)');
  return { url: httpsUrl(config.engine.host, port), port, close: () => app.close() };
}
