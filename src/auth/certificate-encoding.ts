// How Gatehouse writes X.509: every certificate (the CA, the service certificates, users'), CSR
// and CRL is filled into @peculiar/asn1-x509's schemas, encoded by @peculiar/asn1-schema and signed
// by Node's crypto (native, synchronous). One way, for every key kind; no DER is written by hand.
import { createHash, type KeyObject, randomBytes, sign } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  Certificate,
  Extension,
  Extensions,
  Name,
  RelativeDistinguishedName,
  type SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
} from '@peculiar/asn1-x509';

/** sha256WithRSAEncryption with NULL parameters (RFC 4055 §5): what the (RSA) CA signs everything with. */
export function caSignatureAlgorithm(): AlgorithmIdentifier {
  return new AlgorithmIdentifier({ algorithm: '1.2.840.113549.1.1.11', parameters: null });
}

/** An RSA key's PKCS#1 v1.5 SHA-256 signature over encoded to-be-signed bytes. */
export function signSha256Rsa(key: KeyObject, tbs: ArrayBuffer): ArrayBuffer {
  return Uint8Array.from(sign('sha256', Buffer.from(tbs), key)).buffer;
}

/** An extension whose value is a schema object (BasicConstraints, KeyUsage...), encoded into its OCTET STRING. */
export function extension(extnID: string, value: object, critical = false): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

/** A Name of one attribute per RelativeDistinguishedName, in order (RFC 5280 §4.1.2.4). */
export function nameOf(attributes: [oid: string, value: string][], string: 'utf8String' | 'printableString' = 'utf8String'): Name {
  return new Name(attributes.map(([type, value]) => new RelativeDistinguishedName([new AttributeTypeAndValue({ type, value: new AttributeValue({ [string]: value }) })])));
}

export const NAME_OID = { commonName: '2.5.4.3', organizationalUnit: '2.5.4.11', organization: '2.5.4.10' } as const;

/** RFC 5280 §4.2.1.2 method 1: the SHA-1 of a subjectPublicKey's bits. */
export function keyIdentifier(subjectPublicKey: ArrayBuffer): Buffer {
  return createHash('sha1').update(Buffer.from(subjectPublicKey)).digest();
}

/**
 * 16 random bytes as a positive, minimally encoded INTEGER (RFC 5280 §4.1.2.2): first byte
 * 01..7f, so the bytes are the INTEGER's content as they are. Lower-case hex.
 */
export function randomSerial(): string {
  for (;;) {
    const bytes = randomBytes(16);
    bytes[0] = bytes[0]! & 0x7f;
    if (bytes[0] !== 0) return bytes.toString('hex');
  }
}

export interface CertificateFields {
  /** As randomSerial() makes it. */
  serial: string;
  issuer: Name;
  subject: Name;
  notBefore: Date;
  notAfter: Date;
  subjectPublicKeyInfo: SubjectPublicKeyInfo;
  extensions: Extension[];
}

/** A v3 certificate signed with sha256WithRSAEncryption by `issuerKey`; DER. */
export function signCertificate(fields: CertificateFields, issuerKey: KeyObject): Buffer {
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: Uint8Array.from(Buffer.from(fields.serial, 'hex')).buffer,
    signature: caSignatureAlgorithm(),
    issuer: fields.issuer,
    validity: new Validity({ notBefore: fields.notBefore, notAfter: fields.notAfter }),
    subject: fields.subject,
    subjectPublicKeyInfo: fields.subjectPublicKeyInfo,
    extensions: new Extensions(fields.extensions),
  });
  const signatureValue = signSha256Rsa(issuerKey, AsnConvert.serialize(tbs));
  return Buffer.from(AsnConvert.serialize(new Certificate({ tbsCertificate: tbs, signatureAlgorithm: caSignatureAlgorithm(), signatureValue })));
}

/** PEM text (RFC 7468): base64 lines of 64 under a label. */
export function toPem(label: string, der: Buffer): string {
  return `-----BEGIN ${label}-----\n${(der.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END ${label}-----\n`;
}
