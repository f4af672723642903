// Loads policies/ into a Casbin enforcer and names the result by a hash of its content.
// Validation in depth, hot reload, explain and test arrive with the governance issue.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { casbin, type Enforcer } from './casbin.js';

export const MODEL_FILE = 'model.conf';
export const POLICY_FILE = 'policy.csv';

export interface PolicySnapshot {
  /** A content hash of the files: every decision will carry it. */
  version: string;
  loadedAt: Date;
  enforcer: Enforcer;
}

export class PolicyError extends Error {
  override readonly name = 'PolicyError';
}

export async function loadPolicy(dir: string): Promise<PolicySnapshot> {
  const hash = createHash('sha256');
  for (const name of [MODEL_FILE, POLICY_FILE]) {
    const file = join(dir, name);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new PolicyError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)} (policies.dir is ${dir})`);
    }
    hash.update(name).update('\0').update(text).update('\0');
  }
  let enforcer: Enforcer;
  try {
    enforcer = await casbin.newEnforcer(join(dir, MODEL_FILE), join(dir, POLICY_FILE));
  } catch (err) {
    throw new PolicyError(`invalid policy in ${dir}: ${(err as Error).message}`);
  }
  return { version: hash.digest('hex').slice(0, 16), loadedAt: new Date(), enforcer };
}
