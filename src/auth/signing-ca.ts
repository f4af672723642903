// The CA as a signer of user certificates and CRLs: its key as a WebCrypto key for @peculiar/x509
// (Node's native RSA underneath), and the two pieces of its certificate every signed object
// repeats: its subject Name (our issuer) and its key identifier (our authorityKeyIdentifier),
// read from the certificate by @peculiar/asn1-x509.
import { createHash, createPrivateKey, type KeyObject, webcrypto, X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate, id_ce_subjectKeyIdentifier, type Name, SubjectKeyIdentifier } from '@peculiar/asn1-x509';
import { x509 } from './x509.js';

export interface CaPems {
  caCertPem: string;
  caKeyPem: string;
}

/** What the CA signs with: PKCS#1 v1.5 with SHA-256 (sha256WithRSAEncryption), as it always has. */
export const CA_SIGNATURE = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;

export interface SigningCa {
  x509: X509Certificate;
  key: KeyObject;
  /** The CA certificate's subject Name, decoded: the issuer of everything it signs (DER re-encodes it byte for byte). */
  subject: Name;
  /** The same, as @peculiar/x509's generators take it. */
  issuer: x509.Name;
  /** The CA's subjectKeyIdentifier, hex. */
  keyId: string;
  notAfter: Date;
  /** The key as WebCrypto wants it; imported once, on first use. */
  signingKey(): Promise<webcrypto.CryptoKey>;
}

/** Loads and checks the pair; throws plain Errors: a broken CA is the operator's problem, not the client's. */
export function loadSigningCa({ caCertPem, caKeyPem }: CaPems): SigningCa {
  const cert = new X509Certificate(caCertPem);
  const key = createPrivateKey(caKeyPem);
  if (key.asymmetricKeyType !== 'rsa') throw new Error(`the CA key is ${key.asymmetricKeyType ?? 'unknown'}; user certificates are signed with an RSA CA`);
  if (!cert.ca) throw new Error('the CA certificate is not a CA (basicConstraints CA:true is missing)');
  if (!cert.checkPrivateKey(key)) throw new Error('the CA key does not belong to the CA certificate');
  const { tbsCertificate } = AsnConvert.parse(cert.raw, Certificate);
  const ski = tbsCertificate.extensions?.find((e) => e.extnID === id_ce_subjectKeyIdentifier);
  // RFC 5280 §4.2.1.2 method 1 for a CA made without the extension: SHA-1 of the subjectPublicKey bits.
  const keyId = ski
    ? Buffer.from(AsnConvert.parse(ski.extnValue.buffer, SubjectKeyIdentifier).buffer)
    : createHash('sha1').update(Buffer.from(tbsCertificate.subjectPublicKeyInfo.subjectPublicKey)).digest();
  let imported: Promise<webcrypto.CryptoKey> | undefined;
  return {
    x509: cert,
    key,
    subject: tbsCertificate.subject,
    issuer: new x509.Name(tbsCertificate.subject),
    keyId: keyId.toString('hex'),
    notAfter: new Date(cert.validTo),
    signingKey: () => (imported ??= webcrypto.subtle.importKey('pkcs8', key.export({ type: 'pkcs8', format: 'der' }), CA_SIGNATURE, false, ['sign']) as Promise<webcrypto.CryptoKey>),
  };
}
