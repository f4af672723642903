// src/auth's second face, for `gatehouse up` before it loads anything else: the CA's key pair made ahead
// of the CA (ca-key.ts imports nothing but node:crypto).
export { type CaKeyPair, newCaKeyPair } from './ca-key.js';
