// A throwaway CA and a server certificate for 127.0.0.1/localhost, written as PEM files for test servers.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';

export interface TestCa {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** Another CA that signed nothing here: a client trusting only it must refuse the server. */
  otherCaFile: string;
}

export function testCa(dir: string): TestCa {
  const ca = certificate({ cn: 'Gatehouse test CA' });
  const other = certificate({ cn: 'Gatehouse unrelated CA' });
  const server = certificate({ cn: '127.0.0.1', issuer: ca });
  const files = { caFile: join(dir, 'ca.crt'), certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key'), otherCaFile: join(dir, 'other-ca.crt') };
  writeFileSync(files.caFile, ca.pem);
  writeFileSync(files.otherCaFile, other.pem);
  writeFileSync(files.certFile, server.pem);
  writeFileSync(files.keyFile, server.keyPem, { mode: 0o600 });
  return files;
}

export interface Issued {
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
  pem: string;
  keyPem: string;
}

const CA_EXTENSIONS = [
  { name: 'basicConstraints', cA: true, critical: true },
  { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
  { name: 'subjectKeyIdentifier' },
];
const SERVER_EXTENSIONS = [
  { name: 'basicConstraints', cA: false },
  { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
  { name: 'extKeyUsage', serverAuth: true },
  { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }, { type: 2, value: 'localhost' }] },
];

function certificate(options: { cn: string; issuer?: Issued }): Issued {
  return forgeCertificate([{ name: 'commonName', value: options.cn }], options.issuer, options.issuer ? SERVER_EXTENSIONS : CA_EXTENSIONS);
}

/** A certificate built and signed by forge: self-signed without an issuer. Tests only; not our signer. */
export function forgeCertificate(subject: forge.pki.CertificateField[], issuer: Pick<Issued, 'cert' | 'key'> | undefined, extensions: object[], lifetimeMs = 24 * 3600_000): Issued {
  // Node generates the key (fast, native); forge builds the certificate, which Node cannot.
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  const key = forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = `01${randomBytes(8).toString('hex')}`;
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + lifetimeMs);
  cert.setSubject(subject);
  cert.setIssuer(issuer ? issuer.cert.subject.attributes : cert.subject.attributes);
  cert.setExtensions(extensions);
  cert.sign(issuer?.key ?? key, forge.md.sha256.create());
  return { cert, key, pem: forge.pki.certificateToPem(cert), keyPem: privateKey };
}
