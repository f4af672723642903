// The few DER operations the CSR, certificate and CRL code needs on exact bytes: a signature
// covers the bytes as sent, so they are sliced from the input, never decoded and re-encoded.
import { sign, type KeyObject } from 'node:crypto';

export class DerError extends Error {
  override readonly name = 'DerError';
}

export const TAG = {
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  SEQUENCE: 0x30,
  SET: 0x31,
  CONTEXT_0: 0xa0,
  CONTEXT_3: 0xa3,
} as const;

/** One TLV inside a buffer: the tag, where the whole TLV starts, where its content starts and ends. */
export interface Tlv {
  tag: number;
  start: number;
  content: number;
  end: number;
}

/** Reads the TLV at `at`; refuses high tag numbers, indefinite and non-minimal lengths, truncation. */
export function readTlv(der: Buffer, at: number, limit = der.length): Tlv {
  if (at + 2 > limit) throw new DerError('truncated');
  const tag = der[at]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('unsupported tag');
  const first = der[at + 1]!;
  let length = first;
  let header = 2;
  if (first & 0x80) {
    const count = first & 0x7f;
    if (count === 0 || count > 4) throw new DerError('unsupported length');
    if (at + 2 + count > limit) throw new DerError('truncated');
    if (der[at + 2] === 0) throw new DerError('non-minimal length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + der[at + 2 + i]!;
    if (length < 0x80) throw new DerError('non-minimal length');
    header += count;
  }
  const end = at + header + length;
  if (end > limit) throw new DerError('truncated');
  return { tag, start: at, content: at + header, end };
}

/** The TLVs directly inside a constructed one. */
export function childrenOf(der: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.content; at < parent.end; ) {
    const child = readTlv(der, at, parent.end);
    out.push(child);
    at = child.end;
  }
  return out;
}

/** The single top-level TLV of a buffer, with nothing after it. */
export function readWhole(der: Buffer, tag: number): Tlv {
  const tlv = readTlv(der, 0);
  if (tlv.tag !== tag || tlv.end !== der.length) throw new DerError('unexpected structure');
  return tlv;
}

export const slice = (der: Buffer, tlv: Tlv): Buffer => der.subarray(tlv.start, tlv.end);
export const contentOf = (der: Buffer, tlv: Tlv): Buffer => der.subarray(tlv.content, tlv.end);

export function encodeTlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let header: Buffer;
  if (n < 0x80) header = Buffer.from([tag, n]);
  else {
    const bytes: number[] = [];
    for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest & 0xff);
    header = Buffer.from([tag, 0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([header, content]);
}

/** A non-negative INTEGER from big-endian magnitude bytes: minimal, with a 00 when the top bit is set. */
export function encodeUnsignedInteger(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  let bytes = magnitude.subarray(i);
  if (bytes.length === 0) bytes = Buffer.from([0]);
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return encodeTlv(TAG.INTEGER, bytes);
}

// 1.2.840.113549.1.1.11 with NULL parameters (RFC 4055 §5).
export const SHA256_WITH_RSA_OID = '1.2.840.113549.1.1.11';
const SHA256_WITH_RSA = Buffer.from('300d06092a864886f70d01010b0500', 'hex');

/**
 * Signs a to-be-signed structure (TBSCertificate, TBSCertList, CertificationRequestInfo) with
 * Node's crypto and wraps it as all three are wrapped: SEQUENCE { tbs, algorithm, BIT STRING }.
 */
export function signWithSha256Rsa(tbsDer: Buffer, key: KeyObject): Buffer {
  const signature = sign('sha256', tbsDer, key);
  return encodeTlv(TAG.SEQUENCE, Buffer.concat([tbsDer, SHA256_WITH_RSA, encodeTlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), signature]))]));
}

export function toPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Decodes the one PEM block with one of `labels`; null when there is none, or more than one. */
export function fromPem(text: string, labels: readonly string[]): Buffer | null {
  const pattern = /-----BEGIN ([A-Z0-9 ]+)-----([A-Za-z0-9+/=\s]*?)-----END \1-----/g;
  const blocks = [...text.matchAll(pattern)].filter((m) => labels.includes(m[1]!));
  if (blocks.length !== 1) return null;
  const body = blocks[0]![2]!.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) return null;
  return Buffer.from(body, 'base64');
}

/** forge's asn1 works on "binary" strings. */
export const toForgeBytes = (der: Buffer): string => der.toString('binary');
export const fromForgeBytes = (bytes: string): Buffer => Buffer.from(bytes, 'binary');
