// The gateway's calls to the engine share a pool of kept-alive connections. A download is paced by
// its client: one who stops reading keeps its connection busy. So downloads, however small the range,
// never ride the pool (64 stalled ones would stall every submit, status and cancel for everyone),
// and a call waiting for a pooled connection still gives up at its timeout.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureCertificates } from '../../src/auth/index.js';
import { type EngineClient, engineClient } from '../../src/proxy/engine-client.js';
import { readTlsMaterial } from '../../src/wire/index.js';

const BODY = Buffer.alloc(1024 * 1024 - 1, 97); // under the pool's 1 MiB bound for short reads
const ETAG = 'a'.repeat(64);
let dir: string;
let server: Server;
let client: EngineClient;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gh-engine-pool-'));
  const certs = join(dir, 'certs');
  ensureCertificates({ dir: certs, gatewayHosts: ['127.0.0.1'], engineHosts: ['127.0.0.1'] });
  // A stand-in engine with the real mTLS: partitions of just under 1 MiB, and a health answer.
  server = createServer({ ...readTlsMaterial(certs, 'engine'), requestCert: true, rejectUnauthorized: true }, (req, res) => {
    if (req.url!.startsWith('/dataset/partition')) {
      res.writeHead(200, { 'content-length': BODY.length });
      res.end(BODY);
    } else {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ok', version: 'x', slots: 1 }));
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  client = engineClient({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, tls: readTlsMaterial(certs, 'gatewayClient') });
});

afterAll(() => {
  client?.close();
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the pool of connections to the engine', () => {
  it('is not held by 64 downloads nobody reads: other calls still answer', async () => {
    const held = await Promise.all(Array.from({ length: 64 }, () => client.partition('d', 0, ETAG, 0, BODY.length - 1)));
    try {
      await expect(client.health(10_000)).resolves.toMatchObject({ status: 'ok' });
    } finally {
      for (const s of held) s.destroy();
    }
  });

  it('a call waiting for a pooled connection gives up at its timeout instead of waiting for one to free', async () => {
    // Short reads (a preview's windows) are pooled: 64 left unread fill the pool.
    const held = await Promise.all(Array.from({ length: 64 }, () => client.partition('d', 0, ETAG, 0, BODY.length - 1, { short: true })));
    try {
      await expect(client.health(300)).rejects.toThrow(/did not answer GET \/healthz within 300 ms/);
    } finally {
      for (const s of held) s.destroy();
    }
  });
});
