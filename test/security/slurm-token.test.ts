// The Slurm token minter: per person, HS256 {sun, iat, exp} with Slurm's own key, minutes long, from
// an injected clock; never for someone without a valid POSIX account (nor root); the key read once
// at start and never shown: not by the minter, not in a log, not in the gateway's trail or state.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { inspect } from 'node:util';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/index.js';
import { loggerOptions } from '../../src/http/index.js';
import { createSlurmTokenMinter, SLURM_USER_NAME_HEADER, SLURM_USER_TOKEN_HEADER } from '../../src/proxy/slurm/token.js';
import { type Sandbox, sandbox, startUp } from '../support/gatehouse.js';

const KEY = Buffer.from('0f9e8d7c6b5a49382716f5e4d3c2b1a0-slurm-jwt-hs256-key-bytes');
const T0 = Date.parse('2026-12-02T10:00:00Z');

function keyFile(bytes: Buffer = KEY, mode = 0o600): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-slurm-key-'));
  const file = join(dir, 'jwt_hs256.key');
  writeFileSync(file, bytes);
  chmodSync(file, mode);
  return file;
}

/** Every form the key could leak in: raw, hex, base64 (padded or url), and as a JWK's k. */
function keyForms(key: Buffer = KEY): string[] {
  return [key.toString('latin1'), key.toString('hex'), key.toString('base64'), key.toString('base64').replace(/=+$/, ''), key.toString('base64url')];
}
function expectNoKey(text: string, what: string): void {
  for (const form of keyForms()) expect(text.includes(form), `${what} holds the key (${form.slice(0, 6)}...)`).toBe(false);
}

describe('the Slurm token minter', () => {
  it('mints HS256 {sun, iat, exp} with the key file, exp = now + slurm.token_ttl, as the two Slurm headers', async () => {
    let now = T0;
    const minter = createSlurmTokenMinter({ keyFile: keyFile(), ttlSeconds: 300, now: () => now });
    const headers = await minter.headers('alice');
    expect(Object.keys(headers).sort()).toEqual(['X-SLURM-USER-NAME', 'X-SLURM-USER-TOKEN']);
    expect(SLURM_USER_NAME_HEADER).toBe('X-SLURM-USER-NAME');
    expect(SLURM_USER_TOKEN_HEADER).toBe('X-SLURM-USER-TOKEN');
    expect(headers['X-SLURM-USER-NAME']).toBe('alice');
    const token = headers['X-SLURM-USER-TOKEN'];
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'HS256', typ: 'JWT' });
    const { payload } = await jwtVerify(token, new Uint8Array(KEY), { algorithms: ['HS256'], currentDate: new Date(T0 + 1000) });
    expect(payload).toEqual({ sun: 'alice', iat: T0 / 1000, exp: T0 / 1000 + 300 });

    now = T0 + 3_600_000;
    const later = await minter.headers('bob');
    const { payload: second } = await jwtVerify(later['X-SLURM-USER-TOKEN'], new Uint8Array(KEY), { algorithms: ['HS256'], currentDate: new Date(now) });
    expect(second).toEqual({ sun: 'bob', iat: now / 1000, exp: now / 1000 + 300 });
    // Signed with exactly this key: another key does not verify it.
    await expect(jwtVerify(token, new Uint8Array(Buffer.alloc(KEY.length, 1)), { currentDate: new Date(T0) })).rejects.toThrow();
  });

  it('reads the key once, at start: a changed or removed file does not change the tokens', async () => {
    const file = keyFile();
    const minter = createSlurmTokenMinter({ keyFile: file, ttlSeconds: 60, now: () => T0 });
    writeFileSync(file, Buffer.alloc(64, 7));
    const token = (await minter.headers('alice'))['X-SLURM-USER-TOKEN'];
    await expect(jwtVerify(token, new Uint8Array(KEY), { currentDate: new Date(T0) })).resolves.toBeTruthy();
  });

  for (const [what, user] of [
    ['no POSIX account', undefined],
    ['an empty name', ''],
    ['root', 'root'],
    ['a name with capitals', 'Alice'],
    ['a name with a space', 'al ice'],
    ['a name starting with a digit', '1alice'],
    ['an email', 'alice@example.org'],
    ['a name over 32 characters', `a${'b'.repeat(32)}`],
    ['a name with a newline', 'alice\nroot'],
  ] as const) {
    it(`never mints a token for ${what}`, async () => {
      const minter = createSlurmTokenMinter({ keyFile: keyFile(), ttlSeconds: 60, now: () => T0 });
      const err = await minter.headers(user as string).then(
        () => null,
        (e: unknown) => e as { status?: number; code?: string; message: string },
      );
      expect(err).not.toBeNull();
      expect(err?.status).toBe(403);
      expect(err?.code).toBe('forbidden');
      expect(err?.message).toMatch(/POSIX account/);
    });
  }

  it('accepts the POSIX names a cluster has', async () => {
    const minter = createSlurmTokenMinter({ keyFile: keyFile(), ttlSeconds: 60, now: () => T0 });
    for (const name of ['a', '_svc', 'data-sci_2', `a${'b'.repeat(31)}`]) {
      expect((await minter.headers(name))['X-SLURM-USER-NAME']).toBe(name);
    }
  });

  it('refuses a key file that is not private, empty or short, naming slurm.jwt_key_file and without the key', () => {
    for (const [bytes, mode, message] of [
      [KEY, 0o644, /slurm\.jwt_key_file: .* is readable by group or others \(mode 0644\)/],
      [Buffer.alloc(0), 0o600, /slurm\.jwt_key_file: .* is empty/],
      [KEY.subarray(0, 16), 0o600, /slurm\.jwt_key_file: .* is too short \(16 bytes/],
    ] as const) {
      let error: unknown = null;
      try {
        createSlurmTokenMinter({ keyFile: keyFile(bytes, mode), ttlSeconds: 60 });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(message);
      expectNoKey((error as Error).message + inspect(error), 'the error');
    }
  });

  it('refuses a token lifetime outside 30 s to 1 h', () => {
    for (const ttl of [0, 29, 3601, Number.NaN]) {
      expect(() => createSlurmTokenMinter({ keyFile: keyFile(), ttlSeconds: ttl })).toThrow(/slurm\.token_ttl/);
    }
  });

  it('holds the key where neither inspection, JSON nor a trace-level log of minting shows it, and the log redacts the token header', async () => {
    let logged = '';
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logged += chunk.toString();
        done();
      },
    });
    const { stream: _stdout, ...options } = loggerOptions('gateway', 'trace');
    const log = pino(options, sink);
    const minter = createSlurmTokenMinter({ keyFile: keyFile(), ttlSeconds: 300, now: () => T0, log });
    const headers = await minter.headers('alice');
    // What a client of slurmrestd logging its request would write.
    log.info({ headers, req: { headers } }, 'slurmrestd request');
    log.info({ minter }, 'the minter itself');
    expect(logged).toMatch(/slurm token minted/);
    expect(logged).toMatch(/"sun":"alice"/);
    expectNoKey(logged, 'the log');
    expect(logged).not.toContain(headers['X-SLURM-USER-TOKEN']);
    expectNoKey(JSON.stringify(minter) + inspect(minter, { depth: 10, showHidden: true }) + String(minter), 'the minter');
  });
});

describe('the gateway with a Slurm key configured', () => {
  let box: Sandbox | undefined;
  afterAll(() => box?.remove());

  it('keeps the key out of its output, its logs, its audit trail and its state', async () => {
    const file = keyFile();
    box = sandbox({ slurm: { url: 'http://127.0.0.1:9', jwt_key_file: file }, log: { level: 'trace' } });
    const up = await startUp(box);
    await up.stop();
    // The gateway's log (at trace) is one of the files scanned below.
    expect(up.ready.gateway.log.startsWith(box.dir)).toBe(true);
    expect(readFileSync(up.ready.gateway.log, 'utf8')).toMatch(/"service":"gateway"/);
    const { stdout, stderr } = up.output();
    expectNoKey(stdout + stderr, 'gatehouse up output');
    let scanned = 0;
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        const stat = statSync(path);
        if (stat.isDirectory()) walk(path);
        else if (stat.isFile()) {
          scanned += 1;
          expectNoKey(readFileSync(path).toString('latin1'), path);
        }
      }
    };
    walk(box.dir);
    // The trail and the logs were among what was read.
    expect(scanned).toBeGreaterThan(3);
    expect(readdirSync(join(box.dir, 'var'), { recursive: true }).map(String).some((p) => p.endsWith('audit.db'))).toBe(true);
  });
});
