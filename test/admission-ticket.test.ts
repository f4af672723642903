// The admission ticket as the gateway signs it (node:crypto, synchronously) and as the engine checks
// it (node:crypto, synchronously, the claims as jose checked them): the two must agree on every claim, and the signer must refuse any key but an
// Ed25519 private key rather than mint a ticket of another algorithm.
import { createHmac, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { signAdmissionTicket, TicketError, verifyAdmissionTicket } from '../src/wire/index.js';

const claims = { job: 'j-0123456789ab', user: 'alice', spec: 'a'.repeat(64), granted: { cores: 2, memory_mb: 512, time_limit_s: 60 } };

describe('admission tickets signed synchronously', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');

  it('are taken by the strict check with every claim as signed, the owner of a replaced dataset too', async () => {
    const at = Date.now();
    const plain = await verifyAdmissionTicket(signAdmissionTicket(claims, privateKey), publicKey);
    expect(plain).toMatchObject({ ...claims, user: 'alice' });
    expect(plain.exp - plain.iat).toBe(60);
    expect(Math.abs(plain.iat * 1000 - at)).toBeLessThan(60_000);
    expect(plain.replaces).toBeUndefined();
    const replacing = await verifyAdmissionTicket(signAdmissionTicket({ ...claims, replaces: { owner: null }, lifetimeS: 10_000 }, privateKey), publicKey);
    expect(replacing.replaces).toEqual({ owner: null });
    expect(replacing.exp - replacing.iat).toBe(300); // capped at TICKET_MAX_LIFETIME_S
    // Each ticket is single-use: a fresh jti every time.
    expect(replacing.jti).not.toBe(plain.jti);
  });

  it('carry the header jose would write, and nothing the check does not know', () => {
    const [head, body] = signAdmissionTicket(claims, privateKey).split('.') as [string, string, string];
    expect(JSON.parse(Buffer.from(head, 'base64url').toString())).toEqual({ alg: 'EdDSA', typ: 'gatehouse-admission+jwt' });
    expect(Object.keys(JSON.parse(Buffer.from(body, 'base64url').toString())).sort()).toEqual(['aud', 'exp', 'granted', 'iat', 'iss', 'job', 'jti', 'spec', 'sub']);
  });

  it('are refused when signed by another key, or when one byte of the claims is changed', async () => {
    const other = generateKeyPairSync('ed25519').privateKey;
    await expect(verifyAdmissionTicket(signAdmissionTicket(claims, other), publicKey)).rejects.toMatchObject({ problem: 'foreign' });
    const [head, body, sig] = signAdmissionTicket(claims, privateKey).split('.') as [string, string, string];
    const more = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(body, 'base64url').toString()), granted: { cores: 64, memory_mb: 512, time_limit_s: 60 } })).toString('base64url');
    await expect(verifyAdmissionTicket(`${head}.${more}.${sig}`, publicKey)).rejects.toBeInstanceOf(TicketError);
  });

  it('cannot be signed with a key that is not an Ed25519 private key', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    expect(() => signAdmissionTicket(claims, rsa.privateKey)).toThrow(/Ed25519 private key, not rsa/);
    expect(() => signAdmissionTicket(claims, publicKey)).toThrow(/Ed25519 private key/);
  });

  it('agree with a ticket jose signs from the same claims (the check cannot tell them apart)', async () => {
    const iat = Math.floor(Date.now() / 1000);
    const byJose = await new SignJWT({ job: claims.job, spec: claims.spec, granted: claims.granted })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'gatehouse-admission+jwt' })
      .setIssuer('gatehouse-gateway')
      .setAudience('gatehouse-engine')
      .setSubject(claims.user)
      .setJti('x')
      .setIssuedAt(iat)
      .setExpirationTime(iat + 60)
      .sign(privateKey);
    const { jti: _a, ...fromJose } = await verifyAdmissionTicket(byJose, publicKey);
    const { jti: _b, ...ours } = await verifyAdmissionTicket(signAdmissionTicket(claims, privateKey, () => iat * 1000), publicKey);
    expect(ours).toEqual(fromJose);
  });
});

// The engine checks tickets synchronously with node:crypto (no thread-pool hop per submission); it
// must refuse everything jose's jwtVerify refused with the options the engine used to give it, and
// for the same reason, on tickets made as an attacker would make them.
describe('the synchronous check refuses what jose refused', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
  const HEAD = { alg: 'EdDSA', typ: 'gatehouse-admission+jwt' };
  const NOW_S = 1_900_000_000;
  const base = { job: claims.job, spec: claims.spec, granted: claims.granted, iss: 'gatehouse-gateway', aud: 'gatehouse-engine', sub: 'alice', jti: 'j', iat: NOW_S, exp: NOW_S + 60 };
  const signed = (payload: unknown, head: unknown = HEAD, key = privateKey) => {
    const input = `${b64(head)}.${b64(payload)}`;
    return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
  };
  const byJose = (token: string) =>
    jwtVerify(token, publicKey, { algorithms: ['EdDSA'], issuer: 'gatehouse-gateway', audience: 'gatehouse-engine', typ: 'gatehouse-admission+jwt', requiredClaims: ['sub', 'jti', 'iat', 'exp'], clockTolerance: 5, currentDate: new Date(NOW_S * 1000) }).then(
      () => 'taken',
      () => 'refused',
    );
  const ours = (token: string, key: KeyObject = publicKey) =>
    verifyAdmissionTicket(token, key, () => NOW_S * 1000).then(
      () => 'taken',
      (e: TicketError) => e.problem,
    );
  const { exp: _exp, ...noExp } = base;
  const { jti: _jti, ...noJti } = base;
  const { sub: _sub, ...noSub } = base;
  // [what, token, our problem (or taken), jose's answer when it differs: only where this check is the stricter]
  const cases: [string, string, string, string?][] = [
    ['as the gateway signs it', signed(base), 'taken'],
    ['expired within the tolerance', signed({ ...base, exp: NOW_S - 4 }), 'taken'],
    ['expired past the tolerance', signed({ ...base, exp: NOW_S - 5 }), 'expired'],
    ['not yet valid (nbf) past the tolerance', signed({ ...base, nbf: NOW_S + 6 }), 'malformed'],
    ['for another audience', signed({ ...base, aud: 'someone-else' }), 'malformed'],
    ['from another issuer', signed({ ...base, iss: 'someone-else' }), 'malformed'],
    ['without exp', signed(noExp), 'malformed'],
    ['without jti', signed(noJti), 'malformed'],
    ['without sub', signed(noSub), 'malformed'],
    ['with a string exp', signed({ ...base, exp: String(NOW_S + 60) }), 'malformed'],
    ['whose claims are an array', signed([base]), 'malformed'],
    ['whose claims are not JSON', signed('{"job":'), 'malformed'],
    ['of another type (typ)', signed(base, { alg: 'EdDSA', typ: 'JWT' }), 'malformed'],
    ['with a critical header parameter', signed(base, { ...HEAD, crit: ['exp'], exp: 1 }), 'malformed'],
    ['with alg none and no signature', `${b64({ alg: 'none', typ: HEAD.typ })}.${b64(base)}.`, 'malformed'],
    ['with alg none and a signature', `${b64({ alg: 'none', typ: HEAD.typ })}.${b64(base)}.${b64('x')}`, 'foreign'],
    ['signed HS256 with the public key as the secret', (() => {
      const input = `${b64({ alg: 'HS256', typ: HEAD.typ })}.${b64(base)}`;
      return `${input}.${createHmac('sha256', publicKey.export({ format: 'der', type: 'spki' })).update(input).digest('base64url')}`;
    })(), 'foreign'],
    ['signed by another key', signed(base, HEAD, generateKeyPairSync('ed25519').privateKey), 'foreign'],
    ['with its signature cut short', signed(base).slice(0, -4), 'foreign'],
    ['with a fourth part', `${signed(base)}.x`, 'malformed'],
    ['with padding in the signature (jose took it: base64url has none)', `${signed(base)}==`, 'malformed', 'taken'],
  ];

  it.each(cases)('%s', async (_what, token, expected, jose) => {
    expect(await ours(token)).toBe(expected);
    expect(await byJose(token)).toBe(jose ?? (expected === 'taken' ? 'taken' : 'refused'));
  });

  it('refuses every ticket when the key behind the certificate is not Ed25519 (as jose did)', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const input = `${b64(HEAD)}.${b64(base)}`;
    const rsaSigned = `${input}.${sign('sha256', Buffer.from(input), rsa.privateKey).toString('base64url')}`;
    expect(await ours(rsaSigned, rsa.publicKey)).toBe('foreign');
    expect(await ours(signed(base), rsa.publicKey)).toBe('foreign');
  });
});
