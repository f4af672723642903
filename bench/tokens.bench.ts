// token-verification: the gateway turning a bearer token into an Identity (jose verify, our claim
// checks, the revocation check, and the short cache of verified tokens keyed by their hash) against
// raw jose jwtVerify of the same tokens with the same key. Clients reuse a token for many requests,
// so the warm row is the common case; the cold row turns the cache off to show the full cost.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { SigningKeys } from '../src/auth/signing-keys.js';
import { TOKEN_AUDIENCE, TokenService } from '../src/auth/tokens.js';
import { openStore, type Store } from '../src/store/index.js';
import type { Benchmark } from './measure.js';

const TOKENS = 1_000; // distinct logins, verified round-robin
const CONCURRENCY = 16; // requests in flight, as on a busy gateway
const ROUND_MS = 1_000;
const ISSUER = 'urn:gatehouse:bench';

interface Context {
  dir: string;
  store: Store;
  keys: SigningKeys;
  service: TokenService;
  tokens: string[];
}

async function setup(cacheSize: number | undefined): Promise<Context> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-tokens-'));
  const store = await openStore({ stateDir: dir });
  const keys = await SigningKeys.open(store, { rotationSeconds: 86_400, tokenLifetimeSeconds: 900 });
  const service = new TokenService(store, keys, { issuer: ISSUER, accessTtlSeconds: 900, refreshTtlSeconds: 43_200, ...(cacheSize === undefined ? {} : { verifiedCacheSize: cacheSize }) });
  await service.start();
  const tokens: string[] = [];
  for (let i = 0; i < TOKENS; i++) tokens.push((await service.login({ user: `user${i}`, groups: ['analysts'], auth_method: 'oidc' })).access_token);
  return { dir, store, keys, service, tokens };
}

/** Verifies round-robin with CONCURRENCY in flight for ROUND_MS; returns tokens per second. */
async function perSecond(ctx: Context, verify: (token: string) => Promise<unknown>): Promise<number> {
  let next = 0;
  let done = 0;
  const started = performance.now();
  const worker = async () => {
    while (performance.now() - started < ROUND_MS) {
      await verify(ctx.tokens[next++ % ctx.tokens.length]!);
      done++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return done / ((performance.now() - started) / 1000);
}

function rawJose(ctx: Context) {
  return (token: string) => {
    const key = ctx.keys.publicKey(decodeProtectedHeader(token).kid!)!;
    return jwtVerify(token, key, { algorithms: ['EdDSA'], issuer: ISSUER, audience: TOKEN_AUDIENCE });
  };
}

const teardown = async (ctx: Context) => {
  ctx.service.stop();
  await ctx.store.close();
  rmSync(ctx.dir, { recursive: true, force: true });
};

const warm: Benchmark<Context> = {
  name: 'token-verification',
  unit: 'tokens/s',
  baseline: 'raw jose jwtVerify of the same tokens, same key, same concurrency',
  setup: () => setup(undefined),
  candidate: (ctx) => perSecond(ctx, (t) => ctx.service.verifyAccess(t)),
  baselineRun: (ctx) => perSecond(ctx, rawJose(ctx)),
  teardown,
};

const cold: Benchmark<Context> = {
  name: 'token-verification-uncached',
  unit: 'tokens/s',
  baseline: 'raw jose jwtVerify of the same tokens, same key, same concurrency',
  setup: () => setup(0),
  candidate: (ctx) => perSecond(ctx, (t) => ctx.service.verifyAccess(t)),
  baselineRun: (ctx) => perSecond(ctx, rawJose(ctx)),
  teardown,
};

export const benchmarks: Benchmark[] = [warm, cold];
