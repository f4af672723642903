// Runs one long-lived service (gateway or engine) as a process: tells a supervising parent
// where it listens (IPC), and stops cleanly on SIGINT/SIGTERM.
import { fail } from './fail.js';

export interface Service {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** What a child sends its parent over IPC once it listens. */
export interface ListeningMessage {
  type: 'listening';
  service: string;
  url: string;
  port: number;
}

export async function serve(name: 'gateway' | 'engine' | 'dev-idp', start: () => Promise<Service>): Promise<void> {
  let service: Service;
  try {
    service = await start();
  } catch (err) {
    fail(name, err);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    const forced = setTimeout(() => {
      process.stderr.write(`gatehouse ${name}: did not stop within 10 s of ${signal}; exiting\n`);
      process.exit(1);
    }, 10_000);
    forced.unref();
    service.close().then(
      () => process.exit(0),
      (err: unknown) => fail(name, err),
    );
  };
  // Our log is gone (a closed pipe): nothing we do can be seen any more, so stop.
  process.stdout.on('error', () => stop('a closed stdout'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // A supervisor that dies without a word must not leave us running with nobody to stop us.
  process.on('disconnect', () => stop('parent exit'));

  const message: ListeningMessage = { type: 'listening', service: name, url: service.url, port: service.port };
  if (process.send) process.send(message);
  else process.stderr.write(`gatehouse ${name}: listening on ${service.url}\n`);
}
