// The CA's key pair: RSA-3072 (it signs user certificates and CRLs with sha256WithRSAEncryption). Made
// by certificate-authority.ts when it creates a CA, or ahead of it: on a first start `gatehouse up`
// makes it on the thread pool while it loads its own code and configuration (0.3-1.5 s of CPU that
// were otherwise on the path to the children's go). Imports nothing but node:crypto.
import { generateKeyPair, generateKeyPairSync, type KeyObject } from 'node:crypto';

export const CA_KEY_BITS = 3072;

export interface CaKeyPair {
  publicKey: KeyObject;
  privateKey: KeyObject;
}

export function newCaKeyPairSync(): CaKeyPair {
  return generateKeyPairSync('rsa', { modulusLength: CA_KEY_BITS });
}

/** The same, on the thread pool. */
export function newCaKeyPair(): Promise<CaKeyPair> {
  return new Promise((resolve, reject) => generateKeyPair('rsa', { modulusLength: CA_KEY_BITS }, (err, publicKey, privateKey) => (err ? reject(err) : resolve({ publicKey, privateKey }))));
}
