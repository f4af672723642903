// The audit verbs that work on this host's files rather than through the gateway:
//   audit verify --witness FILE   the trail in audit.dir (or --dir) checked against a witness
//   audit rotate-key              a new audit signing key; the retired one's public half is kept
import { structured } from './output.js';
import type { KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openAuditDb, publicKeyOfJwk, readAuditPublicKeys, rotateAuditKey, verifyTrail } from '../audit/index.js';
import type { Config } from '../config/index.js';
import { renderVerify } from './audit-view.js';
import { call, type Target } from './client/api.js';
import { UsageError } from './fail.js';
import { printLine, visible } from './safe-text.js';

export interface LocalAuditOptions {
  witness: string;
  /** A copy of audit.dir to check instead of the configured one. */
  dir?: string | undefined;
  json: boolean;
}

/**
 * The trail as it is on disk, against a witness the auditor holds (audit.witness_file, a copy from
 * another volume, or the gateway's shipped log): every checkpoint the witness holds must be in the
 * trail and its event unchanged. Keys: the gateway's published audit keys when it answers, else
 * the public halves kept in certs.dir.
 */
export async function verifyWithWitness(target: () => Target, config: () => Config, o: LocalAuditOptions): Promise<number> {
  if (!existsSync(o.witness)) throw new UsageError(`--witness: no such file ${visible(o.witness)}`);
  const cfg = config();
  const auditDir = o.dir ?? (cfg.audit.dir || join(cfg.state.dir, 'audit'));
  if (!existsSync(join(auditDir, 'audit.db'))) throw new UsageError(`no audit trail in ${visible(auditDir)} (audit.dir; --dir names a copy)`);
  let keys: Map<string, KeyObject> | undefined;
  let source = 'the gateway';
  try {
    const jwks = await call<{ keys: { kid: string; kty: string; crv: string; x: string }[] }>(target(), 'GET', '/.well-known/jwks.json', {});
    keys = new Map(jwks.keys.filter((k) => k.kid.startsWith('audit-')).map((k) => [k.kid, publicKeyOfJwk(k)]));
  } catch {
    keys = undefined;
  }
  if (!keys || keys.size === 0) {
    keys = readAuditPublicKeys(cfg.certs.dir);
    source = cfg.certs.dir;
  }
  if (keys.size === 0) throw new UsageError(`no audit public key: the gateway does not answer and ${visible(cfg.certs.dir)} keeps none`);
  const db = openAuditDb(auditDir, { readonly: true });
  let report: ReturnType<typeof verifyTrail>;
  try {
    report = verifyTrail(db, keys, { witnessFile: o.witness, archiveDir: cfg.audit.archive_dir || join(auditDir, 'archive') });
  } finally {
    db.close();
  }
  if (o.json) printLine(structured(report));
  else {
    printLine(renderVerify(report));
    // The witness path and certs.dir come from the command line and the config, the key ids from
    // the gateway or certs.dir: each is one value, shown on its line with any newline escaped.
    printLine(`against the witness ${visible(o.witness)} (${report.witness?.checkpoints ?? 0} checkpoints); keys from ${visible(source)}: ${[...keys.keys()].map(visible).join(', ')}`);
  }
  return report.ok ? 0 : 1;
}

/** A new audit key in certs.dir; the old public half stays (audit-keys/, the JWKS), so old checkpoints verify. */
export function rotateKey(config: () => Config, json: boolean): number {
  const { certs } = config();
  const { retired, current } = rotateAuditKey(certs.dir);
  if (json) printLine(structured({ retired, current }));
  else {
    printLine(`audit key rotated: ${visible(retired)} retired (its public key stays in ${visible(join(certs.dir, 'audit-keys'))} and in the JWKS), ${visible(current)} signs from the gateway's next start`);
    printLine('restart the gateway to sign with the new key');
  }
  return 0;
}
