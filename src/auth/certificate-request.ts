// PKCS#10 certificate signing requests (RFC 2986): reading a client's CSR and proving it was
// signed by its own key, and making a key and CSR for the CLI. Only the public key of a CSR is
// certified; its subject, SANs and requested extensions are read so that a CSR asking for more
// than a certificate for the caller is refused (user-certificates.ts judges), never copied.
import { createPublicKey, generateKeyPairSync, type KeyObject, verify } from 'node:crypto';
import forge from 'node-forge';
import { childrenOf, contentOf, DerError, fromForgeBytes, fromPem, readWhole, signWithSha256Rsa, slice, TAG, type Tlv, toPem } from './der.js';

export type CertificateRequestProblem =
  | 'malformed' // not a PEM CSR, or not valid DER inside
  | 'unsupported_key' // not an RSA key
  | 'weak_key' // RSA below MIN_RSA_BITS
  | 'unsupported_signature' // a signature algorithm other than RSA PKCS#1 v1.5 with SHA-2
  | 'bad_signature' // the CSR was altered, or not signed by the key it carries
  // A well-formed CSR that asks for what a certificate for the caller never has:
  | 'names_another_user' // a CN or alternative name other than the caller
  | 'names_a_service' // the gateway's service name, or an OU other than users
  | 'asks_for_ca' // basicConstraints CA:TRUE
  | 'asks_for_key_usage' // key usages beyond digitalSignature/keyEncipherment, extended ones beyond clientAuth
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
const HOW_TO = 'generate one with `gatehouse cert`, or: openssl req -new -newkey rsa:3072 -nodes -keyout client.key -out client.csr -subj /CN=<your user name>';

// sha{256,384,512}WithRSAEncryption, 1.2.840.113549.1.1.{11,12,13}, by their DER content.
const SIGNATURE_HASHES = new Map([
  ['2a864886f70d01010b', 'sha256'],
  ['2a864886f70d01010c', 'sha384'],
  ['2a864886f70d01010d', 'sha512'],
]);

export interface CertificateRequest {
  /** The requester's RSA public key, checked: size and proof of possession. */
  publicKey: KeyObject;
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
  const der = fromPem(csrPem, ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']);
  if (!der) throw notPem();
  let parts: { info: Buffer; spki: Buffer; algorithm: Buffer; signature: Buffer };
  try {
    parts = split(der);
  } catch (err) {
    if (err instanceof DerError) throw new CertificateRequestError('malformed', `the CSR is not valid DER (${err.message})`);
    throw err;
  }

  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: parts.spki, format: 'der', type: 'spki' });
  } catch {
    throw new CertificateRequestError('unsupported_key', `the CSR's public key is of a kind Gatehouse cannot read; only RSA keys are supported: ${HOW_TO}`);
  }
  if (publicKey.asymmetricKeyType !== 'rsa') {
    const kind = publicKey.asymmetricKeyType === 'ec' ? 'an EC' : `an ${publicKey.asymmetricKeyType ?? 'unknown'}`;
    throw new CertificateRequestError('unsupported_key', `only RSA keys are supported, and this CSR carries ${kind} key: ${HOW_TO}`);
  }
  const bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0;
  const exponent = publicKey.asymmetricKeyDetails?.publicExponent ?? 0n;
  if (bits < MIN_RSA_BITS) throw new CertificateRequestError('weak_key', `the CSR's RSA key has ${bits} bits; at least ${MIN_RSA_BITS} are required: ${HOW_TO}`);
  if (bits > MAX_RSA_BITS) throw new CertificateRequestError('unsupported_key', `the CSR's RSA key has ${bits} bits; at most ${MAX_RSA_BITS} are supported`);
  if (exponent < 3n || exponent % 2n === 0n) throw new CertificateRequestError('weak_key', "the CSR's RSA key has an invalid public exponent");

  const hash = SIGNATURE_HASHES.get(parts.algorithm.toString('hex'));
  if (!hash) throw new CertificateRequestError('unsupported_signature', 'the CSR must be signed with sha256WithRSAEncryption (openssl req does this by default)');
  let valid = false;
  try {
    valid = verify(hash, parts.info, publicKey, parts.signature);
  } catch {
    valid = false; // e.g. a signature longer than the modulus
  }
  if (!valid) throw new CertificateRequestError('bad_signature', "the CSR's signature does not verify: it was altered, or not signed by the key it carries");
  let asks: CertificateRequestAsks;
  try {
    asks = readAsks(parts.info);
  } catch (err) {
    if (err instanceof DerError) throw new CertificateRequestError('malformed', `the CSR is not valid DER (${err.message})`);
    throw err;
  }
  return { publicKey, modulusBits: bits, asks };
}

function notPem(): CertificateRequestError {
  return new CertificateRequestError('malformed', 'expected one PEM certificate signing request (-----BEGIN CERTIFICATE REQUEST-----)');
}

/** CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature BIT STRING } */
function split(der: Buffer) {
  const [info, algorithm, signature, ...extra] = childrenOf(der, readWhole(der, TAG.SEQUENCE));
  if (!info || !algorithm || !signature || extra.length > 0) throw new DerError('expected three parts');
  if (info.tag !== TAG.SEQUENCE || algorithm.tag !== TAG.SEQUENCE || signature.tag !== TAG.BIT_STRING) throw new DerError('unexpected structure');
  // CertificationRequestInfo ::= SEQUENCE { version INTEGER (0), subject Name, subjectPKInfo, attributes [0] }
  const [version, , spki] = childrenOf(der, info);
  if (!version || version.tag !== TAG.INTEGER || !contentOf(der, version).equals(Buffer.from([0]))) throw new DerError('unknown version');
  if (!spki || spki.tag !== TAG.SEQUENCE) throw new DerError('no public key');
  const oid = childrenOf(der, algorithm)[0];
  if (!oid || oid.tag !== TAG.OID) throw new DerError('no signature algorithm');
  const bits = contentOf(der, signature);
  if (bits[0] !== 0) throw new DerError('signature is not a whole number of bytes');
  return { info: slice(der, info), spki: slice(der, spki), algorithm: contentOf(der, oid), signature: bits.subarray(1) };
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

/** Reads subject, SANs and requested extensions from a CertificationRequestInfo; DerError when malformed. */
function readAsks(info: Buffer): CertificateRequestAsks {
  const asks: CertificateRequestAsks = { subject: [], altNames: [], ca: false, keyUsages: [], extendedKeyUsages: [], otherExtensions: [] };
  const [, subject, , attributes, ...extra] = childrenOf(info, readWhole(info, TAG.SEQUENCE));
  if (!subject || subject.tag !== TAG.SEQUENCE || extra.length > 0) throw new DerError('unexpected request info');
  // Name ::= SEQUENCE OF RelativeDistinguishedName (SET OF AttributeTypeAndValue { type OID, value ANY })
  for (const rdn of childrenOf(info, subject)) {
    if (rdn.tag !== TAG.SET) throw new DerError('unexpected subject');
    for (const atv of childrenOf(info, rdn)) {
      const [type, value, ...more] = atv.tag === TAG.SEQUENCE ? childrenOf(info, atv) : [];
      if (!type || type.tag !== TAG.OID || !value || more.length > 0) throw new DerError('unexpected subject attribute');
      const oid = oidText(contentOf(info, type));
      asks.subject.push({ type: SUBJECT_NAMES.get(oid) ?? oid, value: text(value.tag, contentOf(info, value)) });
    }
  }
  if (!attributes) return asks;
  if (attributes.tag !== TAG.CONTEXT_0) throw new DerError('unexpected attributes');
  // Attribute ::= SEQUENCE { type OID, values SET OF ANY }; only the extension requests ask for certificate content.
  for (const attribute of childrenOf(info, attributes)) {
    const [type, values] = attribute.tag === TAG.SEQUENCE ? childrenOf(info, attribute) : [];
    if (!type || type.tag !== TAG.OID || !values || values.tag !== TAG.SET) throw new DerError('unexpected attribute');
    if (!EXTENSION_REQUESTS.has(oidText(contentOf(info, type)))) continue;
    for (const extensions of childrenOf(info, values)) {
      if (extensions.tag !== TAG.SEQUENCE) throw new DerError('unexpected extension request');
      for (const extension of childrenOf(info, extensions)) readExtension(info, extension, asks);
    }
  }
  return asks;
}

/** Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING } */
function readExtension(der: Buffer, extension: Tlv, asks: CertificateRequestAsks): void {
  const parts = extension.tag === TAG.SEQUENCE ? childrenOf(der, extension) : [];
  const id = parts[0];
  const octets = parts[parts.length - 1];
  if (!id || id.tag !== TAG.OID || !octets || octets.tag !== TAG.OCTET_STRING || parts.length > 3) throw new DerError('unexpected extension');
  const oid = oidText(contentOf(der, id));
  const value = contentOf(der, octets);
  switch (oid) {
    case '2.5.29.14': // subjectKeyIdentifier: describes the key the CSR already carries
      return;
    case '2.5.29.19': {
      // BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }
      const first = childrenOf(value, readWhole(value, TAG.SEQUENCE))[0];
      if (first && first.tag === 0x01 && contentOf(value, first).some((b) => b !== 0)) asks.ca = true;
      return;
    }
    case '2.5.29.15': {
      const bits = contentOf(value, readWhole(value, TAG.BIT_STRING)).subarray(1);
      KEY_USAGE_BITS.forEach((name, i) => {
        if (((bits[i >> 3] ?? 0) >> (7 - (i & 7))) & 1) asks.keyUsages.push(name);
      });
      return;
    }
    case '2.5.29.37':
      for (const purpose of childrenOf(value, readWhole(value, TAG.SEQUENCE))) {
        if (purpose.tag !== TAG.OID) throw new DerError('unexpected key purpose');
        const p = oidText(contentOf(value, purpose));
        asks.extendedKeyUsages.push(PURPOSE_NAMES.get(p) ?? p);
      }
      return;
    case '2.5.29.17':
      // GeneralName: [1] rfc822Name, [2] dNSName, [6] URI, [7] iPAddress; the rest shown as `other`.
      for (const name of childrenOf(value, readWhole(value, TAG.SEQUENCE))) {
        const content = contentOf(value, name);
        const ascii = (prefix: string) => `${prefix}:${content.toString('latin1')}`;
        if (name.tag === 0x81) asks.altNames.push(ascii('email'));
        else if (name.tag === 0x82) asks.altNames.push(ascii('DNS'));
        else if (name.tag === 0x86) asks.altNames.push(ascii('URI'));
        else if (name.tag === 0x87) asks.altNames.push(`IP:${content.length === 4 ? [...content].join('.') : content.toString('hex')}`);
        else asks.altNames.push('other');
      }
      return;
    default:
      asks.otherExtensions.push(EXTENSION_NAMES.get(oid) ?? oid);
  }
}

/** Dotted text of an OID's content octets. */
function oidText(content: Buffer): string {
  if (content.length === 0 || content.length > 64) throw new DerError('bad OID');
  const arcs: number[] = [];
  let n = 0;
  for (const b of content) {
    n = n * 128 + (b & 0x7f);
    if (n > Number.MAX_SAFE_INTEGER / 256) throw new DerError('bad OID');
    if (!(b & 0x80)) {
      arcs.push(n);
      n = 0;
    }
  }
  if (content[content.length - 1]! & 0x80) throw new DerError('bad OID');
  const first = arcs.shift()!;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...arcs].join('.');
}

/** A DirectoryString as text, or null for a kind we do not read (UniversalString, or bad UTF-8/UTF-16). */
function text(tag: number, content: Buffer): string | null {
  try {
    switch (tag) {
      case 0x0c: // UTF8String
        return new TextDecoder('utf-8', { fatal: true }).decode(content);
      case 0x13: // PrintableString
      case 0x16: // IA5String
      case 0x14: // TeletexString (T.61; latin1 is what everyone means)
        return content.toString('latin1');
      case 0x1e: // BMPString: UTF-16BE
        return new TextDecoder('utf-16be', { fatal: true }).decode(content);
      default:
        return null;
    }
  } catch {
    return null;
  }
}

export interface KeyAndCsr {
  /** PKCS#8 PEM; the caller writes it mode 0600. */
  keyPem: string;
  csrPem: string;
}

/**
 * A fresh RSA key (Node's native generator: forge's takes seconds) and a CSR for it, built with
 * forge and signed by Node, asking for nothing but the key: an empty subject, or CN=<user> (which
 * must then be the caller, or the gateway refuses the CSR), and no extensions.
 */
export function createKeyAndCsr(options: { user?: string; bits?: 2048 | 3072 } = {}): KeyAndCsr {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: options.bits ?? 2048 });
  const jwk = publicKey.export({ format: 'jwk' });
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.setRsaPublicKey(bigInteger(jwk.n), bigInteger(jwk.e));
  if (options.user) csr.setSubject([{ name: 'commonName', value: options.user, valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class }]);
  const info = (forge.pki as unknown as ForgeCsrInternals).getCertificationRequestInfo(csr);
  const der = signWithSha256Rsa(fromForgeBytes(forge.asn1.toDer(info).getBytes()), privateKey);
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    csrPem: toPem('CERTIFICATE REQUEST', der),
  };
}

// Present in node-forge, absent from its type definitions.
interface ForgeCsrInternals {
  getCertificationRequestInfo(csr: forge.pki.CertificateSigningRequest): forge.asn1.Asn1;
}

/** forge's BigInteger from a JWK base64url number. */
export function bigInteger(base64url: string | undefined): forge.jsbn.BigInteger {
  if (!base64url) throw new Error('RSA key without a modulus or exponent');
  return new forge.jsbn.BigInteger(Buffer.from(base64url, 'base64url').toString('hex'), 16);
}
