// user-certificate-issuance: issuing a user's client certificate from a CSR with our signer
// (@peculiar/asn1-schema decodes the CSR and encodes the certificate from @peculiar/asn1-x509's
// schemas, Node's crypto verifies the CSR and signs), against node-forge doing all of it itself
// (parse, verify the CSR, build, cert.sign() in pure JS). Same CA, same pre-made RSA CSRs (forge
// reads no other kind), same certificate contents; key generation is the client's cost and is not
// measured.
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import { createKeyAndCsr } from '../src/auth/certificate-request.js';
import { ensureCertificates } from '../src/auth/index.js';
import { createUserCertificateSigner, USER_OU, type UserCertificateSigner, userUri } from '../src/auth/user-certificates.js';
import { CERT_FILES } from '../src/wire/index.js';
import type { Benchmark } from './measure.js';

const CSRS = 16; // distinct requesters, so nothing is cached per key
const ROUND_MS = 1_000; // each side issues for about this long a round; forge manages only a few dozen
const TTL_S = 12 * 60 * 60;

interface Context {
  dir: string;
  csrs: string[];
  signer: UserCertificateSigner;
  forgeCa: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey };
}

const issuance: Benchmark<Context> = {
  name: 'user-certificate-issuance',
  unit: 'certs/s',
  baseline: 'node-forge alone: CSR verify and cert.sign() in pure JS, same CSRs and certificate',

  async setup() {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-certs-'));
    try {
      const certs = join(dir, 'certs');
      ensureCertificates({ dir: certs, gatewayHosts: [], engineHosts: [] });
      const caCertPem = readFileSync(join(certs, CERT_FILES.ca.cert), 'utf8');
      const caKeyPem = readFileSync(join(certs, CERT_FILES.ca.key), 'utf8');
      const ctx: Context = {
        dir,
        csrs: await Promise.all(Array.from({ length: CSRS }, async (_, i) => (await createKeyAndCsr({ user: `user${i}` })).csrPem)),
        signer: createUserCertificateSigner({ caCertPem, caKeyPem }),
        forgeCa: { cert: forge.pki.certificateFromPem(caCertPem), key: forge.pki.privateKeyFromPem(caKeyPem) as forge.pki.rsa.PrivateKey },
      };
      await sameCertificate(ctx, new X509Certificate(caCertPem));
      return ctx;
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  },

  candidate: async (ctx) => perSecond(ctx, async (csrPem, user) => (await ctx.signer.issue({ csrPem, subject: { user }, ttlSeconds: TTL_S })).certificate),
  baselineRun: async (ctx) => perSecond(ctx, (csrPem, user) => forgeIssue(ctx, csrPem, user)),

  async teardown(ctx) {
    rmSync(ctx.dir, { recursive: true, force: true });
  },
};

export const benchmarks: Benchmark[] = [issuance];

/** Issues round-robin over the CSRs for ROUND_MS, one after another; returns certificates per second. */
async function perSecond(ctx: Context, issue: (csrPem: string, user: string) => string | Promise<string>): Promise<number> {
  let count = 0;
  const started = performance.now();
  let elapsed = 0;
  do {
    const i = count % ctx.csrs.length;
    await issue(ctx.csrs[i]!, `user${i}`);
    count++;
    elapsed = performance.now() - started;
  } while (elapsed < ROUND_MS);
  return count / (elapsed / 1000);
}

/** The baseline: the certificate our signer makes, the way forge's documentation makes it. */
function forgeIssue(ctx: Context, csrPem: string, user: string): string {
  const csr = forge.pki.certificationRequestFromPem(csrPem);
  if (!csr.verify()) throw new Error('forge refused a CSR our signer accepts');
  const now = Math.floor(Date.now() / 1000) * 1000;
  const cert = forge.pki.createCertificate();
  cert.publicKey = csr.publicKey!;
  cert.serialNumber = `01${forge.util.bytesToHex(forge.random.getBytesSync(15))}`;
  cert.validity.notBefore = new Date(now - 60_000);
  cert.validity.notAfter = new Date(now + TTL_S * 1000);
  cert.setSubject([
    { name: 'commonName', value: user },
    { shortName: 'OU', value: USER_OU },
    { name: 'organizationName', value: 'Gatehouse' },
  ]);
  cert.setIssuer(ctx.forgeCa.cert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', clientAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 6, value: userUri(user) }] },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: ctx.forgeCa.cert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(ctx.forgeCa.key, forge.md.sha256.create());
  const der = forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes();
  createHash('sha256').update(der, 'binary').digest('hex'); // the fingerprint our signer returns too
  return forge.pki.certificateToPem(cert);
}

/** Guards the comparison: both sides must make a valid certificate with the same names and uses. */
async function sameCertificate(ctx: Context, ca: X509Certificate): Promise<void> {
  const ours = new X509Certificate((await ctx.signer.issue({ csrPem: ctx.csrs[0]!, subject: { user: 'user0' }, ttlSeconds: TTL_S })).certificate);
  const theirs = new X509Certificate(forgeIssue(ctx, ctx.csrs[0]!, 'user0'));
  const face = (c: X509Certificate) => JSON.stringify([c.subject, c.issuer, c.subjectAltName, c.keyUsage, c.ca, c.publicKey.export({ format: 'jwk' })]);
  for (const c of [ours, theirs]) if (!c.verify(ca.publicKey)) throw new Error('a benchmark side made a certificate the CA does not verify');
  if (face(ours) !== face(theirs)) throw new Error(`the baseline certificate no longer matches ours: ${face(ours)} vs ${face(theirs)}`);
}
