import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { CertificateRequestError, createKeyAndCsr } from '../src/auth/certificate-request.js';
import { buildCrl } from '../src/auth/crl.js';
import { ensureCertificates } from '../src/auth/index.js';
import { createUserCertificateSigner, type UserCertificateSigner, userFromCertificate } from '../src/auth/user-certificates.js';
import { CERT_FILES } from '../src/wire/index.js';
import { clientCertificate } from './support/client-cert.js';

const TTL = 12 * 60 * 60;

let dir: string; // scratch files for openssl
let certs: string; // the real CA, from the same bootstrap the gateway runs
let caCertPem: string;
let caKeyPem: string;
let signer: UserCertificateSigner;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-user-certs-'));
  certs = join(dir, 'certs');
  ensureCertificates({ dir: certs, gatewayHosts: [], engineHosts: [] });
  caCertPem = readFileSync(join(certs, CERT_FILES.ca.cert), 'utf8');
  caKeyPem = readFileSync(join(certs, CERT_FILES.ca.key), 'utf8');
  signer = createUserCertificateSigner({ caCertPem, caKeyPem });
});

const caFile = () => join(certs, CERT_FILES.ca.cert);

function openssl(args: string[], input?: string): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8', input, cwd: dir });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

let fileCount = 0;
function file(name: string, text: string): string {
  const path = join(dir, `${++fileCount}-${name}`);
  writeFileSync(path, text);
  return path;
}

/** A key and CSR made by openssl itself, as a user following our error message would. */
function opensslCsr(newkey: string[], extra: string[] = []): string {
  const r = openssl(['req', '-new', ...newkey, '-nodes', '-keyout', join(dir, `${++fileCount}.key`), '-subj', '/CN=alice', ...extra]);
  expect(r.status, r.out).toBe(0);
  return r.out.slice(r.out.indexOf('-----BEGIN CERTIFICATE REQUEST-----'));
}

function issueFor(user: string, csrPem = createKeyAndCsr().csrPem) {
  return signer.issue({ csrPem, subject: { user, groups: ['analysts'] }, ttlSeconds: TTL });
}

function refusal(csrPem: unknown): CertificateRequestError {
  try {
    signer.issue({ csrPem: csrPem as string, subject: { user: 'alice' }, ttlSeconds: TTL });
  } catch (err) {
    expect(err).toBeInstanceOf(CertificateRequestError);
    return err as CertificateRequestError;
  }
  throw new Error('the CSR was accepted');
}

describe('user certificate issuance', () => {
  it('issues a certificate that openssl and Node verify against the CA', () => {
    const { keyPem, csrPem } = createKeyAndCsr({ user: 'alice' });
    const issued = issueFor('alice', csrPem);
    const cert = new X509Certificate(issued.certificate);
    const ca = new X509Certificate(caCertPem);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
    const certFile = file('alice.crt', issued.certificate);
    expect(openssl(['verify', '-CAfile', caFile(), certFile]).out).toContain(`${certFile}: OK`);
    expect(openssl(['verify', '-purpose', 'sslclient', '-CAfile', caFile(), certFile]).status).toBe(0);
    expect(openssl(['verify', '-purpose', 'sslserver', '-CAfile', caFile(), certFile]).status).not.toBe(0);
  });

  it('names the caller: CN, OU=users, the SAN URI; a client-only, non-CA certificate', () => {
    const issued = issueFor('alice');
    const cert = new X509Certificate(issued.certificate);
    expect(cert.subject.split('\n')).toEqual(['CN=alice', 'OU=users', 'O=Gatehouse']);
    expect(cert.issuer).toBe(new X509Certificate(caCertPem).subject);
    expect(cert.subjectAltName).toBe('URI:urn:gatehouse:user:alice');
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']); // extKeyUsage: clientAuth only
    expect(cert.ca).toBe(false);
    const text = openssl(['x509', '-noout', '-text', '-in', file('alice.crt', issued.certificate)]).out;
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment\n/);
    expect(text).toMatch(/X509v3 Extended Key Usage: \s*TLS Web Client Authentication\n/);
    expect(text).toContain('Signature Algorithm: sha256WithRSAEncryption');
    expect(text).toContain('X509v3 Subject Key Identifier');
    const caKeyId = /X509v3 Subject Key Identifier: \s*([0-9A-F:]+)/.exec(openssl(['x509', '-noout', '-text', '-in', caFile()]).out)?.[1];
    expect(caKeyId).toBeTruthy();
    expect(text).toMatch(new RegExp(`X509v3 Authority Key Identifier: \\s*(keyid:)?${caKeyId}`));
  });

  it('returns the serial, the validity as written and the SHA-256 fingerprint', () => {
    const now = new Date('2030-01-02T03:04:05.678Z');
    const { csrPem } = createKeyAndCsr();
    const issued = signer.issue({ csrPem, subject: { user: 'alice' }, ttlSeconds: TTL, now });
    const cert = new X509Certificate(issued.certificate);
    expect(issued.serial).toMatch(/^[0-7][0-9a-f]{31}$/);
    expect(issued.serial).not.toMatch(/^00/);
    expect(issued.serial).toBe(cert.serialNumber.toLowerCase());
    expect(issued.fingerprint).toBe(cert.fingerprint256.replaceAll(':', '').toLowerCase());
    expect(issued.not_before.toISOString()).toBe('2030-01-02T03:03:05.000Z'); // 60 s of clock skew
    expect(issued.not_after.toISOString()).toBe('2030-01-02T15:04:05.000Z');
    expect(new Date(cert.validFrom).getTime()).toBe(issued.not_before.getTime());
    expect(new Date(cert.validTo).getTime()).toBe(issued.not_after.getTime());
    expect(new Date(cert.validTo).getTime() - new Date(cert.validFrom).getTime()).toBe((TTL + 60) * 1000);
  });

  it('gives every certificate its own serial', () => {
    const { csrPem } = createKeyAndCsr();
    const serials = new Set(Array.from({ length: 20 }, () => issueFor('alice', csrPem).serial));
    expect(serials.size).toBe(20);
  });

  it("certifies the CSR's key for the caller; a CSR asking for anything more is refused, saying what", () => {
    const greedy = opensslCsr(
      ['-newkey', 'rsa:2048'],
      [
        '-subj', '/CN=bob/OU=admins/O=Evil/emailAddress=bob@example.org',
        '-addext', 'subjectAltName=URI:urn:gatehouse:user:bob,DNS:bob.example.org,email:bob@example.org',
        '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'extendedKeyUsage=serverAuth,codeSigning',
        '-addext', 'keyUsage=keyCertSign,cRLSign',
        '-addext', 'nameConstraints=permitted;DNS:example.org',
      ],
    );
    const error = refusal(greedy);
    expect(error.reason).toBe('names_another_user');
    expect(error.message).toBe(
      [
        'the CSR names bob; a certificate names only you (alice)',
        "the CSR asks for OU=admins; a person's certificate is always OU=users (groups come from your login, never from a certificate)",
        "the CSR's subject asks for emailAddress; only CN=alice (and OU=users, O, C, ST, L) may be given",
        'the CSR asks for the alternative names URI:urn:gatehouse:user:bob, DNS:bob.example.org, email:bob@example.org; a certificate names only you (alice) (URI:urn:gatehouse:user:alice)',
        'the CSR asks to be a CA (basicConstraints CA:TRUE); a client certificate never signs others',
        'the CSR asks for the key usages keyCertSign, cRLSign; a client certificate has only digitalSignature and keyEncipherment',
        'the CSR asks for the extended key usages serverAuth, codeSigning; a client certificate serves only clientAuth',
        'the CSR asks for the extension nameConstraints, which Gatehouse never issues',
      ].join('; ') + ': ask with an empty subject or -subj /CN=alice and no extensions (`gatehouse cert` does)',
    );
    // Each ask alone is refused with its own code; a hostile name is shown escaped, never raw.
    const alone: [string[], string][] = [
      [['-subj', '/CN=gateway/OU=services'], 'names_a_service'],
      [['-subj', '/CN=alice/OU=services'], 'names_a_service'],
      [['-addext', 'basicConstraints=CA:TRUE'], 'asks_for_ca'],
      [['-addext', 'keyUsage=digitalSignature,keyCertSign'], 'asks_for_key_usage'],
      [['-addext', 'extendedKeyUsage=clientAuth,anyExtendedKeyUsage'], 'asks_for_key_usage'],
      [['-addext', 'subjectAltName=DNS:alice.example.org'], 'names_another_user'],
      [['-subj', '/CN=alice/UID=bob'], 'asks_for_subject_field'],
      [['-addext', 'certificatePolicies=1.2.3.4'], 'asks_for_extension'],
    ];
    for (const [extra, reason] of alone) expect(refusal(opensslCsr(['-newkey', 'rsa:2048'], extra)).reason, extra.join(' ')).toBe(reason);
    const hostile = refusal(createKeyAndCsr({ user: 'bob\u001b]0;owned\u0007\u202e' }).csrPem);
    expect(hostile.message).toMatch(/^the CSR names "bob\\u001b\]0;owned\\u0007\\u202e"; /);

    // What a certificate for the caller has may be asked for, and is what is issued.
    const csrPem = opensslCsr(
      ['-newkey', 'rsa:2048'],
      ['-subj', '/C=DE/O=Example/OU=users/CN=alice', '-addext', 'subjectAltName=URI:urn:gatehouse:user:alice', '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=digitalSignature,keyEncipherment', '-addext', 'extendedKeyUsage=clientAuth', '-addext', 'subjectKeyIdentifier=hash'],
    );
    const issued = issueFor('alice', csrPem);
    const cert = new X509Certificate(issued.certificate);
    expect(cert.subject.split('\n')).toEqual(['CN=alice', 'OU=users', 'O=Gatehouse']);
    expect(cert.subjectAltName).toBe('URI:urn:gatehouse:user:alice');
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(cert.ca).toBe(false);
    const text = openssl(['x509', '-noout', '-text', '-in', file('alice.crt', issued.certificate)]).out;
    expect(text.toLowerCase()).not.toMatch(/example|\bc ?= ?de\b/);
    const csrKey = createPublicKey(openssl(['req', '-noout', '-pubkey'], csrPem).out);
    expect(cert.publicKey.export({ format: 'jwk' })).toEqual(csrKey.export({ format: 'jwk' }));
    // An empty subject (what `gatehouse cert` sends) and the caller's CN (createKeyAndCsr({ user })) are signed.
    expect(issueFor('alice', createKeyAndCsr().csrPem).certificate).toContain('BEGIN CERTIFICATE');
    expect(issueFor('alice', createKeyAndCsr({ user: 'alice' }).csrPem).certificate).toContain('BEGIN CERTIFICATE');
    expect(refusal(createKeyAndCsr({ user: 'bob' }).csrPem).message).toMatch(/^the CSR names bob; a certificate names only you \(alice\): /);
  });

  it('encodes a username in the SAN URI and reads it back', () => {
    const issued = issueFor('a.b@corp');
    expect(new X509Certificate(issued.certificate).subjectAltName).toBe('URI:urn:gatehouse:user:a.b%40corp');
    expect(userFromCertificate(issued.certificate)).toEqual({ user: 'a.b@corp', serial: issued.serial });
  });

  it('accepts a CSR made by openssl, and a 3072-bit one of ours', () => {
    expect(issueFor('alice', opensslCsr(['-newkey', 'rsa:2048'])).certificate).toContain('BEGIN CERTIFICATE');
    const { keyPem, csrPem } = createKeyAndCsr({ user: 'alice', bits: 3072 });
    expect(createPrivateKey(keyPem).asymmetricKeyDetails?.modulusLength).toBe(3072);
    expect(issueFor('alice', csrPem).certificate).toContain('BEGIN CERTIFICATE');
  });

  it('refuses to name an invalid username, as a server error rather than a client one', () => {
    const { csrPem } = createKeyAndCsr();
    expect(() => signer.issue({ csrPem, subject: { user: 'bob,OU=services' }, ttlSeconds: TTL })).toThrow('invalid username');
    expect(() => signer.issue({ csrPem, subject: { user: 'alice' }, ttlSeconds: 0 })).toThrow('ttlSeconds');
  });
});

describe('refused certificate requests', () => {
  it('refuses a CSR whose signature was tampered with', () => {
    const { csrPem } = createKeyAndCsr({ user: 'alice' });
    const der = Buffer.from(csrPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, ''), 'base64');
    const pem = (bytes: Buffer) => `-----BEGIN CERTIFICATE REQUEST-----\n${bytes.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const badSignature = Buffer.from(der);
    badSignature[badSignature.length - 10]! ^= 0x01;
    expect(refusal(pem(badSignature)).reason).toBe('bad_signature');
    const badSubject = Buffer.from(der);
    const cn = badSubject.indexOf('alice');
    badSubject[cn] = 'm'.charCodeAt(0); // CN=mlice: the signature no longer covers what is sent
    const error = refusal(pem(badSubject));
    expect(error.reason).toBe('bad_signature');
    expect(error.message).toBe("the CSR's signature does not verify: it was altered, or not signed by the key it carries");
  });

  it('refuses an EC or Ed25519 key with a clear message that says how to make an RSA one', () => {
    const ec = refusal(opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']));
    expect(ec.reason).toBe('unsupported_key');
    expect(ec.message).toMatch(/^only RSA keys are supported, and this CSR carries an EC key: generate one with `gatehouse cert`, or: openssl req -new -newkey rsa:3072/);
    const ed = refusal(opensslCsr(['-newkey', 'ed25519']));
    expect(ed.reason).toBe('unsupported_key');
    expect(ed.message).toContain('only RSA keys are supported, and this CSR carries an ed25519 key');
  });

  it('refuses an RSA key under 2048 bits', () => {
    const error = refusal(opensslCsr(['-newkey', 'rsa:1024']));
    expect(error.reason).toBe('weak_key');
    expect(error.message).toContain("the CSR's RSA key has 1024 bits; at least 2048 are required");
  });

  it('refuses a CSR signed with anything but SHA-2', () => {
    expect(refusal(opensslCsr(['-newkey', 'rsa:2048', '-sha1'])).reason).toBe('unsupported_signature');
  });

  it('refuses garbage, a certificate, an empty string and a truncated CSR', () => {
    const { csrPem } = createKeyAndCsr();
    const body = csrPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, '');
    const truncated = `-----BEGIN CERTIFICATE REQUEST-----\n${Buffer.from(body, 'base64').subarray(0, 200).toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const random = `-----BEGIN CERTIFICATE REQUEST-----\n${Buffer.from('not a certificate request at all').toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    for (const input of ['hello', '', caCertPem, truncated, random, csrPem + csrPem, undefined, 42, 'x'.repeat(100_000)]) {
      const error = refusal(input);
      expect(error.reason, String(input).slice(0, 40)).toBe('malformed');
      expect(error.message).toMatch(/^(expected one PEM certificate signing request|the CSR is not valid DER)/);
    }
  });
});

describe('reading the user from a certificate', () => {
  it('returns the user and serial of a user certificate, from PEM or X509Certificate', () => {
    const issued = issueFor('alice');
    expect(userFromCertificate(issued.certificate)).toEqual({ user: 'alice', serial: issued.serial });
    expect(userFromCertificate(new X509Certificate(issued.certificate))).toEqual({ user: 'alice', serial: issued.serial });
  });

  it("returns null for the gateway's service certificate, a user-looking certificate without the SAN, and garbage", () => {
    expect(userFromCertificate(readFileSync(join(certs, CERT_FILES.gatewayClient.cert), 'utf8'))).toBeNull();
    expect(userFromCertificate(readFileSync(join(certs, CERT_FILES.gateway.cert), 'utf8'))).toBeNull();
    expect(userFromCertificate(clientCertificate(certs, { CN: 'alice', OU: 'users' }).cert)).toBeNull();
    expect(userFromCertificate('not a certificate')).toBeNull();
  });

  it('reads the user from the peer certificate of a real mTLS connection', async () => {
    const { keyPem, csrPem } = createKeyAndCsr({ user: 'alice' });
    const issued = issueFor('alice', csrPem);
    const server = createServer({
      cert: readFileSync(join(certs, CERT_FILES.gateway.cert)),
      key: readFileSync(join(certs, CERT_FILES.gateway.key)),
      ca: caCertPem,
      requestCert: true,
      rejectUnauthorized: true,
    });
    const seen = new Promise<unknown>((resolve, reject) => {
      server.on('secureConnection', (socket) => {
        resolve(userFromCertificate(socket.getPeerX509Certificate()!));
        socket.end();
      });
      server.on('tlsClientError', reject); // a refused client certificate fails the test, not times it out
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const socket = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', servername: 'localhost', ca: caCertPem, cert: issued.certificate, key: keyPem });
    socket.on('error', () => undefined);
    try {
      expect(await seen).toEqual({ user: 'alice', serial: issued.serial });
    } finally {
      socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('certificate revocation list', () => {
  const day = 24 * 60 * 60 * 1000;

  it('is a v2 CRL that openssl verifies, and marks a revoked certificate as revoked', () => {
    const revoked = issueFor('alice');
    const kept = issueFor('bob');
    const now = new Date();
    const crl = buildCrl({ caCertPem, caKeyPem, revoked: [{ serial: revoked.serial, revokedAt: now }], crlNumber: 7, thisUpdate: now, nextUpdate: new Date(now.getTime() + day) });
    expect(crl.pem).toMatch(/^-----BEGIN X509 CRL-----\n/);
    const crlFile = file('crl.pem', crl.pem);
    expect(openssl(['crl', '-in', crlFile, '-CAfile', caFile(), '-noout']).out).toContain('verify OK');
    const text = openssl(['crl', '-in', crlFile, '-noout', '-text']).out;
    expect(text).toContain('Version 2 (0x1)');
    expect(text).toContain('Signature Algorithm: sha256WithRSAEncryption');
    expect(text).toMatch(/X509v3 CRL Number: \s*7\n/);
    expect(text).toContain('X509v3 Authority Key Identifier');
    expect(text).toContain(`Serial Number: ${revoked.serial.toUpperCase()}`);
    expect(text).not.toContain(kept.serial.toUpperCase());

    const revokedCheck = openssl(['verify', '-crl_check', '-CRLfile', crlFile, '-CAfile', caFile(), file('revoked.crt', revoked.certificate)]);
    expect(revokedCheck.status).not.toBe(0);
    expect(revokedCheck.out).toContain('certificate revoked');
    const keptFile = file('kept.crt', kept.certificate);
    const keptCheck = openssl(['verify', '-crl_check', '-CRLfile', crlFile, '-CAfile', caFile(), keptFile]);
    expect(keptCheck.status, keptCheck.out).toBe(0);
    expect(keptCheck.out).toContain(`${keptFile}: OK`);
  });

  it('is valid with nothing revoked', () => {
    const now = new Date();
    const crl = buildCrl({ caCertPem, caKeyPem, revoked: [], crlNumber: 1n, thisUpdate: now, nextUpdate: new Date(now.getTime() + day) });
    const crlFile = file('empty-crl.pem', crl.pem);
    expect(openssl(['crl', '-in', crlFile, '-CAfile', caFile(), '-noout']).out).toContain('verify OK');
    expect(openssl(['crl', '-in', crlFile, '-noout', '-text']).out).toContain('No Revoked Certificates.');
    const certFile = file('alice.crt', issueFor('alice').certificate);
    expect(openssl(['verify', '-crl_check', '-CRLfile', crlFile, '-CAfile', caFile(), certFile]).status).toBe(0);
  });

  it('takes large CRL numbers, many entries, times after 2049, and lists a serial revoked twice once', () => {
    const { csrPem } = createKeyAndCsr();
    const serials = Array.from({ length: 50 }, () => issueFor('alice', csrPem).serial);
    const thisUpdate = new Date('2049-12-31T00:00:00Z');
    const revoked = [...serials.map((serial) => ({ serial, revokedAt: thisUpdate })), { serial: serials[0]!, revokedAt: new Date(thisUpdate.getTime() + day) }];
    const crl = buildCrl({ caCertPem, caKeyPem, revoked, crlNumber: 2n ** 80n, thisUpdate, nextUpdate: new Date('2050-01-07T00:00:00Z') });
    const crlFile = file('big-crl.pem', crl.pem);
    expect(openssl(['crl', '-in', crlFile, '-CAfile', caFile(), '-noout']).out).toContain('verify OK');
    const text = openssl(['crl', '-in', crlFile, '-noout', '-text']).out;
    expect(text).toContain('Next Update: Jan  7 00:00:00 2050 GMT');
    expect(text.match(/Serial Number:/g)).toHaveLength(50);
    expect(text).toMatch(new RegExp(`X509v3 CRL Number: \\s*${2n ** 80n}\n`));
  });

  it('refuses a malformed serial', () => {
    const now = new Date();
    expect(() => buildCrl({ caCertPem, caKeyPem, revoked: [{ serial: 'xyz', revokedAt: now }], crlNumber: 1, thisUpdate: now, nextUpdate: new Date(now.getTime() + day) })).toThrow('invalid certificate serial');
  });
});

describe('key and CSR for the CLI', () => {
  it('makes a PKCS#8 key and a CSR that openssl verifies', () => {
    const { keyPem, csrPem } = createKeyAndCsr({ user: 'alice' });
    expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(createPrivateKey(keyPem).asymmetricKeyDetails?.modulusLength).toBe(2048);
    const r = openssl(['req', '-in', file('alice.csr', csrPem), '-noout', '-verify', '-subject']);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/verify OK/);
    expect(r.out).toContain('subject=CN = alice');
  });
});
