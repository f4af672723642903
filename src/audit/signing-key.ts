// The key that signs checkpoints of the chain head. It lives in certs.dir (mode 0600), not in the
// trail's database, so whoever can rewrite the database still cannot sign a rewritten chain.
// Its public half is in the gateway's JWKS, so anyone can check a checkpoint or an archive.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const AUDIT_KEY_FILE = 'audit-signing.key';

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
}

/** Loads certs.dir/audit-signing.key, creating an Ed25519 key on first start. */
export function loadAuditKey(certsDir: string): AuditSigningKey {
  const file = join(certsDir, AUDIT_KEY_FILE);
  if (!existsSync(file)) {
    mkdirSync(certsDir, { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('ed25519');
    writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
  }
  chmodSync(file, 0o600);
  return auditKeyFromPem(readFileSync(file, 'utf8'));
}

export function auditKeyFromPem(pem: string): AuditSigningKey {
  const privateKey = createPrivateKey(pem);
  const publicKey = createPublicKey(privateKey);
  const { kty, crv, x } = publicKey.export({ format: 'jwk' }) as { kty: string; crv: string; x: string };
  // The kid is the key's own thumbprint (RFC 7638), so the same key always has the same name.
  const thumbprint = createHash('sha256').update(JSON.stringify({ crv, kty, x })).digest('base64url');
  const jwk: AuditPublicJwk = { kty, crv, x, kid: `audit-${thumbprint.slice(0, 16)}`, alg: 'EdDSA', use: 'sig' };
  return { kid: jwk.kid, privateKey, publicKey, jwk, pem };
}

export function publicKeyOfJwk(jwk: { kty: string; crv: string; x: string }): KeyObject {
  return createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, format: 'jwk' });
}
