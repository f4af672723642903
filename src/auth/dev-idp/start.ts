// DEVELOPMENT ONLY: starts the development OIDC provider on http://127.0.0.1:<dev_idp.port>. Its issuer
// is the URL it actually listens on (port 0 picks one). Plain HTTP, so only ever on a loopback address.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type Provider from 'oidc-provider';
import type { Config } from '../../config/index.js';
import { isLoopbackHost, loggerOptions } from '../../http/index.js';
import { handleInteraction, isInteractionPath } from './interactions.js';
import { errorPage, PAGE_HEADERS } from './pages.js';
import { createDevProvider, DEV_CLIENT_ID } from './provider.js';
import { readDevUsers } from './users.js';

export interface DevIdp {
  /** The issuer, e.g. http://127.0.0.1:8445 (no trailing slash). */
  url: string;
  port: number;
  clientId: string;
  close(): Promise<void>;
}

export async function startDevIdp(config: Config, options: { host?: string } = {}): Promise<DevIdp> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopbackHost(host)) throw new Error(`the development OIDC provider listens on a loopback address only (127.0.0.1, ::1, localhost), not ${host}`);
  const users = readDevUsers(config.dev_idp.users_file);

  // loggerOptions knows the gateway and the engine; the provider logs the same JSON lines under its own name.
  const { stream, ...logOptions } = loggerOptions('gateway', config.log.level);
  const log = pino({ ...logOptions, base: { service: 'dev-idp', pid: process.pid } }, stream);

  let provider: Provider | undefined;
  let handle: ReturnType<Provider['callback']> | undefined;
  const server = createServer((req, res) => {
    const started = process.hrtime.bigint();
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    // Paths only: query strings here carry codes, states and user codes.
    res.on('finish', () =>
      log.info({ method: req.method, path, status: res.statusCode, duration_ms: Number((process.hrtime.bigint() - started) / 10_000n) / 100 }, 'request'),
    );
    if (!provider || !handle) {
      res.writeHead(503, PAGE_HEADERS).end(errorPage('starting'));
      return;
    }
    if (isInteractionPath(path)) {
      handleInteraction(provider, users, log, req, res).catch((err: unknown) => {
        log.error({ err: { message: (err as Error).message, name: (err as Error).name } }, 'dev-idp: interaction failed');
        if (!res.headersSent) res.writeHead(500, PAGE_HEADERS).end(errorPage('internal error'));
      });
      return;
    }
    handle(req, res);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.dev_idp.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  try {
    provider = await createDevProvider({ issuer: url, users, publicUrl: config.server.public_url });
  } catch (err) {
    await new Promise((resolve) => server.close(resolve));
    throw err;
  }
  provider.on('server_error', (_ctx: unknown, err: Error) => log.error({ err: { message: err.message, name: err.name } }, 'dev-idp: provider error'));
  handle = provider.callback();

  log.warn(
    { url, client_id: DEV_CLIENT_ID, users: users.map((u) => u.username) },
    'DEVELOPMENT ONLY: development OIDC provider with demo users is listening; never use it for real sign-ins',
  );
  return {
    url,
    port,
    clientId: DEV_CLIENT_ID,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
