// Short-lived client certificates for people: the CLI sends a CSR, the gateway signs a certificate
// that names the caller (a CSR asking for another name, a CA or other usages is refused, and the
// refusal recorded), and IT can revoke it; the CRL is public.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { GatehouseError } from '../../wire/index.js';
import { normalizeSerial } from '../authenticate.js';
import type { IssuedCertificate } from '../user-certificates.js';
import { recordDecision } from '../../audit/index.js';
import { identityOf } from '../../identity/index.js';
import { auditFor, type RouteContext } from './context.js';
import { CertRequestBody, CertResponse, NoQuery, SerialParams } from './schemas.js';

const CRL_LIFETIME_MS = 60 * 60 * 1000;

export function installCertificateRoutes(server: FastifyInstance, ctx: RouteContext): void {
  // Handler types come from the route schemas (the ones Ajv validates with), never restated.
  const app = server.withTypeProvider<TypeBoxTypeProvider>();
  let crlCache: { key: string; signedAt: number; der: Buffer; pem: string } | undefined;

  app.post('/v1/certs', { config: { authorize: { own: 'a certificate naming the caller, under their own login' } }, schema: { summary: 'Sign a client certificate for the caller from a CSR', querystring: NoQuery, body: CertRequestBody, response: { 200: CertResponse } } }, async (request) => {
    const identity = identityOf(request);
    // A certificate must not mint its successor: renewing needs a login, so a stolen key dies with its certificate.
    if (identity.credential === 'certificate') throw new GatehouseError('forbidden', 'a client certificate cannot request another; log in and use the token');
    const { csr, ttl_s } = request.body;
    // A certificate lives no longer than the login it is issued under.
    if (!identity.session_id) throw new GatehouseError('forbidden', 'this credential belongs to no login; log in and use the token');
    const login = await ctx.tokens.family(identity.session_id);
    const now = ctx.tokens.clock();
    const start = Math.floor(now / 1000) * 1000; // X.509 times have whole seconds, as the signer writes them
    const loginLeft = Math.floor((Date.parse(login.expires_at) - start) / 1000);
    if (login.revoked_at || ctx.tokens.isRevoked(login.id) || loginLeft <= 0) throw new GatehouseError('unauthenticated', 'this login has ended; log in again');
    const ttlSeconds = Math.min(ttl_s ?? ctx.clientTtlSeconds, ctx.clientTtlSeconds, loginLeft);
    let issued: IssuedCertificate;
    try {
      issued = await ctx.signer.issue({ csrPem: csr, subject: { user: identity.user, groups: identity.groups }, ttlSeconds, now: new Date(now) });
    } catch (err) {
      if ((err as Error).name !== 'CertificateRequestError') throw err;
      // The trail gets the refusal's code, never the CSR's text (which is the caller's to choose).
      await auditFor(ctx, request, identity, { action: 'cert.issue', object: 'cert:request', decision: 'deny', reason: (err as Error & { reason: string }).reason, details: { ttl_s: ttlSeconds, session_id: login.id } });
      throw new GatehouseError('invalid_request', (err as Error).message, { field: 'csr' });
    }
    const serial = normalizeSerial(issued.serial);
    // Recorded before it is stored: a certificate the trail does not know is never stored nor handed out.
    await auditFor(ctx, request, identity, {
      action: 'cert.issue',
      object: `cert:${serial}`,
      decision: 'allow',
      reason: 'client certificate for the caller',
      details: { serial, not_after: issued.not_after.toISOString(), fingerprint: issued.fingerprint, ttl_s: ttlSeconds, session_id: login.id, login_ends_at: login.expires_at },
    });
    await ctx.store.db
      .insertInto('client_certificates')
      .values({
        serial,
        user: identity.user,
        groups: JSON.stringify(identity.groups),
        auth_method: identity.auth_method,
        family_id: login.id,
        fingerprint: issued.fingerprint,
        not_before: issued.not_before.toISOString(),
        not_after: issued.not_after.toISOString(),
        revoked_at: null,
        revoked_by: null,
      })
      .execute();
    return { certificate: issued.certificate, ca: ctx.caCertificate, expires_at: issued.not_after.toISOString(), serial };
  });

  app.delete('/v1/certs/:serial', { config: { authorize: { own: "the caller's own certificate; another's with admin on cert:<serial> by policy, decided here (the owner is in the store), else 404" } }, schema: { summary: 'Revoke a client certificate (its owner, or an admin by policy)', querystring: NoQuery, params: SerialParams } }, async (request) => {
    const identity = identityOf(request);
    const serial = normalizeSerial(request.params.serial);
    const row = await ctx.store.db.selectFrom('client_certificates').selectAll().where('serial', '=', serial).executeTakeFirst();
    // Decided here, not by the authorization stage: only the store knows the owner. Another's
    // certificate takes admin on cert:<serial>, asked of the same port and recorded the same way.
    const owned = row !== undefined && row.user === identity.user;
    const decision = row && !owned && ctx.authorizer ? ctx.authorizer.decide(identity, `cert:${serial}`, 'admin') : undefined;
    const allowed = owned || decision?.allowed === true;
    await recordDecision(ctx.audit, request, identity, {
      action: 'cert.revoke',
      object: `cert:${serial}`,
      ...(decision ? { requested: 'admin' } : {}),
      decision: decision ?? { allowed, reason: !row ? 'no such certificate' : owned ? 'owner' : 'no policy loaded', policyVersion: null },
      details: { serial, owner: row?.user ?? null },
    });
    // Another user's certificate is "not found", not "forbidden": its existence is not the caller's business.
    if (!row || !allowed) throw new GatehouseError('not_found', `no certificate ${serial} of yours`);
    const revokedAt = row.revoked_at ?? new Date(ctx.tokens.clock()).toISOString();
    if (!row.revoked_at) await ctx.store.db.updateTable('client_certificates').set({ revoked_at: revokedAt, revoked_by: identity.user }).where('serial', '=', serial).execute();
    ctx.authenticate.forgetCertificate(serial);
    return { serial, revoked_at: revokedAt };
  });

  // One's own certificates; everyone's (all=1) with read or admin on cert:all, decided here and recorded.
  const ListQuery = Type.Object({ all: Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('0'), Type.Literal('true'), Type.Literal('false')], { description: "everyone's (policy: read or admin on cert:all)" })) }, { additionalProperties: false });
  app.get('/v1/certs', { config: { authorize: { own: "the caller's certificates; everyone's (all=1) with read or admin on cert:all by policy" } }, schema: { summary: 'Client certificates issued: the caller\'s, or everyone\'s with all=1 (serial, subject, expiry, revoked)', querystring: ListQuery } }, async (request) => {
    const identity = identityOf(request);
    const all = request.query.all === '1' || request.query.all === 'true';
    if (all) {
      let decision = ctx.authorizer?.decide(identity, 'cert:all', 'read');
      let requested = 'read';
      if (decision && !decision.allowed) [decision, requested] = [ctx.authorizer!.decide(identity, 'cert:all', 'admin'), 'admin'];
      await recordDecision(ctx.audit, request, identity, { action: 'cert.list', object: 'cert:all', requested, decision: decision ?? { allowed: false, reason: 'no policy loaded', policyVersion: null } });
      if (!decision?.allowed) throw new GatehouseError('forbidden', decision?.reason ?? 'no policy loaded', { rule: decision?.rule ?? null, line: decision?.line ?? null, policy_version: decision?.policyVersion ?? null });
    }
    let q = ctx.store.db.selectFrom('client_certificates').select(['serial', 'user', 'fingerprint', 'not_before', 'not_after', 'revoked_at', 'revoked_by']);
    if (!all) q = q.where('user', '=', identity.user);
    const rows = await q.orderBy('not_before', 'desc').limit(1000).execute();
    const now = new Date(ctx.tokens.clock()).toISOString();
    return {
      certificates: rows.map((r) => ({ serial: r.serial, user: r.user, subject: `CN=${r.user}`, fingerprint: r.fingerprint, not_before: r.not_before, not_after: r.not_after, expired: r.not_after <= now, revoked: r.revoked_at !== null, revoked_at: r.revoked_at, revoked_by: r.revoked_by })),
    };
  });

  app.get('/v1/certs/crl', { config: { public: true }, schema: { summary: 'The signed list of revoked client certificates (DER; ?format=pem for PEM)', querystring: Type.Object({ format: Type.Optional(Type.Union([Type.Literal('der'), Type.Literal('pem')])) }, { additionalProperties: false }) } }, async (request, reply) => {
    const now = new Date();
    const rows = await ctx.store.db.selectFrom('client_certificates').select(['serial', 'revoked_at']).where('revoked_at', 'is not', null).where('not_after', '>', now.toISOString()).orderBy('revoked_at').execute();
    const key = rows.map((r) => r.serial).join(',');
    // Re-signed when the list changes or the cached one is half-way to its nextUpdate.
    if (!crlCache || crlCache.key !== key || now.getTime() - crlCache.signedAt > CRL_LIFETIME_MS / 2) {
      const crlNumber = Math.floor(now.getTime() / 1000); // increases with every new list (RFC 5280 §5.2.3)
      const signed = ctx.signer.crl(rows.map((r) => ({ serial: r.serial, revokedAt: new Date(r.revoked_at!) })), crlNumber, now, new Date(now.getTime() + CRL_LIFETIME_MS));
      crlCache = { key, signedAt: now.getTime(), ...signed };
    }
    reply.header('cache-control', 'no-cache');
    if (request.query.format === 'pem') return reply.type('application/x-pem-file').send(crlCache.pem);
    return reply.type('application/pkix-crl').send(crlCache.der);
  });
}
