// Short-lived client certificates for users: a CSR's public key in, a certificate that names the
// authenticated caller out, and the reverse (peer certificate → user) for the gateway's mTLS.
// A CSR that asks for more than that (another name, the gateway's, a CA, other usages) is refused
// with a message saying what, never silently narrowed. The key may be RSA, ECDSA (P-256, P-384) or
// Ed25519; the CA stays RSA. Written as every Gatehouse certificate is (certificate-encoding.ts).
import { createHash, X509Certificate } from 'node:crypto';
import {
  AuthorityKeyIdentifier,
  BasicConstraints,
  ExtendedKeyUsage,
  GeneralName,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  id_kp_clientAuth,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
} from '@peculiar/asn1-x509';
import { isValidUsername } from '../identity/index.js';
import { GATEWAY_CLIENT_SUBJECT } from '../wire/index.js';
import { type CertificateRequestAsks, CertificateRequestError, type CertificateRequestProblem, type CertifiedKeyKind, parseCertificateRequest } from './certificate-request.js';
import { type RevokedCertificate, type SignedCrl, signCrl } from './crl.js';
import { extension, keyIdentifier, NAME_OID, nameOf, randomSerial, signCertificate, toPem } from './certificate-encoding.js';
import { type CaPems, loadSigningCa } from './signing-ca.js';

export const USER_URI_PREFIX = 'urn:gatehouse:user:';
export const USER_OU = 'users';
const CLOCK_SKEW_S = 60;

export interface UserCertificateSubject {
  user: string;
  /**
   * Accepted so an Identity can be passed as is, but not written: groups change within a
   * certificate's lifetime, so the gateway resolves them per request, not from the certificate.
   */
  groups?: string[];
}

export interface IssueRequest {
  csrPem: string;
  subject: UserCertificateSubject;
  ttlSeconds: number;
  now?: Date;
}

export interface IssuedCertificate {
  certificate: string;
  /** Lower-case hex, as revocation and the CRL name it. */
  serial: string;
  /** As written in the certificate: whole seconds. */
  not_before: Date;
  not_after: Date;
  /** SHA-256 of the DER, lower-case hex. */
  fingerprint: string;
}

export interface UserCertificateSigner {
  /**
   * Rejects with CertificateRequestError for a CSR the client must fix; plain Errors for our own
   * mistakes. Asynchronous so that a signer elsewhere (a KMS, an HSM) can stand behind the same face.
   */
  issue(request: IssueRequest): Promise<IssuedCertificate>;
  /** The CRL of these certificates, signed by the same CA. */
  crl(revoked: RevokedCertificate[], crlNumber: bigint | number, thisUpdate: Date, nextUpdate: Date): SignedCrl;
}

/** What a certificate lets its key do: an RSA key may also encipher; an EC or Ed25519 key only signs (RFC 5480 §3, RFC 8410 §5). */
const KEY_USAGES: Record<CertifiedKeyKind, { flags: number; names: string[] }> = {
  rsa: { flags: KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment, names: ['digitalSignature', 'keyEncipherment'] },
  ec: { flags: KeyUsageFlags.digitalSignature, names: ['digitalSignature'] },
  ed25519: { flags: KeyUsageFlags.digitalSignature, names: ['digitalSignature'] },
};

/** Loads the CA once (key parsing and checks); issue() then only builds and signs. */
export function createUserCertificateSigner(pems: CaPems): UserCertificateSigner {
  const ca = loadSigningCa(pems);
  const authorityKeyId = extension(id_ce_authorityKeyIdentifier, new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(ca.keyId) }));

  return {
    async issue({ csrPem, subject, ttlSeconds, now }) {
      const request = parseCertificateRequest(csrPem);
      if (!isValidUsername(subject.user)) throw new Error(`refusing to issue a certificate for the invalid username ${JSON.stringify(subject.user)}`);
      const refusal = refusalOf(request.asks, subject.user, request.kind);
      if (refusal) throw refusal;
      if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) throw new Error(`ttlSeconds must be a positive whole number, not ${ttlSeconds}`);
      // X.509 times have whole seconds: truncate once so the returned dates are the certificate's.
      const start = Math.floor((now ?? new Date()).getTime() / 1000) * 1000;
      const notBefore = new Date(start - CLOCK_SKEW_S * 1000);
      const notAfter = new Date(start + ttlSeconds * 1000);
      if (notAfter > ca.notAfter) throw new Error(`the CA expires on ${ca.notAfter.toISOString()}, before this certificate would`);

      const serial = randomSerial();
      const der = signCertificate(
        {
          serial,
          issuer: ca.subject,
          subject: nameOf([
            [NAME_OID.commonName, subject.user],
            [NAME_OID.organizationalUnit, USER_OU],
            [NAME_OID.organization, 'Gatehouse'],
          ]),
          notBefore,
          notAfter,
          subjectPublicKeyInfo: request.subjectPublicKeyInfo,
          extensions: [
            extension(id_ce_basicConstraints, new BasicConstraints({ cA: false }), true),
            extension(id_ce_keyUsage, new KeyUsage(KEY_USAGES[request.kind].flags), true),
            extension(id_ce_extKeyUsage, new ExtendedKeyUsage([id_kp_clientAuth])),
            extension(id_ce_subjectAltName, new SubjectAlternativeName([new GeneralName({ uniformResourceIdentifier: userUri(subject.user) })])),
            extension(id_ce_subjectKeyIdentifier, new SubjectKeyIdentifier(keyIdentifier(request.subjectPublicKeyInfo.subjectPublicKey))),
            authorityKeyId,
          ],
        },
        ca.key,
      );
      return {
        certificate: toPem('CERTIFICATE', der),
        serial,
        not_before: notBefore,
        not_after: notAfter,
        fingerprint: createHash('sha256').update(der).digest('hex'),
      };
    },
    crl: (revoked, crlNumber, thisUpdate, nextUpdate) => signCrl(ca, { revoked, crlNumber, thisUpdate, nextUpdate }),
  };
}

/** What a user certificate has, and so all a CSR may ask for: see refusalOf (key usages: KEY_USAGES). */
const ALLOWED_PURPOSES = new Set(['clientAuth']);
/** Subject attributes that name nobody and are never copied; CN and OU are judged, anything else refused. */
const DESCRIPTIVE = new Set(['O', 'C', 'ST', 'L']);

/**
 * Why a CSR may not be signed for `user`, or null. Accepted: an empty subject or one whose CNs
 * are the caller (OU only `users`; O, C, ST, L say nothing and are dropped), alternative names
 * only the caller's URI, and requested extensions no wider than what we issue (CA:FALSE,
 * digitalSignature, and keyEncipherment for an RSA key, clientAuth, a subjectKeyIdentifier). The
 * message says each thing asked for that may not be; `reason` is the first one's code (for the trail).
 */
export function refusalOf(asks: CertificateRequestAsks, user: string, kind: CertifiedKeyKind = 'rsa'): CertificateRequestError | null {
  const problems: { code: CertificateRequestProblem; text: string }[] = [];
  const only = `a certificate names only you (${user})`;
  for (const { type, value } of asks.subject) {
    if (type === 'CN') {
      if (value === user) continue;
      if (value === GATEWAY_CLIENT_SUBJECT.commonName) problems.push({ code: 'names_a_service', text: `the CSR names ${GATEWAY_CLIENT_SUBJECT.commonName}, the gateway's own service name; ${only}` });
      else problems.push({ code: 'names_another_user', text: value === null ? `the CSR's CN is not text Gatehouse reads; ${only}` : `the CSR names ${shown(value)}; ${only}` });
    } else if (type === 'OU') {
      if (value !== USER_OU) problems.push({ code: 'names_a_service', text: `the CSR asks for OU=${shown(value)}; a person's certificate is always OU=${USER_OU} (groups come from your login, never from a certificate)` });
    } else if (!DESCRIPTIVE.has(type)) {
      problems.push({ code: 'asks_for_subject_field', text: `the CSR's subject asks for ${type}; only CN=${user} (and OU=${USER_OU}, O, C, ST, L) may be given` });
    }
  }
  const mine = `URI:${userUri(user)}`;
  const otherNames = asks.altNames.filter((n) => n !== mine);
  if (otherNames.length > 0) problems.push({ code: 'names_another_user', text: `the CSR asks for the alternative name${otherNames.length === 1 ? '' : 's'} ${otherNames.map(shown).join(', ')}; ${only} (${mine})` });
  if (asks.ca) problems.push({ code: 'asks_for_ca', text: 'the CSR asks to be a CA (basicConstraints CA:TRUE); a client certificate never signs others' });
  const allowed = KEY_USAGES[kind].names;
  const usages = asks.keyUsages.filter((u) => !allowed.includes(u));
  const forKey = kind === 'rsa' ? '' : ` for ${kind === 'ec' ? 'an EC' : 'an Ed25519'} key`;
  if (usages.length > 0) problems.push({ code: 'asks_for_key_usage', text: `the CSR asks for the key usage${usages.length === 1 ? '' : 's'} ${usages.join(', ')}; a client certificate${forKey} has only ${allowed.join(' and ')}` });
  const purposes = asks.extendedKeyUsages.filter((p) => !ALLOWED_PURPOSES.has(p));
  if (purposes.length > 0) problems.push({ code: 'asks_for_key_usage', text: `the CSR asks for the extended key usage${purposes.length === 1 ? '' : 's'} ${purposes.join(', ')}; a client certificate serves only clientAuth` });
  if (asks.otherExtensions.length > 0) problems.push({ code: 'asks_for_extension', text: `the CSR asks for the extension${asks.otherExtensions.length === 1 ? '' : 's'} ${asks.otherExtensions.join(', ')}, which Gatehouse never issues` });
  if (problems.length === 0) return null;
  const fix = `ask with an empty subject or -subj /CN=${user} and no extensions (\`gatehouse cert\` does)`;
  return new CertificateRequestError(problems[0]!.code, `${[...new Set(problems.map((p) => p.text))].join('; ')}: ${fix}`);
}

/** A CSR's text in a message: plain when it is short printable ASCII, else JSON-quoted with anything else escaped. */
function shown(value: string | null): string {
  if (value === null) return '(not text)';
  const cut = value.length > 64 ? `${value.slice(0, 64)}…` : value;
  if (/^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/.test(cut)) return cut;
  return JSON.stringify(cut).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function userUri(user: string): string {
  return `${USER_URI_PREFIX}${encodeURIComponent(user)}`;
}

/**
 * Who a user certificate names, or null for anything else (a service certificate, a foreign
 * one, garbage). It does not check the chain or revocation: call it on a peer certificate that
 * TLS has already verified against our CA, then check the serial against the revocation list.
 */
export function userFromCertificate(certificate: X509Certificate | string): { user: string; serial: string } | null {
  let x509: X509Certificate;
  try {
    x509 = typeof certificate === 'string' ? new X509Certificate(certificate) : certificate;
  } catch {
    return null;
  }
  if (!x509.subject.split('\n').includes(`OU=${USER_OU}`)) return null;
  const uris = (x509.subjectAltName ?? '')
    .split(', ')
    .filter((name) => name.startsWith(`URI:${USER_URI_PREFIX}`))
    .map((name) => name.slice(`URI:${USER_URI_PREFIX}`.length));
  if (uris.length !== 1) return null;
  let user: string;
  try {
    user = decodeURIComponent(uris[0]!);
  } catch {
    return null;
  }
  if (!isValidUsername(user)) return null;
  return { user, serial: x509.serialNumber.toLowerCase() };
}
