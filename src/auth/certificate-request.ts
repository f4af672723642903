// PKCS#10 certificate signing requests (RFC 2986): reading a client's CSR and proving it was
// signed by its own key, and making a key and CSR for the CLI. Only the public key of a CSR is
// used; its subject, SANs and requested extensions are never read.
import { createPublicKey, generateKeyPairSync, type KeyObject, verify } from 'node:crypto';
import forge from 'node-forge';
import { childrenOf, contentOf, DerError, fromForgeBytes, fromPem, readWhole, signWithSha256Rsa, slice, TAG, toPem } from './der.js';

export type CertificateRequestProblem =
  | 'malformed' // not a PEM CSR, or not valid DER inside
  | 'unsupported_key' // not an RSA key
  | 'weak_key' // RSA below MIN_RSA_BITS
  | 'unsupported_signature' // a signature algorithm other than RSA PKCS#1 v1.5 with SHA-2
  | 'bad_signature'; // the CSR was altered, or not signed by the key it carries

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
const HOW_TO = 'generate one with `gatehouse cert`, or: openssl req -new -newkey rsa:3072 -nodes -keyout client.key -out client.csr -subj /CN=me';

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
  return { publicKey, modulusBits: bits };
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

export interface KeyAndCsr {
  /** PKCS#8 PEM; the caller writes it mode 0600. */
  keyPem: string;
  csrPem: string;
}

/**
 * A fresh RSA key (Node's native generator: forge's takes seconds) and a CSR for it, built with
 * forge and signed by Node. The gateway ignores the CSR's subject; CN=<user> only helps a human
 * reading the file.
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
