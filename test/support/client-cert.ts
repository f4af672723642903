// Signs a client certificate with a CA's key, for tests that knock on the engine or the gateway as
// someone our signer would never certify (a look-alike user without the SAN, a service name).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import { forgeCertificate } from './test-ca.js';

export function clientCertificate(caDir: string, subject: { CN: string; OU: string }): { cert: string; key: string } {
  const issuer = {
    cert: forge.pki.certificateFromPem(readFileSync(join(caDir, 'ca.crt'), 'utf8')),
    key: forge.pki.privateKeyFromPem(readFileSync(join(caDir, 'ca.key'), 'utf8')) as forge.pki.rsa.PrivateKey,
  };
  const issued = forgeCertificate(
    [
      { name: 'commonName', value: subject.CN },
      { shortName: 'OU', value: subject.OU },
    ],
    issuer,
    [
      { name: 'basicConstraints', cA: false },
      { name: 'extKeyUsage', clientAuth: true },
    ],
    3600_000,
  );
  return { cert: issued.pem, key: issued.keyPem };
}
