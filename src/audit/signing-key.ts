// The key that signs checkpoints of the chain head. It lives in certs.dir (mode 0600), not in the
// trail's database, so whoever can rewrite the database still cannot sign a rewritten chain.
// Its public half is in the gateway's JWKS, so anyone can check a checkpoint or an archive.
// Every public key that ever signed is kept in certs.dir/audit-keys/<kid>.pub (saved at each load,
// so a key file replaced by hand leaves its predecessor's there too): after a rotation the older
// checkpoints and archives still verify, and the JWKS goes on publishing the retired keys.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, fsyncSync, closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const AUDIT_KEY_FILE = 'audit-signing.key';
/** Public halves of every audit key, current and retired, one `<kid>.pub` (SPKI PEM) each. */
export const AUDIT_KEYS_DIR = 'audit-keys';

export interface AuditPublicJwk {
  kty: string;
  crv: string;
  x: string;
  kid: string;
  alg: 'EdDSA';
  use: 'sig';
}

export interface AuditSigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  jwk: AuditPublicJwk;
  /** The private key as PKCS#8 PEM: handed to the writer thread only. */
  pem: string;
  /** Every key a checkpoint of this trail may be signed by, by kid: this one and the retired ones. */
  known: Map<string, KeyObject>;
  /** Their public JWKs, this one first: what the JWKS publishes. */
  jwks: AuditPublicJwk[];
}

/** Loads certs.dir/audit-signing.key, creating an Ed25519 key on first start, with the retired public keys. */
export function loadAuditKey(certsDir: string): AuditSigningKey {
  const file = join(certsDir, AUDIT_KEY_FILE);
  if (!existsSync(file)) {
    mkdirSync(certsDir, { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('ed25519');
    writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
  }
  chmodSync(file, 0o600);
  const key = auditKeyFromPem(readFileSync(file, 'utf8'));
  keepPublicKey(certsDir, key);
  for (const retired of readRetiredKeys(certsDir)) {
    if (key.known.has(retired.kid)) continue;
    key.known.set(retired.kid, retired.key);
    key.jwks.push(retired.jwk);
  }
  return key;
}

export function auditKeyFromPem(pem: string): AuditSigningKey {
  const privateKey = createPrivateKey(pem);
  const publicKey = createPublicKey(privateKey);
  const jwk = jwkOf(publicKey);
  return { kid: jwk.kid, privateKey, publicKey, jwk, pem, known: new Map([[jwk.kid, publicKey]]), jwks: [jwk] };
}

function jwkOf(publicKey: KeyObject): AuditPublicJwk {
  const { kty, crv, x } = publicKey.export({ format: 'jwk' }) as { kty: string; crv: string; x: string };
  // The kid is the key's own thumbprint (RFC 7638), so the same key always has the same name.
  const thumbprint = createHash('sha256').update(JSON.stringify({ crv, kty, x })).digest('base64url');
  return { kty, crv, x, kid: `audit-${thumbprint.slice(0, 16)}`, alg: 'EdDSA', use: 'sig' };
}

export function publicKeyOfJwk(jwk: { kty: string; crv: string; x: string }): KeyObject {
  return createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, format: 'jwk' });
}

/** Saves the key's public half as audit-keys/<kid>.pub, once. */
function keepPublicKey(certsDir: string, key: AuditSigningKey): void {
  const dir = join(certsDir, AUDIT_KEYS_DIR);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `${key.kid}.pub`);
  if (!existsSync(file)) writeFileSync(file, key.publicKey.export({ format: 'pem', type: 'spki' }), { mode: 0o644 });
}

/** The public keys in audit-keys/ (named by their own thumbprint, whatever the file is called). */
function readRetiredKeys(certsDir: string): { kid: string; key: KeyObject; jwk: AuditPublicJwk }[] {
  const dir = join(certsDir, AUDIT_KEYS_DIR);
  if (!existsSync(dir)) return [];
  const out: { kid: string; key: KeyObject; jwk: AuditPublicJwk }[] = [];
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.pub')).sort()) {
    let key: KeyObject;
    try {
      key = createPublicKey(readFileSync(join(dir, name), 'utf8'));
    } catch (err) {
      throw new Error(`${join(dir, name)} is not a public key (${(err as Error).message}); remove it or restore it`);
    }
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${join(dir, name)} is not an Ed25519 key; audit keys are Ed25519`);
    const jwk = jwkOf(key);
    out.push({ kid: jwk.kid, key, jwk });
  }
  return out;
}

/**
 * Retires the current audit key: its public half stays in audit-keys/ (and in the JWKS), a new key
 * signs from the gateway's next start. The new key is written beside the old one and renamed over
 * it, so a crash leaves one whole key file.
 */
export function rotateAuditKey(certsDir: string): { retired: string; current: string } {
  const old = loadAuditKey(certsDir); // keeps its public half
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const file = join(certsDir, AUDIT_KEY_FILE);
  const partial = `${file}.new`;
  const fd = openSync(partial, 'w', 0o600);
  try {
    writeSync(fd, pem);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(partial, file);
  const next = loadAuditKey(certsDir); // keeps the new public half too
  return { retired: old.kid, current: next.kid };
}

/**
 * The audit public keys kept in certs.dir, for checking a trail without the gateway: audit-keys/
 * and, when readable, the current key file's public half. Creates nothing.
 */
export function readAuditPublicKeys(certsDir: string): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  const file = join(certsDir, AUDIT_KEY_FILE);
  if (existsSync(file)) {
    try {
      const current = auditKeyFromPem(readFileSync(file, 'utf8'));
      keys.set(current.kid, current.publicKey);
    } catch {
      // not readable here: the kept public halves still serve
    }
  }
  for (const k of readRetiredKeys(certsDir)) keys.set(k.kid, k.key);
  return keys;
}
