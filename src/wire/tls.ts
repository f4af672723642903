// The TLS material shared by the gateway and the engine: where each file lives, who the
// gateway is when it calls the engine, and a key reader that refuses keys others can read.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const CERT_FILES = {
  ca: { cert: 'ca.crt', key: 'ca.key' },
  gateway: { cert: 'gateway.crt', key: 'gateway.key' },
  engine: { cert: 'engine.crt', key: 'engine.key' },
  gatewayClient: { cert: 'gateway-client.crt', key: 'gateway-client.key' },
} as const;

export type CertName = keyof typeof CERT_FILES;

/** Subject of the one client certificate the engine accepts. User certificates carry OU=users. */
export const GATEWAY_CLIENT_SUBJECT = { commonName: 'gateway', organizationalUnit: 'services' } as const;

export class TlsFileError extends Error {
  override readonly name = 'TlsFileError';
}

export interface TlsMaterial {
  ca: string;
  cert: string;
  key: string;
}

/** Reads a private key, refusing one that its group or others may read (as ssh does). */
export function readPrivateKey(file: string): string {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch {
    throw new TlsFileError(`missing private key ${file}: start Gatehouse once to create its certificates (gatehouse up)`);
  }
  if ((mode & 0o077) !== 0) {
    throw new TlsFileError(
      `private key ${file} is readable by others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); run: chmod 600 ${file}`,
    );
  }
  return readFileSync(file, 'utf8');
}

export function readCertificate(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    throw new TlsFileError(`missing certificate ${file}: start Gatehouse once to create its certificates (gatehouse up)`);
  }
}

/** The CA plus one named certificate and its key, ready for node:tls options. */
export function readTlsMaterial(dir: string, name: Exclude<CertName, 'ca'>): TlsMaterial {
  const files = CERT_FILES[name];
  return {
    ca: readCertificate(join(dir, CERT_FILES.ca.cert)),
    cert: readCertificate(join(dir, files.cert)),
    key: readPrivateKey(join(dir, files.key)),
  };
}
