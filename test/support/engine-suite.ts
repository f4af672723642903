// One engine process of a test file's own: its sandbox (config, data root, certificates, task uids)
// made and seeded before the engine starts, the engine started once for the file, and both gone after
// it. The suites that talk to the engine directly (below the gateway) share this set-up.
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { EngineClient, type EngineProcess, startEngineProcess } from './engine.js';
import { type Sandbox, sandbox } from './gatehouse.js';

export interface EngineSuite {
  /** The sandbox the engine runs in (valid from the file's beforeAll on). */
  readonly box: Sandbox;
  /** Its data root. */
  readonly data: string;
  /** Its certificates folder (the CA, the gateway's client certificate the engine trusts). */
  readonly certs: string;
  readonly engine: EngineProcess;
  /** A client with the gateway's certificate. */
  readonly client: EngineClient;
  /** Stops the engine and starts it again over the same sandbox; the client follows. */
  restart(): Promise<void>;
}

/**
 * Registers the file's beforeAll/afterAll: a sandbox with `config`, `seed(data)` to write the datasets
 * the file needs before the engine starts, then the engine and a client.
 */
export function engineSuite(config: Record<string, Record<string, unknown>>, seed: (data: string) => Promise<void> = async () => {}, timeoutMs = 120_000): EngineSuite {
  let box: Sandbox | undefined;
  let engine: EngineProcess | undefined;
  let client: EngineClient | undefined;
  const ready = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`the engine suite's ${what} is used before its beforeAll ran`);
    return value;
  };
  const start = async (b: Sandbox) => {
    engine = await startEngineProcess(b);
    client = new EngineClient(engine.url, join(b.dir, 'certs'));
  };
  beforeAll(async () => {
    box = sandbox(config);
    await seed(join(box.dir, 'data'));
    await start(box);
  }, timeoutMs);
  afterAll(async () => {
    await engine?.stop();
    box?.remove();
  });
  return {
    get box() {
      return ready(box, 'sandbox');
    },
    get data() {
      return join(ready(box, 'sandbox').dir, 'data');
    },
    get certs() {
      return join(ready(box, 'sandbox').dir, 'certs');
    },
    get engine() {
      return ready(engine, 'engine');
    },
    get client() {
      return ready(client, 'client');
    },
    async restart() {
      await ready(engine, 'engine').stop();
      await start(ready(box, 'sandbox'));
    },
  };
}
