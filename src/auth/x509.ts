// The one door to @peculiar/x509, the library that builds Gatehouse's user certificates, CSRs and
// CRL for any key WebCrypto knows (RSA, ECDSA, Ed25519). Import it from here, never directly:
// the library resolves its algorithms through tsyringe, which refuses to load unless the Reflect
// metadata polyfill is there first, and it signs through whatever WebCrypto it is given, here
// Node's own.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
