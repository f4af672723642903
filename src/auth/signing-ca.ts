// The CA as a signer of user certificates and CRLs: its key as a Node KeyObject (native RSA
// signing), and the two pieces of its certificate every signed object repeats: its subject Name
// (our issuer) and its key identifier (our authorityKeyIdentifier), read from the certificate by
// @peculiar/asn1-x509.
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate, id_ce_subjectKeyIdentifier, type Name, SubjectKeyIdentifier } from '@peculiar/asn1-x509';
import { keyIdentifier } from './certificate-encoding.js';

export interface CaPems {
  caCertPem: string;
  caKeyPem: string;
}

export interface SigningCa {
  x509: X509Certificate;
  key: KeyObject;
  /** The CA certificate's subject Name, decoded: the issuer of everything it signs (DER re-encodes it byte for byte). */
  subject: Name;
  /** The CA's subjectKeyIdentifier. */
  keyId: Buffer;
  notAfter: Date;
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
  return {
    x509: cert,
    key,
    subject: tbsCertificate.subject,
    // RFC 5280 §4.2.1.2 method 1 for a CA made without the extension: SHA-1 of the subjectPublicKey bits.
    keyId: ski ? Buffer.from(AsnConvert.parse(ski.extnValue.buffer, SubjectKeyIdentifier).buffer) : keyIdentifier(tbsCertificate.subjectPublicKeyInfo.subjectPublicKey),
    notAfter: new Date(cert.validTo),
  };
}
