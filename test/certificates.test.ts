import { X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureCertificates } from '../src/auth/index.js';
import { CERT_FILES, TlsFileError } from '../src/wire/index.js';

const DAY = 24 * 60 * 60 * 1000;

function certsDir(): string {
  return join(mkdtempSync(join(tmpdir(), 'gatehouse-certs-')), 'certs');
}

function cert(dir: string, name: keyof typeof CERT_FILES): X509Certificate {
  return new X509Certificate(readFileSync(join(dir, CERT_FILES[name].cert)));
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
});
