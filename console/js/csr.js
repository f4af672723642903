// A PKCS#10 certificate request made in the browser: an ECDSA P-256 key from WebCrypto (its private
// half never leaves this page but as the file the person saves), and the request's DER written here,
// since WebCrypto signs but does not build CSRs. Subject: CN=<user>, what the gateway signs for them.

const OID = {
  commonName: [0x55, 0x04, 0x03],
  ecdsaWithSha256: [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],
};

function der(tag, ...parts) {
  const body = concat(parts);
  const n = body.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return concat([new Uint8Array([tag, ...length]), body]);
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const seq = (...p) => der(0x30, ...p);
const set = (...p) => der(0x31, ...p);
const oid = (bytes) => der(0x06, new Uint8Array(bytes));
const utf8 = (text) => der(0x0c, new TextEncoder().encode(text));

/** A positive DER INTEGER from big-endian bytes (leading zeros dropped, one added for a high bit). */
function integer(bytes) {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const v = bytes.slice(i);
  return der(0x02, v[0] & 0x80 ? concat([new Uint8Array([0]), v]) : v);
}

/** WebCrypto's ECDSA signature is r‖s; X.509 wants SEQUENCE { INTEGER r, INTEGER s }. */
function ecdsaDer(raw) {
  const half = raw.length / 2;
  return seq(integer(raw.slice(0, half)), integer(raw.slice(half)));
}

export function pem(label, bytes) {
  let b64 = '';
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) b64 += String.fromCharCode(...bytes.subarray(i, i + chunk));
  b64 = btoa(b64);
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g).join('\n')}\n-----END ${label}-----\n`;
}

/** { csrPem, keyPem }: a fresh key pair and a signed request naming `user`. */
export async function createKeyAndCsr(user) {
  const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const spki = new Uint8Array(await crypto.subtle.exportKey('spki', keys.publicKey));
  const subject = seq(set(seq(oid(OID.commonName), utf8(user))));
  const info = seq(der(0x02, new Uint8Array([0])), subject, spki, der(0xa0));
  const signature = new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, keys.privateKey, info));
  const request = seq(info, seq(oid(OID.ecdsaWithSha256)), der(0x03, new Uint8Array([0]), ecdsaDer(signature)));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { csrPem: pem('CERTIFICATE REQUEST', request), keyPem: pem('PRIVATE KEY', pkcs8) };
}
