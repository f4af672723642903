// A secret kept in a file (Slurm's JWT key): it must be a regular file only its owner can read or
// write, and long enough to be a key. Every refusal names the configuration key and the file, never
// a byte of what the file holds.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { ConfigError } from './errors.js';

/** Reads the whole file once, after checking it; throws a ConfigError naming `key` otherwise. */
export function readPrivateFile(key: string, path: string, minBytes: number): Buffer {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO (or a device) put at the path opens at once and is refused below, instead of
    // holding start-up until something writes to it. No effect on a regular file.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw new ConfigError(`${key}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    // fstat on the descriptor read from: the checks and the read see the same file.
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new ConfigError(`${key}: ${path} is not a regular file`);
    const mode = stat.mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new ConfigError(`${key}: ${path} is readable by group or others (mode ${mode.toString(8).padStart(4, '0')}); make it 0600, owned by the gateway's user`);
    }
    if (stat.size === 0) throw new ConfigError(`${key}: ${path} is empty`);
    if (stat.size < minBytes) throw new ConfigError(`${key}: ${path} is too short (${stat.size} bytes; a key needs at least ${minBytes})`);
    if (stat.size > 1024 * 1024) throw new ConfigError(`${key}: ${path} is too large to be a key (${stat.size} bytes)`);
    const data = Buffer.alloc(stat.size);
    let at = 0;
    while (at < data.length) {
      const n = readSync(fd, data, at, data.length - at, at);
      if (n === 0) break;
      at += n;
    }
    if (at < minBytes) throw new ConfigError(`${key}: ${path} is too short (${at} bytes; a key needs at least ${minBytes})`);
    return at === data.length ? data : data.subarray(0, at);
  } finally {
    closeSync(fd);
  }
}

/** Slurm's documentation makes its HS256 key with `dd if=/dev/random bs=32 count=1`: 32 bytes at least. */
export const SLURM_KEY_MIN_BYTES = 32;
