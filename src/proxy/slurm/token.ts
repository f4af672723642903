// The tokens slurmrestd authenticates a person's requests with: HS256 JWTs {sun, iat, exp} signed
// with Slurm's own JWT key (AuthAltParameters=jwt_key=), minted per request for the person's POSIX
// account and living minutes. The key is read once, when the minter is built, and stays in this
// closure: it is never logged, audited, returned or shown by inspecting the minter.
import { SignJWT } from 'jose';
import { ConfigError, readPrivateFile, SLURM_KEY_MIN_BYTES } from '../../config/index.js';
import { posixUserOf } from '../../identity/index.js';
import { GatehouseError } from '../../wire/index.js';

export const SLURM_USER_NAME_HEADER = 'X-SLURM-USER-NAME';
export const SLURM_USER_TOKEN_HEADER = 'X-SLURM-USER-TOKEN';

export interface SlurmHeaders {
  'X-SLURM-USER-NAME': string;
  'X-SLURM-USER-TOKEN': string;
}

/** The little of a logger the minter uses (pino's debug). */
export interface MinterLog {
  debug(object: Record<string, unknown>, message: string): void;
}

export interface SlurmTokenMinterOptions {
  /** slurm.jwt_key_file. */
  keyFile: string;
  /** slurm.token_ttl in seconds: 30 to 3600. */
  ttlSeconds: number;
  /** Milliseconds since the epoch (Date.now by default): tests set the clock. */
  now?: () => number;
  log?: MinterLog;
}

export interface SlurmTokenMinter {
  /**
   * The two headers for a request made as this POSIX account. Rejects with 403 forbidden when the
   * person has no valid POSIX account: no job ever runs under another name.
   */
  headers(posixUser: string | undefined): Promise<SlurmHeaders>;
  readonly ttlSeconds: number;
}

export const SLURM_TOKEN_TTL_MIN_S = 30;
export const SLURM_TOKEN_TTL_MAX_S = 3600;

export function createSlurmTokenMinter(options: SlurmTokenMinterOptions): SlurmTokenMinter {
  const { ttlSeconds } = options;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < SLURM_TOKEN_TTL_MIN_S || ttlSeconds > SLURM_TOKEN_TTL_MAX_S) {
    throw new ConfigError(`slurm.token_ttl: must be from 30s to 1h, got ${ttlSeconds} s`);
  }
  const key = new Uint8Array(readPrivateFile('slurm.jwt_key_file', options.keyFile, SLURM_KEY_MIN_BYTES));
  const now = options.now ?? Date.now;
  const log = options.log;

  const minter: SlurmTokenMinter = {
    ttlSeconds,
    async headers(posixUser) {
      const sun = posixUserOf(posixUser);
      if (sun === undefined) {
        throw new GatehouseError('forbidden', 'you have no POSIX account on the cluster that Slurm could run your job as; ask your administrator to give your directory entry one');
      }
      const iat = Math.floor(now() / 1000);
      const exp = iat + ttlSeconds;
      const token = await new SignJWT({ sun }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt(iat).setExpirationTime(exp).sign(key);
      log?.debug({ sun, iat, exp }, 'slurm token minted');
      return { [SLURM_USER_NAME_HEADER]: sun, [SLURM_USER_TOKEN_HEADER]: token } as unknown as SlurmHeaders;
    },
  };
  // What JSON.stringify, String() and util.inspect show of it: no key, by construction (it is in the closure).
  Object.defineProperty(minter, 'toJSON', { value: () => ({ slurm_token_minter: { ttl_s: ttlSeconds } }), enumerable: false });
  return minter;
}
