// Starts the engine process on its mTLS listener.
import { join } from 'node:path';
import { type Config, durationSeconds } from '../config/index.js';
import { httpsUrl } from '../http/index.js';
import { readTlsMaterial } from '../wire/index.js';
import { buildEngine } from './server.js';

export async function startEngine(config: Config): Promise<{ url: string; port: number; close(): Promise<void> }> {
  const app = await buildEngine({
    tls: readTlsMaterial(config.certs.dir, 'engine'),
    logLevel: config.log.level,
    dataRoot: config.data.root,
    stateDir: join(config.state.dir, 'engine'),
    slots: config.engine.slots,
    sandbox: config.engine.sandbox,
    taskUids: config.engine.task_uids,
    python: config.engine.python,
    spareSandboxes: config.engine.spare_sandboxes,
    maxOutputMb: config.engine.max_output_mb,
    logMaxKb: config.engine.log_max_kb,
    uploadIdleMs: durationSeconds(config.data.upload_idle_timeout) * 1000,
  });
  await app.listen({ host: config.engine.host, port: config.engine.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.engine.port;
  app.log.info({ port, data_root: config.data.root }, 'engine listening (mTLS, gateway only)');
  return { url: httpsUrl(config.engine.host, port), port, close: () => app.close() };
}
