import { spawnSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureCertificates } from '../src/auth/index.js';
import { CERT_FILES, TlsFileError } from '../src/wire/index.js';
import { forgeCertificate } from './support/test-ca.js';

const DAY = 24 * 60 * 60 * 1000;

function certsDir(): string {
  return join(mkdtempSync(join(tmpdir(), 'gatehouse-certs-')), 'certs');
}

function cert(dir: string, name: keyof typeof CERT_FILES): X509Certificate {
  return new X509Certificate(readFileSync(join(dir, CERT_FILES[name].cert)));
}

function openssl(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const options = (dir: string, now?: Date) => ({ dir, gatewayHosts: ['gw.example.org', '10.1.2.3'], engineHosts: ['127.0.0.1'], ...(now ? { now } : {}) });

describe('certificate bootstrap', () => {
  it('creates a CA, the gateway and engine server certificates and the gateway client certificate', () => {
    const dir = certsDir();
    const report = ensureCertificates(options(dir));
    expect(report.created.sort()).toEqual(['ca', 'engine', 'gateway', 'gatewayClient']);
    const ca = cert(dir, 'ca');
    expect(ca.ca).toBe(true);
    for (const name of ['gateway', 'engine', 'gatewayClient'] as const) {
      const leaf = cert(dir, name);
      expect(leaf.checkIssued(ca), name).toBe(true);
      expect(leaf.verify(ca.publicKey), name).toBe(true);
      expect(leaf.ca).toBe(false);
    }
    const san = cert(dir, 'gateway').subjectAltName ?? '';
    for (const name of ['DNS:localhost', 'IP Address:127.0.0.1', 'DNS:gw.example.org', 'IP Address:10.1.2.3']) expect(san).toContain(name);
    expect(cert(dir, 'gatewayClient').subject).toContain('CN=gateway');
    expect(cert(dir, 'gatewayClient').subject).toContain('OU=services');
    expect(cert(dir, 'gatewayClient').keyUsage).toContain('1.3.6.1.5.5.7.3.2'); // clientAuth
    expect(cert(dir, 'gateway').keyUsage).toContain('1.3.6.1.5.5.7.3.1'); // serverAuth
  });

  it("gives the gateway's client certificate an Ed25519 key (it signs the admission tickets), the servers ECDSA P-256", () => {
    const dir = certsDir();
    ensureCertificates(options(dir));
    expect(cert(dir, 'gatewayClient').publicKey.asymmetricKeyType).toBe('ed25519');
    expect(createPrivateKey(readFileSync(join(dir, CERT_FILES.gatewayClient.key), 'utf8')).asymmetricKeyType).toBe('ed25519');
    for (const name of ['gateway', 'engine'] as const) {
      expect(cert(dir, name).publicKey.asymmetricKeyType, name).toBe('ec');
      expect(cert(dir, name).publicKey.asymmetricKeyDetails?.namedCurve, name).toBe('prime256v1');
    }
  });

  it("renews a client certificate with a key of another kind (an earlier version's RSA) as Ed25519, though it is valid and the CA's", () => {
    const dir = certsDir();
    ensureCertificates(options(dir));
    // A valid (EC) pair issued by this CA in the client certificate's place: only its key's kind is wrong.
    copyFileSync(join(dir, CERT_FILES.engine.cert), join(dir, CERT_FILES.gatewayClient.cert));
    copyFileSync(join(dir, CERT_FILES.engine.key), join(dir, CERT_FILES.gatewayClient.key));
    const report = ensureCertificates(options(dir));
    expect(report.renewed).toEqual(['gatewayClient']);
    expect(cert(dir, 'gatewayClient').publicKey.asymmetricKeyType).toBe('ed25519');
    expect(statSync(join(dir, CERT_FILES.gatewayClient.key)).mode & 0o777).toBe(0o600);
  });

  it('writes private keys with mode 0600 and the folder with 0700', () => {
    const dir = certsDir();
    ensureCertificates(options(dir));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const files of Object.values(CERT_FILES)) {
      expect(statSync(join(dir, files.key)).mode & 0o777, files.key).toBe(0o600);
    }
  });

  it('reuses everything on a second start', () => {
    const dir = certsDir();
    ensureCertificates(options(dir));
    const before = Object.fromEntries(Object.values(CERT_FILES).map((f) => [f.cert, readFileSync(join(dir, f.cert), 'utf8')]));
    const report = ensureCertificates(options(dir));
    expect(report.created).toEqual([]);
    expect(report.renewed).toEqual([]);
    expect(report.reused.sort()).toEqual(['ca', 'engine', 'gateway', 'gatewayClient']);
    for (const [file, text] of Object.entries(before)) expect(readFileSync(join(dir, file), 'utf8'), file).toBe(text);
  });

  it('refuses a private key that its group or others can read', () => {
    const dir = certsDir();
    ensureCertificates(options(dir));
    for (const mode of [0o644, 0o640, 0o604]) {
      chmodSync(join(dir, 'gateway.key'), mode);
      expect(() => ensureCertificates(options(dir))).toThrow(TlsFileError);
      expect(() => ensureCertificates(options(dir))).toThrow(`private key ${join(dir, 'gateway.key')} is readable by others (mode 0${mode.toString(8)}); run: chmod 600`);
    }
    chmodSync(join(dir, 'gateway.key'), 0o600);
    expect(ensureCertificates(options(dir)).reused).toContain('gateway');
  });

  it('renews expired service certificates but keeps the CA', () => {
    const dir = certsDir();
    ensureCertificates(options(dir));
    const oldCa = cert(dir, 'ca').fingerprint256;
    const oldGateway = cert(dir, 'gateway').serialNumber;
    const later = new Date(Date.now() + 100 * DAY); // past the 90-day server lifetime
    const report = ensureCertificates(options(dir, later));
    expect(report.renewed.sort()).toEqual(['engine', 'gateway', 'gatewayClient']);
    expect(cert(dir, 'ca').fingerprint256).toBe(oldCa);
    const renewed = cert(dir, 'gateway');
    expect(renewed.serialNumber).not.toBe(oldGateway);
    expect(new Date(renewed.validTo).getTime()).toBeGreaterThan(later.getTime() + 80 * DAY);
    expect(statSync(join(dir, 'gateway.key')).mode & 0o777).toBe(0o600);
  });

  it('reissues the gateway certificate when a configured hostname is missing from it', () => {
    const dir = certsDir();
    ensureCertificates(options(dir));
    const report = ensureCertificates({ ...options(dir), gatewayHosts: ['gw.example.org', '10.1.2.3', 'new.example.org'] });
    expect(report.renewed).toEqual(['gateway']);
    expect(cert(dir, 'gateway').subjectAltName).toContain('DNS:new.example.org');
  });

  it('replaces a service certificate that another CA signed', () => {
    const dir = certsDir();
    const foreign = certsDir();
    ensureCertificates(options(dir));
    ensureCertificates(options(foreign));
    for (const f of [CERT_FILES.engine.cert, CERT_FILES.engine.key]) copyFileSync(join(foreign, f), join(dir, f));
    chmodSync(join(dir, CERT_FILES.engine.key), 0o600);
    expect(ensureCertificates(options(dir)).renewed).toEqual(['engine']);
    expect(cert(dir, 'engine').checkIssued(cert(dir, 'ca'))).toBe(true);
  });

  it('refuses a CA key that does not belong to the CA certificate', () => {
    const dir = certsDir();
    const other = certsDir();
    ensureCertificates(options(dir));
    ensureCertificates(options(other));
    writeFileSync(join(dir, 'ca.key'), readFileSync(join(other, 'ca.key')), { mode: 0o600 });
    expect(() => ensureCertificates(options(dir))).toThrow(/is not the key of .*ca\.crt/);
  });

  it('writes certificates openssl accepts: a CA for signing only, servers for TLS servers, the gateway client for TLS clients', () => {
    const dir = certsDir();
    ensureCertificates(options(dir));
    const file = (name: keyof typeof CERT_FILES) => join(dir, CERT_FILES[name].cert);
    const ca = openssl(['x509', '-noout', '-text', '-in', file('ca')]).out;
    expect(ca).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(ca).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign\n/);
    expect(ca).toContain('Signature Algorithm: sha256WithRSAEncryption');
    expect(ca).toContain('Public-Key: (3072 bit)');
    expect(ca).toContain('X509v3 Subject Key Identifier');
    for (const [name, purpose] of [['gateway', 'sslserver'], ['engine', 'sslserver'], ['gatewayClient', 'sslclient']] as const) {
      const verified = openssl(['verify', '-purpose', purpose, '-CAfile', file('ca'), file(name)]);
      expect(verified.out, name).toContain(`${file(name)}: OK`);
      expect(openssl(['verify', '-purpose', purpose === 'sslserver' ? 'sslclient' : 'sslserver', '-CAfile', file('ca'), file(name)]).status, name).not.toBe(0);
      const text = openssl(['x509', '-noout', '-text', '-in', file(name)]).out;
      expect(text, name).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
      // Ed25519 and EC keys only sign (RFC 8410, RFC 5480 §3).
      expect(text, name).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
      if (name === 'gatewayClient') expect(text).toContain('Public Key Algorithm: ED25519');
      expect(text, name).toContain('X509v3 Authority Key Identifier');
    }
    expect(openssl(['x509', '-noout', '-ext', 'subjectAltName', '-in', file('engine')]).out).toMatch(/DNS:localhost|IP Address:127\.0\.0\.1/);
    expect(openssl(['x509', '-noout', '-ext', 'subjectAltName', '-in', file('gateway')]).out).toContain('IP Address:0:0:0:0:0:0:0:1');
  });

  it('issues service certificates under a CA made by node-forge (as Gatehouse made them before), byte-equal issuer and all', () => {
    const dir = certsDir();
    const forgeCa = forgeCertificate([{ name: 'commonName', value: 'Gatehouse CA' }, { name: 'organizationName', value: 'Gatehouse' }], undefined, [
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ]);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, CERT_FILES.ca.cert), forgeCa.pem);
    writeFileSync(join(dir, CERT_FILES.ca.key), forgeCa.keyPem, { mode: 0o600 });
    const report = ensureCertificates(options(dir));
    expect(report.reused).toEqual(['ca']);
    expect(report.created.sort()).toEqual(['engine', 'gateway', 'gatewayClient']);
    const issuer = openssl(['x509', '-noout', '-issuer', '-nameopt', 'multiline,show_type', '-in', join(dir, CERT_FILES.gateway.cert)]).out.replace(/^\w+=/, '');
    expect(issuer).toBe(openssl(['x509', '-noout', '-subject', '-nameopt', 'multiline,show_type', '-in', join(dir, CERT_FILES.ca.cert)]).out.replace(/^\w+=/, ''));
    expect(openssl(['verify', '-purpose', 'sslserver', '-CAfile', join(dir, CERT_FILES.ca.cert), join(dir, CERT_FILES.gateway.cert)]).status).toBe(0);
  });
});
