// PKCS#10 certificate signing requests (RFC 2986): reading a client's CSR and proving it was
// signed by its own key, and making a key and CSR for the CLI. Only the public key of a CSR is
// certified; its subject, SANs and requested extensions are read so that a CSR asking for more
// than a certificate for the caller is refused (user-certificates.ts judges), never copied.
// The CSR is decoded by @peculiar/asn1-schema against the RFC's schemas (asn1-csr, asn1-x509),
// its signature checked by Node's crypto over the request info's bytes as sent; the CLI's CSR is
// encoded the same way and signed by Node (certificate-encoding.ts). No ASN.1 is read or written
// here by hand.
import { createPublicKey, generateKeyPair, type KeyObject, verify } from 'node:crypto';
import { promisify } from 'node:util';
import { Attributes, CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  ExtendedKeyUsage,
  type Extension,
  Extensions,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  KeyUsage,
  type Name,
  SubjectAlternativeName,
  SubjectPublicKeyInfo,
} from '@peculiar/asn1-x509';
import { caSignatureAlgorithm as sha256WithRsa, NAME_OID, nameOf, signSha256Rsa, toPem } from './certificate-encoding.js';

export type CertificateRequestProblem =
  | 'malformed' // not a PEM CSR, or not valid DER inside
  | 'unsupported_key' // not RSA, ECDSA on P-256/P-384 or Ed25519
  | 'weak_key' // RSA below MIN_RSA_BITS
  | 'unsupported_signature' // a signature algorithm other than the key's own with SHA-2 (or Ed25519)
  | 'bad_signature' // the CSR was altered, or not signed by the key it carries
  // A well-formed CSR that asks for what a certificate for the caller never has:
  | 'names_another_user' // a CN or alternative name other than the caller
  | 'names_a_service' // the gateway's service name, or an OU other than users
  | 'asks_for_ca' // basicConstraints CA:TRUE
  | 'asks_for_key_usage' // key usages beyond what the key's certificate has, extended ones beyond clientAuth
  | 'asks_for_extension' // an extension Gatehouse never issues
  | 'asks_for_subject_field'; // a subject attribute other than CN, OU, O, C, ST, L

/** A CSR we refuse. `message` is safe to show the client as is. */
export class CertificateRequestError extends Error {
  override readonly name = 'CertificateRequestError';
  constructor(
    readonly reason: CertificateRequestProblem,
    message: string,
  ) {
    super(message);
  }
}

export const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 8192; // beyond this verifying costs us more than any client needs
const MAX_CSR_PEM_CHARS = 64 * 1024; // a 8192-bit CSR with a long subject is under 4 KiB
const ACCEPTED = `accepted keys: RSA of ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits, ECDSA on P-256 or P-384, Ed25519`;
const HOW_TO = 'generate one with `gatehouse cert`, or: openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key -out client.csr -subj /CN=<your user name>';
/** Well past any real CSR; bounds what a hostile one costs to decode. */
const PARSE_LIMITS = { berOptions: { maxDepth: 16, maxNodes: 2_000, maxContentLength: MAX_CSR_PEM_CHARS } };

/** The kinds of key a user certificate may carry. */
export type CertifiedKeyKind = 'rsa' | 'ec' | 'ed25519';

/** Node's names of the curves we certify, as WebCrypto and openssl call them. */
const CURVES = new Map([
  ['prime256v1', 'P-256'],
  ['secp384r1', 'P-384'],
]);

/** The signature algorithms a CSR may be signed with, by OID: which key they need, which hash (null: Ed25519 hashes itself). */
const SIGNATURES = new Map<string, { key: CertifiedKeyKind; hash: string | null }>([
  ['1.2.840.113549.1.1.11', { key: 'rsa', hash: 'sha256' }], // sha256WithRSAEncryption
  ['1.2.840.113549.1.1.12', { key: 'rsa', hash: 'sha384' }],
  ['1.2.840.113549.1.1.13', { key: 'rsa', hash: 'sha512' }],
  ['1.2.840.10045.4.3.2', { key: 'ec', hash: 'sha256' }], // ecdsa-with-SHA256
  ['1.2.840.10045.4.3.3', { key: 'ec', hash: 'sha384' }],
  ['1.2.840.10045.4.3.4', { key: 'ec', hash: 'sha512' }],
  ['1.3.101.112', { key: 'ed25519', hash: null }], // Ed25519 (RFC 8410)
]);

export interface CertificateRequest {
  /** The requester's public key, checked: kind, size or curve, and proof of possession. */
  publicKey: KeyObject;
  /** Its SubjectPublicKeyInfo, decoded: what the certificate carries. */
  subjectPublicKeyInfo: SubjectPublicKeyInfo;
  kind: CertifiedKeyKind;
  /** An RSA key's modulus length; 0 for the others. */
  modulusBits: number;
  /** What the CSR asks to be certified, read (after the signature verified) only to judge it. */
  asks: CertificateRequestAsks;
}

/** A CSR's subject, alternative names and requested extensions, decoded. */
export interface CertificateRequestAsks {
  /** Subject attributes in order: a short name (CN, OU, O, C, ST, L, emailAddress...) or a dotted OID; value null when not text. */
  subject: { type: string; value: string | null }[];
  /** Requested subjectAltName entries as openssl shows them: `URI:...`, `DNS:...`, `email:...`, `IP:...`, or `other`. */
  altNames: string[];
  /** basicConstraints CA:TRUE was asked for. */
  ca: boolean;
  /** keyUsage bits asked for, by their RFC 5280 names. */
  keyUsages: string[];
  /** extendedKeyUsage purposes asked for: a short name where known (clientAuth, serverAuth...), else the dotted OID. */
  extendedKeyUsages: string[];
  /** Any other requested extension, by name where known, else dotted OID (subjectKeyIdentifier is not listed: it is harmless). */
  otherExtensions: string[];
}

/** Parses and verifies a CSR; throws CertificateRequestError with a client-safe message. */
export function parseCertificateRequest(csrPem: unknown): CertificateRequest {
  if (typeof csrPem !== 'string' || csrPem.length > MAX_CSR_PEM_CHARS) throw notPem();
  const der = fromPem(csrPem);
  if (!der) throw notPem();
  const csr = decoded(() => {
    const parsed = AsnConvert.parse(der, CertificationRequest, PARSE_LIMITS);
    // DER has one encoding of each value: decoding and encoding again gives the bytes back, or
    // the input was BER, carried bytes after the request, or had fields the schema does not know.
    if (!Buffer.from(AsnConvert.serialize(parsed)).equals(der)) throw new Error('not DER, or bytes after the request');
    if (parsed.certificationRequestInfo.version !== 0 || !parsed.certificationRequestInfoRaw) throw new Error('unknown version');
    return parsed;
  });
  const info = csr.certificationRequestInfo;
  const spki = Buffer.from(AsnConvert.serialize(info.subjectPKInfo));

  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    throw new CertificateRequestError('unsupported_key', `the CSR's public key is of a kind Gatehouse cannot read; ${ACCEPTED}: ${HOW_TO}`);
  }
  const { kind, modulusBits } = checkedKey(publicKey);

  const algorithm = SIGNATURES.get(csr.signatureAlgorithm.algorithm);
  // RSA names its hash with NULL parameters (RFC 4055; decoded as null, absent tolerated), ECDSA and Ed25519 with none (RFC 5758, 8410).
  const parameters = csr.signatureAlgorithm.parameters;
  const parametersFit = kind === 'rsa' ? parameters === null || parameters === undefined : parameters === undefined;
  if (!algorithm || algorithm.key !== kind || !parametersFit) throw new CertificateRequestError('unsupported_signature', `the CSR must be signed by its own key with SHA-256, SHA-384 or SHA-512 (${kind === 'ed25519' ? 'Ed25519 hashes itself' : 'openssl req does this by default'})`);
  let valid = false;
  try {
    valid = verify(algorithm.hash, Buffer.from(csr.certificationRequestInfoRaw!), publicKey, Buffer.from(csr.signature));
  } catch {
    valid = false; // e.g. a signature longer than the modulus, or not an ECDSA-Sig-Value
  }
  if (!valid) throw new CertificateRequestError('bad_signature', "the CSR's signature does not verify: it was altered, or not signed by the key it carries");
  const asks = decoded(() => readAsks(info.subject, info.attributes ?? []));
  return { publicKey, subjectPublicKeyInfo: info.subjectPKInfo, kind, modulusBits, asks };
}

/** Runs a decoding step; anything the ASN.1 library throws becomes the client's `malformed`. */
function decoded<T>(step: () => T): T {
  try {
    return step();
  } catch (err) {
    if (err instanceof CertificateRequestError) throw err;
    throw new CertificateRequestError('malformed', `the CSR is not valid DER (${shortReason(err)})`);
  }
}

function shortReason(err: unknown): string {
  const text = String((err as Error)?.message ?? err).replace(/[^\x20-\x7e]/g, '?');
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}

/** The key's kind, refused unless RSA 2048-8192 with a sane exponent, ECDSA on P-256/P-384, or Ed25519. */
function checkedKey(publicKey: KeyObject): { kind: CertifiedKeyKind; modulusBits: number } {
  const type = publicKey.asymmetricKeyType ?? 'unknown';
  const details = publicKey.asymmetricKeyDetails ?? {};
  if (type === 'rsa') {
    const bits = details.modulusLength ?? 0;
    const exponent = details.publicExponent ?? 0n;
    if (bits < MIN_RSA_BITS) throw new CertificateRequestError('weak_key', `the CSR's RSA key has ${bits} bits; at least ${MIN_RSA_BITS} are required (${ACCEPTED}): ${HOW_TO}`);
    if (bits > MAX_RSA_BITS) throw new CertificateRequestError('unsupported_key', `the CSR's RSA key has ${bits} bits; at most ${MAX_RSA_BITS} are supported (${ACCEPTED})`);
    if (exponent < 3n || exponent % 2n === 0n) throw new CertificateRequestError('weak_key', "the CSR's RSA key has an invalid public exponent");
    return { kind: 'rsa', modulusBits: bits };
  }
  if (type === 'ec') {
    const curve = details.namedCurve ?? 'unknown';
    if (!CURVES.has(curve)) throw new CertificateRequestError('unsupported_key', `the CSR's EC key is on the curve ${curve}; ${ACCEPTED}: ${HOW_TO}`);
    return { kind: 'ec', modulusBits: 0 };
  }
  if (type === 'ed25519') return { kind: 'ed25519', modulusBits: 0 };
  throw new CertificateRequestError('unsupported_key', `the CSR carries ${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type} key; ${ACCEPTED}: ${HOW_TO}`);
}

function notPem(): CertificateRequestError {
  return new CertificateRequestError('malformed', 'expected one PEM certificate signing request (-----BEGIN CERTIFICATE REQUEST-----)');
}

/** The one PEM block labelled CERTIFICATE REQUEST (or NEW CERTIFICATE REQUEST), decoded; null when there is none, or more than one. */
function fromPem(text: string): Buffer | null {
  const blocks = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([A-Za-z0-9+/=\s]*?)-----END \1-----/g)].filter((m) => m[1] === 'CERTIFICATE REQUEST' || m[1] === 'NEW CERTIFICATE REQUEST');
  if (blocks.length !== 1) return null;
  const body = blocks[0]![2]!.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) return null;
  return Buffer.from(body, 'base64');
}

// --- What a CSR asks for ---------------------------------------------------------------------------

const SUBJECT_NAMES = new Map([
  ['2.5.4.3', 'CN'],
  ['2.5.4.11', 'OU'],
  ['2.5.4.10', 'O'],
  ['2.5.4.6', 'C'],
  ['2.5.4.8', 'ST'],
  ['2.5.4.7', 'L'],
  ['2.5.4.5', 'serialNumber'],
  ['1.2.840.113549.1.9.1', 'emailAddress'],
  ['0.9.2342.19200300.100.1.1', 'UID'],
  ['0.9.2342.19200300.100.1.25', 'DC'],
]);
const EXTENSION_REQUESTS = new Set(['1.2.840.113549.1.9.14', '1.3.6.1.4.1.311.2.1.14']); // PKCS#9 extensionRequest, Microsoft's msExtReq
const EXTENSION_NAMES = new Map([
  ['2.5.29.14', 'subjectKeyIdentifier'],
  ['2.5.29.15', 'keyUsage'],
  ['2.5.29.17', 'subjectAltName'],
  ['2.5.29.18', 'issuerAltName'],
  ['2.5.29.19', 'basicConstraints'],
  ['2.5.29.30', 'nameConstraints'],
  ['2.5.29.32', 'certificatePolicies'],
  ['2.5.29.35', 'authorityKeyIdentifier'],
  ['2.5.29.37', 'extendedKeyUsage'],
  ['1.3.6.1.5.5.7.1.1', 'authorityInfoAccess'],
]);
/** KeyUsage bits in order (RFC 5280 §4.2.1.3): bit i is KeyUsageFlags 1 << i. */
const KEY_USAGE_BITS = ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement', 'keyCertSign', 'cRLSign', 'encipherOnly', 'decipherOnly'];
const PURPOSE_NAMES = new Map([
  ['1.3.6.1.5.5.7.3.1', 'serverAuth'],
  ['1.3.6.1.5.5.7.3.2', 'clientAuth'],
  ['1.3.6.1.5.5.7.3.3', 'codeSigning'],
  ['1.3.6.1.5.5.7.3.4', 'emailProtection'],
  ['1.3.6.1.5.5.7.3.8', 'timeStamping'],
  ['1.3.6.1.5.5.7.3.9', 'OCSPSigning'],
  ['2.5.29.37.0', 'anyExtendedKeyUsage'],
]);

/** Reads subject, SANs and requested extensions from a decoded CertificationRequestInfo. */
function readAsks(subject: Name, attributes: readonly { type: string; values: ArrayBuffer[] }[]): CertificateRequestAsks {
  const asks: CertificateRequestAsks = { subject: [], altNames: [], ca: false, keyUsages: [], extendedKeyUsages: [], otherExtensions: [] };
  for (const rdn of subject) {
    for (const { type, value } of rdn) asks.subject.push({ type: SUBJECT_NAMES.get(type) ?? type, value: value.anyValue !== undefined ? null : (value.utf8String ?? value.printableString ?? value.ia5String ?? value.teletexString ?? value.bmpString ?? null) });
  }
  // Only the extension requests ask for certificate content; other attributes (a challenge password...) are ignored.
  for (const attribute of attributes) {
    if (!EXTENSION_REQUESTS.has(attribute.type)) continue;
    for (const value of attribute.values) for (const extension of AsnConvert.parse(value, Extensions, PARSE_LIMITS)) readExtension(extension, asks);
  }
  return asks;
}

function readExtension(extension: Extension, asks: CertificateRequestAsks): void {
  const value = extension.extnValue.buffer;
  switch (extension.extnID) {
    case id_ce_subjectKeyIdentifier: // describes the key the CSR already carries
      return;
    case id_ce_basicConstraints:
      if (AsnConvert.parse(value, BasicConstraints, PARSE_LIMITS).cA) asks.ca = true;
      return;
    case id_ce_keyUsage: {
      const bits = AsnConvert.parse(value, KeyUsage, PARSE_LIMITS).toNumber();
      KEY_USAGE_BITS.forEach((name, i) => {
        if (bits & (1 << i)) asks.keyUsages.push(name);
      });
      return;
    }
    case id_ce_extKeyUsage:
      for (const purpose of AsnConvert.parse(value, ExtendedKeyUsage, PARSE_LIMITS)) asks.extendedKeyUsages.push(PURPOSE_NAMES.get(purpose) ?? purpose);
      return;
    case id_ce_subjectAltName:
      for (const name of AsnConvert.parse(value, SubjectAlternativeName, PARSE_LIMITS)) {
        if (name.rfc822Name !== undefined) asks.altNames.push(`email:${name.rfc822Name}`);
        else if (name.dNSName !== undefined) asks.altNames.push(`DNS:${name.dNSName}`);
        else if (name.uniformResourceIdentifier !== undefined) asks.altNames.push(`URI:${name.uniformResourceIdentifier}`);
        else if (name.iPAddress !== undefined) asks.altNames.push(`IP:${name.iPAddress}`);
        else asks.altNames.push('other');
      }
      return;
    default:
      asks.otherExtensions.push(EXTENSION_NAMES.get(extension.extnID) ?? extension.extnID);
  }
}

export interface KeyAndCsr {
  /** PKCS#8 PEM; the caller writes it mode 0600. */
  keyPem: string;
  csrPem: string;
}

/**
 * A fresh RSA key (Node's native generator, off the event loop) and a CSR for it, encoded by
 * @peculiar/asn1-schema and signed by Node, asking for nothing but the key: an empty subject, or
 * CN=<user> (which must then be the caller, or the gateway refuses the CSR), and no extensions.
 */
export async function createKeyAndCsr(options: { user?: string; bits?: 2048 | 3072 } = {}): Promise<KeyAndCsr> {
  const { publicKey, privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: options.bits ?? 2048 });
  const info = new CertificationRequestInfo({
    version: 0,
    subject: nameOf(options.user ? [[NAME_OID.commonName, options.user]] : []),
    subjectPKInfo: AsnConvert.parse(publicKey.export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo),
    attributes: new Attributes(),
  });
  const csr = new CertificationRequest({ certificationRequestInfo: info, signatureAlgorithm: sha256WithRsa(), signature: signSha256Rsa(privateKey, AsnConvert.serialize(info)) });
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    csrPem: toPem('CERTIFICATE REQUEST', Buffer.from(AsnConvert.serialize(csr))),
  };
}
