// The admission ticket as the gateway signs it (node:crypto, synchronously) and as the engine checks
// it (jose, strictly): the two must agree on every claim, and the signer must refuse any key but an
// Ed25519 private key rather than mint a ticket of another algorithm.
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT } from 'jose';
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
