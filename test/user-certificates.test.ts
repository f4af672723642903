// @peculiar/x509 stands in for what a browser page would use to make a CSR from a WebCrypto key; it
// resolves its algorithms through tsyringe, which needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, webcrypto, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateRequestError, createKeyAndCsr } from '../src/auth/certificate-request.js';
import { buildCrl } from '../src/auth/crl.js';
import { ensureCertificates } from '../src/auth/index.js';
import { createUserCertificateSigner, type UserCertificateSigner, userFromCertificate } from '../src/auth/user-certificates.js';
import { CERT_FILES } from '../src/wire/index.js';
import { clientCertificate } from './support/client-cert.js';
import { fetchTls } from './support/https.js';
import { Stack } from './support/stack.js';

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
function opensslKeyAndCsr(newkey: string[], extra: string[] = []): { keyPem: string; csrPem: string } {
  const keyFile = join(dir, `${++fileCount}.key`);
  const r = openssl(['req', '-new', ...newkey, '-nodes', '-keyout', keyFile, '-subj', '/CN=alice', ...extra]);
  expect(r.status, r.out).toBe(0);
  // Only the PEM block: openssl's stderr follows it in `out` (a "-----" line after key generation,
  // read as base64url by a test that decodes the text itself, became trailing bytes: seen once in CI).
  const pem = /-----BEGIN CERTIFICATE REQUEST-----[\s\S]*?-----END CERTIFICATE REQUEST-----\n/.exec(r.out)?.[0];
  expect(pem, r.out).toBeDefined();
  return { keyPem: readFileSync(keyFile, 'utf8'), csrPem: pem! };
}
const opensslCsr = (newkey: string[], extra: string[] = []) => opensslKeyAndCsr(newkey, extra).csrPem;

/** The `openssl req -newkey` arguments of every key kind a CSR may carry. */
const ACCEPTED_KEYS: { kind: string; newkey: string[]; text: RegExp }[] = [
  { kind: 'EC P-256', newkey: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], text: /Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/ },
  { kind: 'EC P-384', newkey: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'], text: /Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-384/ },
  { kind: 'Ed25519', newkey: ['-newkey', 'ed25519'], text: /Public Key Algorithm: ED25519/ },
  { kind: 'RSA 3072', newkey: ['-newkey', 'rsa:3072'], text: /Public-Key: \(3072 bit\)/ },
];

/** What a browser does: a WebCrypto ECDSA P-256 key pair and a CSR signed by it, no openssl. */
async function webCryptoKeyAndCsr(): Promise<{ keyPem: string; csrPem: string }> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=alice', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { keyPem: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString(), csrPem: csr.toString('pem') };
}

async function issueFor(user: string, csrPem?: string) {
  return signer.issue({ csrPem: csrPem ?? (await createKeyAndCsr()).csrPem, subject: { user, groups: ['analysts'] }, ttlSeconds: TTL });
}

async function refusal(csrPem: unknown): Promise<CertificateRequestError> {
  try {
    await signer.issue({ csrPem: csrPem as string, subject: { user: 'alice' }, ttlSeconds: TTL });
  } catch (err) {
    expect(err).toBeInstanceOf(CertificateRequestError);
    return err as CertificateRequestError;
  }
  throw new Error('the CSR was accepted');
}

/** A TLS server that requires a client certificate from our CA; resolves with the user it names. */
async function presentOverTls(cert: string, key: string): Promise<unknown> {
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
  const socket = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', servername: 'localhost', ca: caCertPem, cert, key });
  socket.on('error', () => undefined);
  try {
    return await seen;
  } finally {
    socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('user certificate issuance', () => {
  it('issues a certificate that openssl and Node verify against the CA', async () => {
    const { keyPem, csrPem } = await createKeyAndCsr({ user: 'alice' });
    const issued = await issueFor('alice', csrPem);
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

  it('names the caller: CN, OU=users, the SAN URI; a client-only, non-CA certificate', async () => {
    const issued = await issueFor('alice');
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
    // The issuer is the CA's subject byte for byte, strings and all (path building compares them).
    const issuerOf = (pem: string, what: 'issuer' | 'subject') => openssl(['x509', '-noout', `-${what}`, '-nameopt', 'multiline,show_type'], pem).out.replace(/^\w+=/, '');
    expect(issuerOf(issued.certificate, 'issuer')).toBe(issuerOf(caCertPem, 'subject'));
  });

  it('returns the serial, the validity as written and the SHA-256 fingerprint', async () => {
    const now = new Date('2030-01-02T03:04:05.678Z');
    const { csrPem } = await createKeyAndCsr();
    const issued = await signer.issue({ csrPem, subject: { user: 'alice' }, ttlSeconds: TTL, now });
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

  it('gives every certificate its own serial', async () => {
    const { csrPem } = await createKeyAndCsr();
    const serials = new Set(await Promise.all(Array.from({ length: 20 }, async () => (await issueFor('alice', csrPem)).serial)));
    expect(serials.size).toBe(20);
  });

  it("certifies the CSR's key for the caller; a CSR asking for anything more is refused, saying what", async () => {
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
    const error = await refusal(greedy);
    expect(error.reason).toBe('names_another_user');
    expect(error.message).toBe(
      `${[
        'the CSR names bob; a certificate names only you (alice)',
        "the CSR asks for OU=admins; a person's certificate is always OU=users (groups come from your login, never from a certificate)",
        "the CSR's subject asks for emailAddress; only CN=alice (and OU=users, O, C, ST, L) may be given",
        'the CSR asks for the alternative names URI:urn:gatehouse:user:bob, DNS:bob.example.org, email:bob@example.org; a certificate names only you (alice) (URI:urn:gatehouse:user:alice)',
        'the CSR asks to be a CA (basicConstraints CA:TRUE); a client certificate never signs others',
        'the CSR asks for the key usages keyCertSign, cRLSign; a client certificate has only digitalSignature and keyEncipherment',
        'the CSR asks for the extended key usages serverAuth, codeSigning; a client certificate serves only clientAuth',
        'the CSR asks for the extension nameConstraints, which Gatehouse never issues',
      ].join('; ')}: ask with an empty subject or -subj /CN=alice and no extensions (\`gatehouse cert\` does)`,
    );
    // Each ask alone is refused with its own code; a hostile name is shown escaped, never raw.
    const alone: [string[], string][] = [
      [['-subj', '/CN=gateway/OU=services'], 'names_a_service'],
      [['-subj', '/CN=alice/OU=services'], 'names_a_service'],
      [['-addext', 'basicConstraints=CA:TRUE'], 'asks_for_ca'],
      [['-addext', 'keyUsage=digitalSignature,keyCertSign'], 'asks_for_key_usage'],
      [['-addext', 'extendedKeyUsage=clientAuth,anyExtendedKeyUsage'], 'asks_for_key_usage'],
      [['-addext', 'subjectAltName=DNS:alice.example.org'], 'names_another_user'],
      [['-addext', 'subjectAltName=IP:10.1.2.3'], 'names_another_user'],
      [['-subj', '/CN=alice/UID=bob'], 'asks_for_subject_field'],
      [['-addext', 'certificatePolicies=1.2.3.4'], 'asks_for_extension'],
    ];
    for (const [extra, reason] of alone) expect((await refusal(opensslCsr(['-newkey', 'rsa:2048'], extra))).reason, extra.join(' ')).toBe(reason);
    expect((await refusal(opensslCsr(['-newkey', 'rsa:2048'], ['-addext', 'subjectAltName=IP:10.1.2.3']))).message).toContain('the CSR asks for the alternative name IP:10.1.2.3;');
    const hostile = await refusal((await createKeyAndCsr({ user: 'bob\u001b]0;owned\u0007\u202e' })).csrPem);
    expect(hostile.message).toMatch(/^the CSR names "bob\\u001b\]0;owned\\u0007\\u202e"; /);

    // What a certificate for the caller has may be asked for, and is what is issued.
    const csrPem = opensslCsr(
      ['-newkey', 'rsa:2048'],
      ['-subj', '/C=DE/O=Example/OU=users/CN=alice', '-addext', 'subjectAltName=URI:urn:gatehouse:user:alice', '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=digitalSignature,keyEncipherment', '-addext', 'extendedKeyUsage=clientAuth', '-addext', 'subjectKeyIdentifier=hash'],
    );
    const issued = await issueFor('alice', csrPem);
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
    expect((await issueFor('alice', (await createKeyAndCsr()).csrPem)).certificate).toContain('BEGIN CERTIFICATE');
    expect((await issueFor('alice', (await createKeyAndCsr({ user: 'alice' })).csrPem)).certificate).toContain('BEGIN CERTIFICATE');
    expect((await refusal((await createKeyAndCsr({ user: 'bob' })).csrPem)).message).toMatch(/^the CSR names bob; a certificate names only you \(alice\): /);
  });

  it('encodes a username in the SAN URI and reads it back', async () => {
    const issued = await issueFor('a.b@corp');
    expect(new X509Certificate(issued.certificate).subjectAltName).toBe('URI:urn:gatehouse:user:a.b%40corp');
    expect(userFromCertificate(issued.certificate)).toEqual({ user: 'a.b@corp', serial: issued.serial });
  });

  it('accepts a CSR made by openssl, and a 3072-bit one of ours', async () => {
    expect((await issueFor('alice', opensslCsr(['-newkey', 'rsa:2048']))).certificate).toContain('BEGIN CERTIFICATE');
    const { keyPem, csrPem } = await createKeyAndCsr({ user: 'alice', bits: 3072 });
    expect(createPrivateKey(keyPem).asymmetricKeyDetails?.modulusLength).toBe(3072);
    expect((await issueFor('alice', csrPem)).certificate).toContain('BEGIN CERTIFICATE');
  });

  it('refuses to name an invalid username, as a server error rather than a client one', async () => {
    const { csrPem } = await createKeyAndCsr();
    await expect(signer.issue({ csrPem, subject: { user: 'bob,OU=services' }, ttlSeconds: TTL })).rejects.toThrow('invalid username');
    await expect(signer.issue({ csrPem, subject: { user: 'alice' }, ttlSeconds: 0 })).rejects.toThrow('ttlSeconds');
  });
});

describe('key types: RSA, ECDSA P-256/P-384 and Ed25519', () => {
  for (const { kind, newkey, text } of ACCEPTED_KEYS) {
    it(`certifies an openssl ${kind} CSR: openssl verifies it for TLS clients, and it opens a TLS connection`, async () => {
      const { keyPem, csrPem } = opensslKeyAndCsr(newkey);
      const issued = await issueFor('alice', csrPem);
      const cert = new X509Certificate(issued.certificate);
      expect(cert.publicKey.export({ format: 'jwk' })).toEqual(createPublicKey(keyPem).export({ format: 'jwk' }));
      expect(cert.checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
      expect(cert.subject.split('\n')).toEqual(['CN=alice', 'OU=users', 'O=Gatehouse']);
      const certFile = file(`${kind}.crt`, issued.certificate);
      const verified = openssl(['verify', '-purpose', 'sslclient', '-CAfile', caFile(), certFile]);
      expect(verified.out, verified.out).toContain(`${certFile}: OK`);
      const shown = openssl(['x509', '-noout', '-text', '-in', certFile]).out;
      expect(shown).toMatch(text);
      expect(shown).toContain('Signature Algorithm: sha256WithRSAEncryption'); // the CA stays RSA
      // An RSA key may encipher; an EC or Ed25519 key only signs (RFC 5480 §3, RFC 8410 §5).
      expect(shown).toMatch(kind.startsWith('RSA') ? /X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment\n/ : /X509v3 Key Usage: critical\s+Digital Signature\n/);
      expect(await presentOverTls(issued.certificate, keyPem)).toEqual({ user: 'alice', serial: issued.serial });
    });
  }

  it('certifies a browser-made CSR: a WebCrypto ECDSA P-256 key, signed in WebCrypto', async () => {
    const { keyPem, csrPem } = await webCryptoKeyAndCsr();
    const issued = await issueFor('alice', csrPem);
    const certFile = file('webcrypto.crt', issued.certificate);
    expect(openssl(['verify', '-purpose', 'sslclient', '-CAfile', caFile(), certFile]).out).toContain(`${certFile}: OK`);
    expect(await presentOverTls(issued.certificate, keyPem)).toEqual({ user: 'alice', serial: issued.serial });
  });

  it('refuses an EC key that asks to encipher: such a key only signs', async () => {
    const error = await refusal(opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-addext', 'keyUsage=digitalSignature,keyEncipherment']));
    expect(error.reason).toBe('asks_for_key_usage');
    expect(error.message).toContain('the CSR asks for the key usage keyEncipherment; a client certificate for an EC key has only digitalSignature');
  });

  it('refuses other curves, Ed448, DSA and RSA under 2048 bits, saying which keys are accepted', async () => {
    const accepted = 'accepted keys: RSA of 2048 to 8192 bits, ECDSA on P-256 or P-384, Ed25519';
    const cases: [string, string[], RegExp][] = [
      ['secp256k1', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp256k1'], /^the CSR's EC key is on the curve secp256k1; /],
      ['P-521', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521'], /^the CSR's EC key is on the curve secp521r1; /],
      ['Ed448', ['-newkey', 'ed448'], /^the CSR carries an ed448 key; /],
    ];
    for (const [what, newkey, message] of cases) {
      const error = await refusal(opensslCsr(newkey));
      expect(error.reason, what).toBe('unsupported_key');
      expect(error.message, what).toMatch(message);
      expect(error.message, what).toContain(accepted);
    }
    const params = file('dsa.params', '');
    expect(openssl(['genpkey', '-genparam', '-algorithm', 'DSA', '-pkeyopt', 'dsa_paramgen_bits:2048', '-out', params]).status).toBe(0);
    const dsa = await refusal(opensslCsr(['-newkey', `dsa:${params}`]));
    expect(dsa.reason).toBe('unsupported_key');
    expect(dsa.message).toMatch(/^the CSR carries a dsa key; /);
    const weak = await refusal(opensslCsr(['-newkey', 'rsa:1024']));
    expect(weak.reason).toBe('weak_key');
    expect(weak.message).toContain("the CSR's RSA key has 1024 bits; at least 2048 are required");
  });

  it('refuses an EC or Ed25519 CSR whose subject was altered after signing', async () => {
    for (const newkey of [['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-newkey', 'ed25519']]) {
      const der = Buffer.from(opensslCsr(newkey).replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, ''), 'base64');
      der[der.indexOf('alice')] = 'm'.charCodeAt(0);
      const error = await refusal(`-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`);
      expect(error.reason, newkey.join(' ')).toBe('bad_signature');
    }
  });
});

describe('refused certificate requests', () => {
  it('refuses a CSR whose signature was tampered with', async () => {
    const { csrPem } = await createKeyAndCsr({ user: 'alice' });
    const der = Buffer.from(csrPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, ''), 'base64');
    const pem = (bytes: Buffer) => `-----BEGIN CERTIFICATE REQUEST-----\n${bytes.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const badSignature = Buffer.from(der);
    badSignature[badSignature.length - 10]! ^= 0x01;
    expect((await refusal(pem(badSignature))).reason).toBe('bad_signature');
    const badSubject = Buffer.from(der);
    const cn = badSubject.indexOf('alice');
    badSubject[cn] = 'm'.charCodeAt(0); // CN=mlice: the signature no longer covers what is sent
    const error = await refusal(pem(badSubject));
    expect(error.reason).toBe('bad_signature');
    expect(error.message).toBe("the CSR's signature does not verify: it was altered, or not signed by the key it carries");
  });

  it('refuses a CSR signed with anything but SHA-2', async () => {
    expect((await refusal(opensslCsr(['-newkey', 'rsa:2048', '-sha1']))).reason).toBe('unsupported_signature');
    expect((await refusal(opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-sha1']))).reason).toBe('unsupported_signature');
  });

  it('refuses garbage, a certificate, an empty string, a truncated CSR and one with bytes after it', async () => {
    const { csrPem } = await createKeyAndCsr();
    const body = csrPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, '');
    const truncated = `-----BEGIN CERTIFICATE REQUEST-----\n${Buffer.from(body, 'base64').subarray(0, 200).toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const trailing = `-----BEGIN CERTIFICATE REQUEST-----\n${Buffer.concat([Buffer.from(body, 'base64'), Buffer.from([0, 0])]).toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const random = `-----BEGIN CERTIFICATE REQUEST-----\n${Buffer.from('not a certificate request at all').toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    for (const input of ['hello', '', caCertPem, truncated, trailing, random, csrPem + csrPem, undefined, 42, 'x'.repeat(100_000)]) {
      const error = await refusal(input);
      expect(error.reason, String(input).slice(0, 40)).toBe('malformed');
      expect(error.message).toMatch(/^(expected one PEM certificate signing request|the CSR is not valid DER)/);
    }
  });
});

describe('reading the user from a certificate', () => {
  it('returns the user and serial of a user certificate, from PEM or X509Certificate', async () => {
    const issued = await issueFor('alice');
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
    const { keyPem, csrPem } = await createKeyAndCsr({ user: 'alice' });
    const issued = await issueFor('alice', csrPem);
    expect(await presentOverTls(issued.certificate, keyPem)).toEqual({ user: 'alice', serial: issued.serial });
  });
});

describe('certificate revocation list', () => {
  const day = 24 * 60 * 60 * 1000;

  it('is a v2 CRL that openssl verifies, and marks a revoked certificate as revoked', async () => {
    const revoked = await issueFor('alice');
    const kept = await issueFor('bob');
    const ecKept = await issueFor('alice', opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']));
    const now = new Date();
    const crl = buildCrl({ caCertPem, caKeyPem, revoked: [{ serial: revoked.serial, revokedAt: now }], crlNumber: 7, thisUpdate: now, nextUpdate: new Date(now.getTime() + day) });
    expect(crl.pem).toMatch(/^-----BEGIN X509 CRL-----\n/);
    expect(crl.der.equals(Buffer.from(crl.pem.replace(/-----[^-]+-----|\s/g, ''), 'base64'))).toBe(true);
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
    for (const [name, cert] of [['kept.crt', kept.certificate], ['ec-kept.crt', ecKept.certificate]] as const) {
      const keptFile = file(name, cert);
      const keptCheck = openssl(['verify', '-crl_check', '-CRLfile', crlFile, '-CAfile', caFile(), keptFile]);
      expect(keptCheck.status, keptCheck.out).toBe(0);
      expect(keptCheck.out).toContain(`${keptFile}: OK`);
    }
  });

  it('is valid with nothing revoked', async () => {
    const now = new Date();
    const crl = buildCrl({ caCertPem, caKeyPem, revoked: [], crlNumber: 1n, thisUpdate: now, nextUpdate: new Date(now.getTime() + day) });
    const crlFile = file('empty-crl.pem', crl.pem);
    expect(openssl(['crl', '-in', crlFile, '-CAfile', caFile(), '-noout']).out).toContain('verify OK');
    expect(openssl(['crl', '-in', crlFile, '-noout', '-text']).out).toContain('No Revoked Certificates.');
    const certFile = file('alice.crt', (await issueFor('alice')).certificate);
    expect(openssl(['verify', '-crl_check', '-CRLfile', crlFile, '-CAfile', caFile(), certFile]).status).toBe(0);
  });

  it('takes large CRL numbers, many entries, times after 2049, and lists a serial revoked twice once', async () => {
    const { csrPem } = await createKeyAndCsr();
    const serials = await Promise.all(Array.from({ length: 50 }, async () => (await issueFor('alice', csrPem)).serial));
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

  it('lists a serial as stored (leading zeros dropped, odd length) under the number the certificate carries', () => {
    const now = new Date();
    const crl = buildCrl({ caCertPem, caKeyPem, revoked: [{ serial: 'abc', revokedAt: now }, { serial: 'ff01', revokedAt: now }], crlNumber: 3, thisUpdate: now, nextUpdate: new Date(now.getTime() + day) });
    const text = openssl(['crl', '-in', file('odd-crl.pem', crl.pem), '-noout', '-text']).out;
    expect(text).toContain('Serial Number: 0ABC');
    expect(text).toContain('Serial Number: FF01'); // a positive INTEGER: 00 FF 01 on the wire, shown without the 00
  });

  it('refuses a malformed serial', () => {
    const now = new Date();
    expect(() => buildCrl({ caCertPem, caKeyPem, revoked: [{ serial: 'xyz', revokedAt: now }], crlNumber: 1, thisUpdate: now, nextUpdate: new Date(now.getTime() + day) })).toThrow('invalid certificate serial');
  });
});

describe('key and CSR for the CLI', () => {
  it('makes a PKCS#8 key and a CSR that openssl verifies', async () => {
    const { keyPem, csrPem } = await createKeyAndCsr({ user: 'alice' });
    expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(createPrivateKey(keyPem).asymmetricKeyDetails?.modulusLength).toBe(2048);
    const r = openssl(['req', '-in', file('alice.csr', csrPem), '-noout', '-verify', '-subject']);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/verify OK/);
    expect(r.out).toContain('subject=CN = alice');
  });
});

// The whole way a user takes: POST /v1/certs with a CSR of each key kind, then GET /v1/whoami
// over mTLS with the certificate, against a real gateway (engine, IdP and gateway processes).
describe('every accepted key kind through a real gateway', () => {
  let stack: Stack;
  let token: string;
  beforeAll(async () => {
    stack = await Stack.start();
    token = await stack.login('alice');
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
  });

  const post = (csr: string) => stack.api('/v1/certs', token, { method: 'POST', body: { csr } });

  it('issues for EC P-256, P-384, Ed25519, RSA 3072 (openssl) and a WebCrypto P-256 key; each certificate opens /v1/whoami', async () => {
    const made = [...ACCEPTED_KEYS.map(({ kind, newkey }) => ({ kind, ...opensslKeyAndCsr(newkey) })), { kind: 'WebCrypto P-256', ...(await webCryptoKeyAndCsr()) }];
    for (const { kind, keyPem, csrPem } of made) {
      const issued = await post(csrPem);
      expect(issued.status, `${kind}: ${issued.body}`).toBe(200);
      const { certificate, serial } = issued.json<{ certificate: string; serial: string }>();
      const certFile = file(`gw-${kind}.crt`, certificate);
      expect(openssl(['verify', '-CAfile', join(stack.certsDir, CERT_FILES.ca.cert), certFile]).out, kind).toContain(`${certFile}: OK`);
      const who = await fetchTls(`${stack.url}/v1/whoami`, { ca: stack.ca, cert: certificate, key: keyPem });
      expect(who.status, `${kind}: ${who.body}`).toBe(200);
      expect(who.json(), kind).toMatchObject({ user: 'alice', credential: 'certificate' });
      expect(serial, kind).toBe(new X509Certificate(certificate).serialNumber.toLowerCase().replace(/^0+/, ''));
    }
  });

  it('refuses an RSA 1024 and a secp256k1 CSR with 400 naming csr', async () => {
    const answer = await post(opensslCsr(['-newkey', 'rsa:1024']));
    expect(answer.status, answer.body).toBe(400);
    expect(answer.json()).toMatchObject({ error: 'invalid_request', field: 'csr' });
    expect(answer.json<{ message: string }>().message).toContain("the CSR's RSA key has 1024 bits; at least 2048 are required");
    const curve = await post(opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp256k1']));
    expect(curve.status, curve.body).toBe(400);
    expect(curve.json()).toMatchObject({ error: 'invalid_request', field: 'csr' });
  });
});
