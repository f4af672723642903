// Gatehouse's own CA (node-forge): created on first start, reused after, and the service
// certificates it signs (gateway server, engine server, the gateway's client towards the engine).
import { createPrivateKey, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import type { Config } from '../config/index.js';
import { CERT_FILES, type CertName, GATEWAY_CLIENT_SUBJECT, readCertificate, readPrivateKey, TlsFileError } from '../wire/index.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const CA_LIFETIME_DAYS = 3650;
const SERVER_LIFETIME_DAYS = 90;
const SERVICE_CLIENT_LIFETIME_DAYS = 30;

export interface CertificateOptions {
  dir: string;
  /** Extra names for the gateway certificate (server.hostnames, server.host). */
  gatewayHosts: string[];
  /** Extra names for the engine certificate (engine.host). */
  engineHosts: string[];
  now?: Date;
}

export interface BootstrapReport {
  created: CertName[];
  renewed: CertName[];
  reused: CertName[];
}

interface Leaf {
  name: Exclude<CertName, 'ca'>;
  subject: forge.pki.CertificateField[];
  lifetimeDays: number;
  usage: 'server' | 'client';
  hosts: string[];
}

interface ForgeIssuer {
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
}

interface Issuer {
  x509: X509Certificate;
  forge(): ForgeIssuer;
}

/**
 * Makes sure the CA and the service certificates exist, are ours and are valid; creates or
 * renews what is missing, expired, close to expiry (a third of its lifetime left) or lacks a name.
 */
export function ensureCertificates(options: CertificateOptions): BootstrapReport {
  const { dir } = options;
  const now = options.now ?? new Date();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const report: BootstrapReport = { created: [], renewed: [], reused: [] };
  return withLock(join(dir, '.lock'), () => {
    const ca = ensureCa(dir, now, report);
    for (const leaf of leaves(options)) ensureLeaf(dir, ca, leaf, now, report);
    return report;
  });
}

function leaves(options: CertificateOptions): Leaf[] {
  const local = ['127.0.0.1', '::1', 'localhost'];
  const wildcard = (h: string) => h === '0.0.0.0' || h === '::';
  const names = (extra: string[]) => [...new Set([...local, ...extra.filter((h) => h && !wildcard(h))])];
  return [
    { name: 'gateway', subject: [{ name: 'commonName', value: 'gatehouse-gateway' }], lifetimeDays: SERVER_LIFETIME_DAYS, usage: 'server', hosts: names(options.gatewayHosts) },
    { name: 'engine', subject: [{ name: 'commonName', value: 'gatehouse-engine' }], lifetimeDays: SERVER_LIFETIME_DAYS, usage: 'server', hosts: names(options.engineHosts) },
    {
      name: 'gatewayClient',
      subject: [
        { name: 'commonName', value: GATEWAY_CLIENT_SUBJECT.commonName },
        { shortName: 'OU', value: GATEWAY_CLIENT_SUBJECT.organizationalUnit },
        { name: 'organizationName', value: 'Gatehouse' },
      ],
      lifetimeDays: SERVICE_CLIENT_LIFETIME_DAYS,
      usage: 'client',
      hosts: [],
    },
  ];
}

function ensureCa(dir: string, now: Date, report: BootstrapReport): Issuer {
  const certFile = join(dir, CERT_FILES.ca.cert);
  const keyFile = join(dir, CERT_FILES.ca.key);
  const haveCert = existsSync(certFile);
  const haveKey = existsSync(keyFile);
  if (haveCert && haveKey) {
    const certPem = readCertificate(certFile);
    const keyPem = readPrivateKey(keyFile);
    const x509 = new X509Certificate(certPem);
    if (!x509.checkPrivateKey(createPrivateKey(keyPem))) {
      throw new TlsFileError(`${keyFile} is not the key of ${certFile}: restore the pair, or empty ${dir} to start over with a new CA`);
    }
    const notAfter = new Date(x509.validTo);
    if (notAfter <= now) throw new TlsFileError(`the Gatehouse CA in ${certFile} expired on ${notAfter.toISOString()}: empty ${dir} to create a new one`);
    report.reused.push('ca');
    return issuer(x509, () => ({ cert: forge.pki.certificateFromPem(certPem), key: forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey }));
  }
  if (haveCert !== haveKey) {
    throw new TlsFileError(`${haveCert ? keyFile : certFile} is missing beside ${haveCert ? certFile : keyFile}: restore it, or empty ${dir} to start over with a new CA`);
  }
  const key = newKey(3072);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = serial();
  setValidity(cert, now, CA_LIFETIME_DAYS);
  const subject = [
    { name: 'commonName', value: 'Gatehouse CA' },
    { name: 'organizationName', value: 'Gatehouse' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(key, forge.md.sha256.create());
  writePair(certFile, keyFile, cert, key);
  report.created.push('ca');
  return issuer(new X509Certificate(forge.pki.certificateToPem(cert)), () => ({ cert, key }));
}

/** The CA's forge objects are parsed only when something must be signed: parsing is the slow part. */
function issuer(x509: X509Certificate, load: () => ForgeIssuer): Issuer {
  let loaded: ForgeIssuer | undefined;
  return { x509, forge: () => (loaded ??= load()) };
}

function ensureLeaf(dir: string, ca: Issuer, leaf: Leaf, now: Date, report: BootstrapReport): void {
  const certFile = join(dir, CERT_FILES[leaf.name].cert);
  const keyFile = join(dir, CERT_FILES[leaf.name].key);
  const exists = existsSync(certFile) && existsSync(keyFile);
  if (exists && stillGood(readCertificate(certFile), readPrivateKey(keyFile), ca.x509, leaf, now)) {
    report.reused.push(leaf.name);
    return;
  }
  const signer = ca.forge();
  const key = newKey(2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = serial();
  setValidity(cert, now, leaf.lifetimeDays);
  cert.setSubject(leaf.subject);
  cert.setIssuer(signer.cert.subject.attributes);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: leaf.usage === 'server', clientAuth: leaf.usage === 'client' },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: signer.cert.generateSubjectKeyIdentifier().getBytes() },
  ];
  if (leaf.hosts.length > 0) {
    extensions.push({ name: 'subjectAltName', altNames: leaf.hosts.map(altName) });
  }
  cert.setExtensions(extensions);
  cert.sign(signer.key, forge.md.sha256.create());
  writePair(certFile, keyFile, cert, key);
  (exists ? report.renewed : report.created).push(leaf.name);
}

// Checked with Node's native X.509: parsing RSA keys in forge's pure JavaScript would cost each
// process start about half a second.
function stillGood(certPem: string, keyPem: string, ca: X509Certificate, leaf: Leaf, now: Date): boolean {
  const cert = new X509Certificate(certPem);
  if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return false;
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return false; // another CA's
  const notBefore = new Date(cert.validFrom).getTime();
  const notAfter = new Date(cert.validTo).getTime();
  const renewAt = notAfter - (notAfter - notBefore) / 3;
  if (now.getTime() >= renewAt || now.getTime() < notBefore) return false;
  const present = new Set((cert.subjectAltName ?? '').split(', ').map((n) => canonicalHost(n.replace(/^(DNS|IP Address):/, ''))));
  return leaf.hosts.every((h) => present.has(canonicalHost(h)));
}

/** One spelling per address: "0:0:0:0:0:0:0:1" and "::1" are the same host. */
function canonicalHost(host: string): string {
  return host.includes(':') ? new URL(`http://[${host}]`).hostname : host.toLowerCase();
}

function altName(host: string): { type: number; value?: string; ip?: string } {
  // forge wants IPv6 addresses in full form for type 7; it accepts "::1" as given.
  return /^[\d.]+$/.test(host) || host.includes(':') ? { type: 7, ip: host } : { type: 2, value: host };
}

function newKey(bits: number): forge.pki.rsa.PrivateKey {
  // Node's native generator: forge's pure-JS one takes seconds for 3072 bits.
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  return forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey;
}

function serial(): string {
  // A positive INTEGER (RFC 5280 §4.1.2.2) whose first byte is not zero: a leading 00 followed by a
  // byte below 0x80 is a non-minimal encoding that OpenSSL refuses.
  for (;;) {
    const bytes = randomBytes(16);
    bytes[0] = bytes[0]! & 0x7f;
    if (bytes[0] !== 0) return bytes.toString('hex');
  }
}

function setValidity(cert: forge.pki.Certificate, now: Date, days: number): void {
  cert.validity.notBefore = new Date(now.getTime() - 5 * 60 * 1000); // tolerate small clock skew
  cert.validity.notAfter = new Date(now.getTime() + days * DAY_MS);
}

function writePair(certFile: string, keyFile: string, cert: forge.pki.Certificate, key: forge.pki.rsa.PrivateKey): void {
  // Key first, written 0600 from the start and moved into place whole, so no reader sees a partial file.
  atomicWrite(keyFile, forge.pki.privateKeyToPem(key), 0o600);
  atomicWrite(certFile, forge.pki.certificateToPem(cert), 0o644);
}

function atomicWrite(file: string, text: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode, flag: 'w' });
  chmodSync(tmp, mode); // the umask may have taken bits away from 0644; never adds to 0600
  renameSync(tmp, file);
}

/** A lock folder, so an engine and a gateway started together do not both create a CA. */
function withLock<T>(lock: string, fn: () => T): T {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const held = statSync(lock, { throwIfNoEntry: false });
      if (held && Date.now() - held.mtimeMs > 60_000) rmSync(lock, { recursive: true, force: true }); // left by a crash
      if (Date.now() > deadline) throw new TlsFileError(`another Gatehouse process holds ${lock}; remove it if none is running`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** The certificates the gateway and engine of this configuration need. */
export function ensureServiceCertificates(config: Config, now?: Date): BootstrapReport {
  return ensureCertificates({
    dir: config.certs.dir,
    gatewayHosts: [config.server.host, ...config.server.hostnames],
    engineHosts: [config.engine.host],
    ...(now ? { now } : {}),
  });
}

/** Where the CA certificate that clients should trust lives. */
export function caCertificateFile(dir: string): string {
  return join(dir, CERT_FILES.ca.cert);
}
