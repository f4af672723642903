// The CA as a signer of user certificates and CRLs: its key as a Node KeyObject (native RSA
// signing) and the two pieces of its certificate every signed object repeats: its exact subject
// Name (our issuer) and its key identifier (our authorityKeyIdentifier).
import { createHash, createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { childrenOf, contentOf, readTlv, readWhole, slice, TAG, type Tlv } from './der.js';

export interface CaPems {
  caCertPem: string;
  caKeyPem: string;
}

export interface SigningCa {
  x509: X509Certificate;
  key: KeyObject;
  /** The CA certificate's subject Name, byte for byte: what path building matches our issuer against. */
  subjectDer: Buffer;
  /** The CA's subjectKeyIdentifier. */
  keyId: Buffer;
  notAfter: Date;
}

const SUBJECT_KEY_IDENTIFIER = Buffer.from('0603551d0e', 'hex'); // OID 2.5.29.14, as a TLV

/** Loads and checks the pair; throws plain Errors: a broken CA is the operator's problem, not the client's. */
export function loadSigningCa({ caCertPem, caKeyPem }: CaPems): SigningCa {
  const x509 = new X509Certificate(caCertPem);
  const key = createPrivateKey(caKeyPem);
  if (key.asymmetricKeyType !== 'rsa') throw new Error(`the CA key is ${key.asymmetricKeyType ?? 'unknown'}; user certificates are signed with an RSA CA`);
  if (!x509.ca) throw new Error('the CA certificate is not a CA (basicConstraints CA:true is missing)');
  if (!x509.checkPrivateKey(key)) throw new Error('the CA key does not belong to the CA certificate');
  const der = x509.raw;
  const tbs = childrenOf(der, readWhole(der, TAG.SEQUENCE))[0];
  if (!tbs) throw new Error('the CA certificate has no TBSCertificate');
  const fields = childrenOf(der, tbs);
  // [0] version, serial, signature, issuer, validity, subject, subjectPublicKeyInfo, ...
  const offset = fields[0]?.tag === TAG.CONTEXT_0 ? 1 : 0;
  const subject = fields[offset + 4];
  const spki = fields[offset + 5];
  if (!subject || !spki) throw new Error('the CA certificate lacks a subject or a public key');
  return {
    x509,
    key,
    subjectDer: Buffer.from(slice(der, subject)),
    keyId: subjectKeyIdentifier(der, fields) ?? keyIdFromPublicKey(der, spki),
    notAfter: new Date(x509.validTo),
  };
}

function subjectKeyIdentifier(der: Buffer, fields: Tlv[]): Buffer | null {
  const extensions = fields.find((f) => f.tag === TAG.CONTEXT_3);
  if (!extensions) return null;
  const list = childrenOf(der, extensions)[0];
  if (!list) return null;
  for (const extension of childrenOf(der, list)) {
    const parts = childrenOf(der, extension);
    if (!parts[0] || !slice(der, parts[0]).equals(SUBJECT_KEY_IDENTIFIER)) continue;
    const value = parts[parts.length - 1]!; // extnValue: OCTET STRING holding an OCTET STRING
    const inner = readTlv(der, value.content, value.end);
    return Buffer.from(contentOf(der, inner));
  }
  return null;
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits, for a CA made without the extension. */
function keyIdFromPublicKey(der: Buffer, spki: Tlv): Buffer {
  const bits = childrenOf(der, spki)[1];
  if (!bits) throw new Error('the CA certificate has a malformed public key');
  return createHash('sha1').update(contentOf(der, bits).subarray(1)).digest();
}
