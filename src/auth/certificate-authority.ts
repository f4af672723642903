// Gatehouse's own CA: created on first start, reused after, and the service certificates it
// signs (gateway server, engine server, the gateway's client towards the engine). Keys come from
// Node's native generator; certificates are written as every Gatehouse certificate is
// (certificate-encoding.ts): asn1-x509 schemas, Node's signature.
import { createPrivateKey, generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AuthorityKeyIdentifier,
  BasicConstraints,
  ExtendedKeyUsage,
  type Extension,
  GeneralName,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  id_kp_clientAuth,
  id_kp_serverAuth,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  type Name,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
} from '@peculiar/asn1-x509';
import type { Config } from '../config/index.js';
import { CERT_FILES, type CertName, GATEWAY_CLIENT_SUBJECT, readCertificate, readPrivateKey, TlsFileError } from '../wire/index.js';
import { extension, keyIdentifier, NAME_OID, nameOf, randomSerial, signCertificate, toPem } from './certificate-encoding.js';
import { loadSigningCa, type SigningCa } from './signing-ca.js';
import { type CaKeyPair, newCaKeyPairSync } from './ca-key.js';

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
  /** A key pair made ahead for a CA (ca-key.ts); used only when a new CA is created here. */
  caKey?: CaKeyPair | undefined;
}

export interface BootstrapReport {
  created: CertName[];
  renewed: CertName[];
  reused: CertName[];
}

interface Leaf {
  name: Exclude<CertName, 'ca'>;
  subject: Name;
  lifetimeDays: number;
  usage: 'server' | 'client';
  hosts: string[];
  /**
   * The key's kind. The gateway's client certificate is Ed25519: its key also signs every
   * admission ticket (EdDSA, about 20 times cheaper to sign than RSA-2048), and the engine checks
   * a ticket against the key of the certificate that presents it. The servers' keys are ECDSA P-256
   * (RSA-3072's strength): made in well under a millisecond where an RSA-2048 key took 0.1-0.9 s of
   * a first start, and every TLS client Gatehouse meets (Node, Python's ssl, curl, browsers) takes them.
   */
  key: 'ec' | 'ed25519';
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
    const ca = ensureCa(dir, now, report, options.caKey);
    for (const leaf of leaves(options)) ensureLeaf(dir, ca, leaf, now, report);
    return report;
  });
}

function leaves(options: CertificateOptions): Leaf[] {
  const local = ['127.0.0.1', '::1', 'localhost'];
  const wildcard = (h: string) => h === '0.0.0.0' || h === '::';
  const names = (extra: string[]) => [...new Set([...local, ...extra.filter((h) => h && !wildcard(h))])];
  return [
    { name: 'gateway', subject: nameOf([[NAME_OID.commonName, 'gatehouse-gateway']], 'printableString'), lifetimeDays: SERVER_LIFETIME_DAYS, usage: 'server', hosts: names(options.gatewayHosts), key: 'ec' },
    { name: 'engine', subject: nameOf([[NAME_OID.commonName, 'gatehouse-engine']], 'printableString'), lifetimeDays: SERVER_LIFETIME_DAYS, usage: 'server', hosts: names(options.engineHosts), key: 'ec' },
    {
      name: 'gatewayClient',
      subject: nameOf(
        [
          [NAME_OID.commonName, GATEWAY_CLIENT_SUBJECT.commonName],
          [NAME_OID.organizationalUnit, GATEWAY_CLIENT_SUBJECT.organizationalUnit],
          [NAME_OID.organization, 'Gatehouse'],
        ],
        'printableString',
      ),
      lifetimeDays: SERVICE_CLIENT_LIFETIME_DAYS,
      usage: 'client',
      hosts: [],
      key: 'ed25519',
    },
  ];
}

function ensureCa(dir: string, now: Date, report: BootstrapReport, caKey?: CaKeyPair): SigningCa {
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
    return loadSigningCa({ caCertPem: certPem, caKeyPem: keyPem });
  }
  if (haveCert !== haveKey) {
    throw new TlsFileError(`${haveCert ? keyFile : certFile} is missing beside ${haveCert ? certFile : keyFile}: restore it, or empty ${dir} to start over with a new CA`);
  }
  const { publicKey: caPublic, privateKey } = caKey ?? newCaKeyPairSync();
  const spki = AsnConvert.parse(caPublic.export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo);
  const subject = nameOf(
    [
      [NAME_OID.commonName, 'Gatehouse CA'],
      [NAME_OID.organization, 'Gatehouse'],
    ],
    'printableString',
  );
  const der = signCertificate(
    {
      serial: randomSerial(),
      issuer: subject,
      subject,
      ...validity(now, CA_LIFETIME_DAYS),
      subjectPublicKeyInfo: spki,
      extensions: [
        extension(id_ce_basicConstraints, new BasicConstraints({ cA: true, pathLenConstraint: 0 }), true),
        extension(id_ce_keyUsage, new KeyUsage(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign), true),
        subjectKeyIdentifier(spki),
      ],
    },
    privateKey,
  );
  const certPem = toPem('CERTIFICATE', der);
  const keyPem = writePair(certFile, keyFile, certPem, privateKey);
  report.created.push('ca');
  return loadSigningCa({ caCertPem: certPem, caKeyPem: keyPem });
}

function ensureLeaf(dir: string, ca: SigningCa, leaf: Leaf, now: Date, report: BootstrapReport): void {
  const certFile = join(dir, CERT_FILES[leaf.name].cert);
  const keyFile = join(dir, CERT_FILES[leaf.name].key);
  const exists = existsSync(certFile) && existsSync(keyFile);
  if (exists && stillGood(readCertificate(certFile), readPrivateKey(keyFile), ca.x509, leaf, now)) {
    report.reused.push(leaf.name);
    return;
  }
  const { privateKey, spki } = leaf.key === 'ed25519' ? newEd25519Key() : newEcKey();
  // An Ed25519 or EC key signs and cannot encipher: only digitalSignature (RFC 8410, RFC 5480 §3).
  const usageFlags = KeyUsageFlags.digitalSignature;
  const extensions: Extension[] = [
    extension(id_ce_basicConstraints, new BasicConstraints({ cA: false }), true),
    extension(id_ce_keyUsage, new KeyUsage(usageFlags), true),
    extension(id_ce_extKeyUsage, new ExtendedKeyUsage([leaf.usage === 'server' ? id_kp_serverAuth : id_kp_clientAuth])),
    subjectKeyIdentifier(spki),
    extension(id_ce_authorityKeyIdentifier, new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(ca.keyId) })),
  ];
  if (leaf.hosts.length > 0) extensions.push(extension(id_ce_subjectAltName, new SubjectAlternativeName(leaf.hosts.map(altName))));
  const der = signCertificate({ serial: randomSerial(), issuer: ca.subject, subject: leaf.subject, ...validity(now, leaf.lifetimeDays), subjectPublicKeyInfo: spki, extensions }, ca.key);
  writePair(certFile, keyFile, toPem('CERTIFICATE', der), privateKey);
  (exists ? report.renewed : report.created).push(leaf.name);
}

// Checked with Node's native X.509: this runs at every process start, so it stays cheap.
function stillGood(certPem: string, keyPem: string, ca: X509Certificate, leaf: Leaf, now: Date): boolean {
  const cert = new X509Certificate(certPem);
  const key = createPrivateKey(keyPem);
  if (!cert.checkPrivateKey(key)) return false;
  // A key of the wrong kind (the RSA certificates of earlier versions) is replaced: renewed now.
  if (key.asymmetricKeyType !== leaf.key) return false;
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

function altName(host: string): GeneralName {
  return /^[\d.]+$/.test(host) || host.includes(':') ? new GeneralName({ iPAddress: host }) : new GeneralName({ dNSName: host });
}

/** A fresh ECDSA P-256 key (the servers' certificates). */
function newEcKey(): { privateKey: KeyObject; spki: SubjectPublicKeyInfo } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, spki: AsnConvert.parse(publicKey.export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo) };
}

/** A fresh Ed25519 key (the gateway's client certificate: its ticket-signing key too). */
function newEd25519Key(): { privateKey: KeyObject; spki: SubjectPublicKeyInfo } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { privateKey, spki: AsnConvert.parse(publicKey.export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo) };
}

function subjectKeyIdentifier(spki: SubjectPublicKeyInfo): Extension {
  return extension(id_ce_subjectKeyIdentifier, new SubjectKeyIdentifier(keyIdentifier(spki.subjectPublicKey)));
}

function validity(now: Date, days: number): { notBefore: Date; notAfter: Date } {
  // Whole seconds, as X.509 writes them; five minutes back to tolerate small clock skew.
  const start = Math.floor(now.getTime() / 1000) * 1000;
  return { notBefore: new Date(start - 5 * 60 * 1000), notAfter: new Date(start + days * DAY_MS) };
}

/** Writes the pair; returns the key's PEM (PKCS#1 for the RSA CA, as before; PKCS#8 for EC and Ed25519). */
function writePair(certFile: string, keyFile: string, certPem: string, key: KeyObject): string {
  // Key first, written 0600 from the start and moved into place whole, so no reader sees a partial file.
  const keyPem = key.export({ type: key.asymmetricKeyType === 'rsa' ? 'pkcs1' : 'pkcs8', format: 'pem' }).toString();
  atomicWrite(keyFile, keyPem, 0o600);
  atomicWrite(certFile, certPem, 0o644);
  return keyPem;
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
export function ensureServiceCertificates(config: Config, now?: Date, caKey?: CaKeyPair): BootstrapReport {
  return ensureCertificates({
    dir: config.certs.dir,
    gatewayHosts: [config.server.host, ...config.server.hostnames],
    engineHosts: [config.engine.host],
    ...(now ? { now } : {}),
    caKey,
  });
}

/** Where the CA certificate that clients should trust lives. */
export function caCertificateFile(dir: string): string {
  return join(dir, CERT_FILES.ca.cert);
}
