// The certificate revocation list (RFC 5280 §5): a v2 CRL of revoked user certificates, built
// with forge's ASN.1 and signed by the CA with Node's crypto.
import forge from 'node-forge';
import { encodeUnsignedInteger, fromForgeBytes, signWithSha256Rsa, SHA256_WITH_RSA_OID, toForgeBytes, toPem } from './der.js';
import { type CaPems, loadSigningCa } from './signing-ca.js';

export interface RevokedCertificate {
  /** Hex, as IssuedCertificate.serial. */
  serial: string;
  revokedAt: Date;
}

export interface CrlRequest extends CaPems {
  revoked: RevokedCertificate[];
  /** Monotonically increasing per CA (RFC 5280 §5.2.3). */
  crlNumber: bigint | number;
  thisUpdate: Date;
  nextUpdate: Date;
}

const { asn1 } = forge;
const C = asn1.Class;
const T = asn1.Type;
const OID = { authorityKeyIdentifier: '2.5.29.35', cRLNumber: '2.5.29.20' };

export function buildCrl({ caCertPem, caKeyPem, revoked, crlNumber, thisUpdate, nextUpdate }: CrlRequest): { der: Buffer; pem: string } {
  const ca = loadSigningCa({ caCertPem, caKeyPem });
  if (!(nextUpdate > thisUpdate)) throw new Error('nextUpdate must be after thisUpdate');
  const number = BigInt(crlNumber);
  if (number < 0n) throw new Error('crlNumber must not be negative');

  const fields: forge.asn1.Asn1[] = [
    asn1.create(C.UNIVERSAL, T.INTEGER, false, asn1.integerToDer(1).getBytes()), // v2
    algorithm(),
    asn1.fromDer(toForgeBytes(ca.subjectDer)),
    time(thisUpdate),
    time(nextUpdate),
  ];
  // An empty list is left out, not sent as an empty SEQUENCE (RFC 5280 §5.1.2.6).
  if (revoked.length > 0) {
    fields.push(
      asn1.create(C.UNIVERSAL, T.SEQUENCE, true, uniqueBySerial(revoked).map((r) => asn1.create(C.UNIVERSAL, T.SEQUENCE, true, [integer(serialBytes(r.serial)), time(r.revokedAt)]))),
    );
  }
  fields.push(
    asn1.create(C.CONTEXT_SPECIFIC, 0, true, [
      asn1.create(C.UNIVERSAL, T.SEQUENCE, true, [
        extension(OID.authorityKeyIdentifier, asn1.create(C.UNIVERSAL, T.SEQUENCE, true, [asn1.create(C.CONTEXT_SPECIFIC, 0, false, toForgeBytes(ca.keyId))])),
        extension(OID.cRLNumber, integer(bigintBytes(number))),
      ]),
    ]),
  );
  const tbs = asn1.create(C.UNIVERSAL, T.SEQUENCE, true, fields);
  const der = signWithSha256Rsa(fromForgeBytes(asn1.toDer(tbs).getBytes()), ca.key);
  return { der, pem: toPem('X509 CRL', der) };
}

function algorithm(): forge.asn1.Asn1 {
  return asn1.create(C.UNIVERSAL, T.SEQUENCE, true, [
    asn1.create(C.UNIVERSAL, T.OID, false, asn1.oidToDer(SHA256_WITH_RSA_OID).getBytes()),
    asn1.create(C.UNIVERSAL, T.NULL, false, ''),
  ]);
}

/** UTCTime through 2049, GeneralizedTime after (RFC 5280 §5.1.2.4). */
function time(date: Date): forge.asn1.Asn1 {
  if (Number.isNaN(date.getTime())) throw new Error('invalid date in CRL');
  return date.getUTCFullYear() < 2050
    ? asn1.create(C.UNIVERSAL, T.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(C.UNIVERSAL, T.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

function extension(oid: string, value: forge.asn1.Asn1): forge.asn1.Asn1 {
  return asn1.create(C.UNIVERSAL, T.SEQUENCE, true, [
    asn1.create(C.UNIVERSAL, T.OID, false, asn1.oidToDer(oid).getBytes()),
    asn1.create(C.UNIVERSAL, T.OCTETSTRING, false, asn1.toDer(value).getBytes()),
  ]);
}

/** A positive INTEGER from magnitude bytes; forge's integerToDer stops at 32 bits. */
function integer(magnitude: Buffer): forge.asn1.Asn1 {
  return asn1.fromDer(toForgeBytes(encodeUnsignedInteger(magnitude)));
}

function serialBytes(serial: string): Buffer {
  if (!/^[0-9a-fA-F]{1,40}$/.test(serial)) throw new Error(`invalid certificate serial ${JSON.stringify(serial)} (expected up to 20 bytes of hex)`);
  return Buffer.from(serial.length % 2 === 0 ? serial : `0${serial}`, 'hex');
}

function bigintBytes(value: bigint): Buffer {
  const hex = value.toString(16);
  return Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, 'hex');
}

/** One entry a serial: the earliest revocation wins, as a second revoke changes nothing. */
function uniqueBySerial(revoked: RevokedCertificate[]): RevokedCertificate[] {
  const bySerial = new Map<string, RevokedCertificate>();
  for (const r of revoked) {
    const key = serialBytes(r.serial).toString('hex').replace(/^(00)+(?=.)/, '');
    const seen = bySerial.get(key);
    if (!seen || r.revokedAt < seen.revokedAt) bySerial.set(key, r);
  }
  return [...bySerial.values()];
}
