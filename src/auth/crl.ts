// The certificate revocation list (RFC 5280 §5): a v2 CRL of revoked user certificates, encoded by
// @peculiar/asn1-schema from @peculiar/asn1-x509's CertificateList schema and signed by the CA with
// Node's crypto, as user certificates are. (@peculiar/x509's CRL generator would write an empty
// crlEntryExtensions SEQUENCE into every entry, which RFC 5280 forbids and OpenSSL cannot read.)
import { AsnConvert, AsnIntegerBigIntConverter, OctetString } from '@peculiar/asn1-schema';
import {
  AuthorityKeyIdentifier,
  CertificateList,
  Extension,
  Extensions,
  id_ce_authorityKeyIdentifier,
  id_ce_cRLNumber,
  KeyIdentifier,
  RevokedCertificate as RevokedEntry,
  TBSCertList,
  Time,
  Version,
} from '@peculiar/asn1-x509';
import { caSignatureAlgorithm, signSha256Rsa, toPem } from './certificate-encoding.js';
import { type CaPems, loadSigningCa, type SigningCa } from './signing-ca.js';

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

export interface SignedCrl {
  der: Buffer;
  pem: string;
}

export function buildCrl({ caCertPem, caKeyPem, ...list }: CrlRequest): SignedCrl {
  return signCrl(loadSigningCa({ caCertPem, caKeyPem }), list);
}

/** The CRL signed by an already loaded CA (the gateway keeps one). */
export function signCrl(ca: SigningCa, { revoked, crlNumber, thisUpdate, nextUpdate }: Omit<CrlRequest, keyof CaPems>): SignedCrl {
  if (!(nextUpdate > thisUpdate)) throw new Error('nextUpdate must be after thisUpdate');
  const number = BigInt(crlNumber);
  if (number < 0n) throw new Error('crlNumber must not be negative');
  const algorithm = caSignatureAlgorithm();
  const extension = (extnID: string, value: ArrayBuffer) => new Extension({ extnID, critical: false, extnValue: new OctetString(value) });
  const tbs = new TBSCertList({
    version: Version.v2,
    signature: algorithm,
    issuer: ca.subject,
    // UTCTime through 2049, GeneralizedTime after (RFC 5280 §5.1.2.4): Time picks.
    thisUpdate: time(thisUpdate),
    nextUpdate: time(nextUpdate),
    // An empty list is left out, not sent as an empty SEQUENCE (RFC 5280 §5.1.2.6); so are entry extensions.
    ...(revoked.length > 0 ? { revokedCertificates: uniqueBySerial(revoked).map((r) => new RevokedEntry({ userCertificate: serialNumber(r.serial), revocationDate: time(r.revokedAt) })) } : {}),
    crlExtensions: new Extensions([
      extension(id_ce_authorityKeyIdentifier, AsnConvert.serialize(new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(ca.keyId) }))),
      extension(id_ce_cRLNumber, AsnIntegerBigIntConverter.toASN(number).toBER()),
    ]),
  });
  const der = Buffer.from(AsnConvert.serialize(new CertificateList({ tbsCertList: tbs, signatureAlgorithm: algorithm, signature: signSha256Rsa(ca.key, AsnConvert.serialize(tbs)) })));
  return { der, pem: toPem('X509 CRL', der) };
}

function time(date: Date): Time {
  if (Number.isNaN(date.getTime())) throw new Error('invalid date in CRL');
  return new Time(date);
}

/** A serial as stored (lower-case hex, leading zeros dropped, so maybe odd length) as the INTEGER's content. */
function serialNumber(serial: string): ArrayBuffer {
  return AsnIntegerBigIntConverter.toASN(serialValue(serial)).valueBlock.valueHexView.slice().buffer;
}

function serialValue(serial: string): bigint {
  if (!/^[0-9a-fA-F]{1,40}$/.test(serial)) throw new Error(`invalid certificate serial ${JSON.stringify(serial)} (expected up to 20 bytes of hex)`);
  return BigInt(`0x${serial}`);
}

/** One entry a serial: the earliest revocation wins, as a second revoke changes nothing. */
function uniqueBySerial(revoked: RevokedCertificate[]): RevokedCertificate[] {
  const bySerial = new Map<bigint, RevokedCertificate>();
  for (const r of revoked) {
    const key = serialValue(r.serial);
    const seen = bySerial.get(key);
    if (!seen || r.revokedAt < seen.revokedAt) bySerial.set(key, r);
  }
  return [...bySerial.values()];
}
