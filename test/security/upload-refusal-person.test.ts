// The person's side of security/upload-refusal-race: an upload the gateway refuses over the person's
// allowance, sent with `Connection: close` (Node's agent: false, curl's -H 'Connection: close'), is answered
// with its 413, every time: never a reset the client sees instead. Many uploads against the real stack.
// Before (src/http/linger.ts), about 1 in 100 declared ones got EPIPE under load. As the attacker: the
// rest read and dropped after a refusal is bounded, so a client that never stops sending is cut.
import { request } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from '../support/stack.js';

const CHUNK = Buffer.alloc(64 * 1024, 'x\n');
const BYTES = 2 + 128 * CHUNK.length;

let stack: Stack;
let gina = '';

beforeAll(async () => {
  stack = await Stack.start({ users: { gina: ['analysts'] }, policyLines: ['p2, user:gina, max_storage_mb, 1'] });
  gina = await stack.login('gina');
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

/** One 8 MiB upload in 64 KiB pieces on a connection the client closes: its status, or the error the client saw. */
function upload(declared: boolean): Promise<string> {
  return new Promise((resolve) => {
    const headers: Record<string, string | number> = { authorization: `Bearer ${gina}`, 'content-type': 'text/csv', connection: 'close' };
    if (declared) headers['content-length'] = BYTES;
    const req = request(`${stack.url}/v1/datasets/scratch/gina-race/partitions/0`, { method: 'PUT', ca: stack.ca, agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(`${res.statusCode} ${(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { error?: string }).error}`));
      res.on('error', (err: NodeJS.ErrnoException) => resolve(`response ${err.code ?? err.message}`));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(`request ${err.code ?? err.message}`));
    const pieces = [Buffer.from('x\n'), ...Array(128).fill(CHUNK)];
    const next = (): void => {
      const piece = pieces.shift();
      if (piece === undefined) return void req.end();
      if (req.write(piece)) setImmediate(next);
      else req.once('drain', next);
    };
    next();
  });
}

async function outcomes(n: number, declared: boolean): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const outcome = await upload(declared);
    seen[outcome] = (seen[outcome] ?? 0) + 1;
  }
  return seen;
}

describe('an upload the gateway refuses, from a client that closes its connection', () => {
  it('is answered 413 when its size was declared over the allowance, 200 times out of 200', async () => {
    expect(await outcomes(200, true)).toEqual({ '413 payload_too_large': 200 });
  }, 300_000);

  it('is answered 413 when it crosses the allowance while streaming, 100 times out of 100', async () => {
    expect(await outcomes(100, false)).toEqual({ '413 payload_too_large': 100 });
  }, 300_000);

  it('is cut when its client goes on sending after the 413 for ever (what is read and dropped is bounded)', async () => {
    const outcome = await new Promise<{ status: number; ended: string }>((resolve) => {
      let status = 0;
      const req = request(`${stack.url}/v1/datasets/scratch/gina-race/partitions/0`, { method: 'PUT', ca: stack.ca, agent: false, headers: { authorization: `Bearer ${gina}`, 'content-type': 'text/csv', connection: 'close', 'content-length': 1e12 } }, (res) => {
        status = res.statusCode ?? 0;
        res.resume();
      });
      req.on('error', (err: NodeJS.ErrnoException) => resolve({ status, ended: err.code ?? err.message }));
      req.on('close', () => resolve({ status, ended: 'closed' }));
      // Sends for as long as the connection takes it: the answer, then the gateway's cut, end it.
      const more = (): void => {
        while (req.write(CHUNK)) if (req.destroyed) return;
        req.once('drain', more);
      };
      more();
    });
    expect(outcome.status).toBe(413);
    expect(outcome.ended).toMatch(/EPIPE|ECONNRESET|closed/);
  }, 60_000);
});
