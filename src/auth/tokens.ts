// The gateway's own credentials after a login: short-lived access tokens (JWT, EdDSA) and refresh
// tokens that rotate on every use. One login is one family; presenting a used refresh token again
// means it was stolen or replayed, so the whole family is revoked (RFC 6819 §5.2.2.3).
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { errors as joseErrors, jwtVerify, type JWTPayload, SignJWT } from 'jose';
import type { Store } from '../store/index.js';
import type { AuthMethod, Identity, LoginSubject } from './identity.js';
import { type SigningKeys, TOKEN_ALG } from './signing-keys.js';
import { TokenError } from './token-error.js';

export const TOKEN_AUDIENCE = 'gatehouse';
const REFRESH_PREFIX = 'ghr_';
const VERIFIED_CACHE_MAX = 10_000;
const REVOCATION_RELOAD_MS = 5_000;

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: 'Bearer';
  expires_in: number;
}

export interface IssuedTokens extends TokenPair {
  session_id: string;
  jti: string;
}

export interface TokenOptions {
  issuer: string;
  accessTtlSeconds: number;
  refreshTtlSeconds: number;
  /** Verified tokens kept, keyed by hash, until they expire (0 turns the cache off; the benchmark's cold row). */
  verifiedCacheSize?: number;
  now?: () => number;
}

interface AccessClaims extends JWTPayload {
  groups: string[];
  auth_method: AuthMethod;
  sid: string;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

export class TokenService {
  private readonly verified = new Map<string, Identity>();
  private revoked = new Set<string>();
  private reloadTimer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(
    private readonly store: Store,
    private readonly keys: SigningKeys,
    readonly options: TokenOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Loads the revoked logins and keeps them current (another replica may revoke). */
  async start(): Promise<void> {
    await this.reloadRevocations();
    this.reloadTimer = setInterval(() => void this.reloadRevocations().catch(() => {}), REVOCATION_RELOAD_MS);
    this.reloadTimer.unref();
  }

  stop(): void {
    clearInterval(this.reloadTimer);
  }

  /** Starts a login (a new family) and issues its first pair. */
  async login(subject: LoginSubject): Promise<IssuedTokens> {
    const now = this.now();
    const id = randomUUID();
    await this.store.db
      .insertInto('token_families')
      .values({
        id,
        user: subject.user,
        groups: JSON.stringify(subject.groups),
        auth_method: subject.auth_method,
        created_at: iso(now),
        expires_at: iso(now + this.options.refreshTtlSeconds * 1000),
        revoked_at: null,
        revoke_reason: null,
      })
      .execute();
    return this.issuePair(await this.family(id));
  }

  /** Trades a refresh token for a new pair; a second use of the same token ends the login. */
  async refresh(refreshToken: string): Promise<IssuedTokens & { subject: LoginSubject }> {
    if (!refreshToken.startsWith(REFRESH_PREFIX)) throw new TokenError('malformed', 'not a refresh token');
    const hash = sha256(refreshToken);
    const row = await this.store.db.selectFrom('refresh_tokens').selectAll().where('hash', '=', hash).where('kind', '=', 'refresh').executeTakeFirst();
    if (!row) throw new TokenError('unknown', 'no such refresh token');
    const family = await this.family(row.family_id);
    if (family.revoked_at) throw new TokenError('revoked', `login ${family.id} ended: ${family.revoke_reason ?? 'revoked'}`);
    const now = this.now();
    if (Date.parse(row.expires_at) <= now) throw new TokenError('expired', 'refresh token expired');
    // The conditional update is the race guard: of two concurrent uses, exactly one wins.
    const used = await this.store.db.updateTable('refresh_tokens').set({ used_at: iso(now) }).where('hash', '=', hash).where('used_at', 'is', null).executeTakeFirst();
    if (Number(used.numUpdatedRows) !== 1) {
      await this.revoke(family.id, 'refresh token reused');
      throw new TokenError('reused', `refresh token of login ${family.id} presented again; login revoked`);
    }
    const pair = await this.issuePair(family);
    return { ...pair, subject: subjectOf(family) };
  }

  /** Ends a login: its refresh tokens, browser session, access tokens and certificates stop working. */
  async revoke(sessionId: string, reason: string): Promise<boolean> {
    const result = await this.store.db
      .updateTable('token_families')
      .set({ revoked_at: iso(this.now()), revoke_reason: reason })
      .where('id', '=', sessionId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    this.revoked.add(sessionId);
    return Number(result.numUpdatedRows) === 1;
  }

  isRevoked(sessionId: string): boolean {
    return this.revoked.has(sessionId);
  }

  /** A bearer token → Identity, or TokenError with the reason. Verified tokens are cached until expiry. */
  async verifyAccess(token: string): Promise<Identity> {
    const cacheKey = sha256(token);
    const cached = this.verified.get(cacheKey);
    if (cached) {
      if (cached.expires_at.getTime() <= this.now()) this.verified.delete(cacheKey);
      else {
        if (cached.session_id && this.revoked.has(cached.session_id)) throw new TokenError('revoked', 'login ended');
        return cached;
      }
    }
    const identity = await this.verifyUncached(token);
    const max = this.options.verifiedCacheSize ?? VERIFIED_CACHE_MAX;
    if (max === 0) return identity;
    if (this.verified.size >= max) this.verified.delete(this.verified.keys().next().value as string);
    this.verified.set(cacheKey, identity);
    return identity;
  }

  private async verifyUncached(token: string): Promise<Identity> {
    let payload: AccessClaims;
    try {
      const result = await jwtVerify<AccessClaims>(
        token,
        async (header) => {
          // Only our algorithm: refuses `none` and HS256-signed-with-our-public-key before any key lookup.
          if (header.alg !== TOKEN_ALG) throw new TokenError('alg_not_allowed', `alg ${String(header.alg)}`);
          const key = header.kid ? await this.keys.publicKeyFresh(header.kid) : undefined;
          if (!key) throw new TokenError('unknown_key', `kid ${String(header.kid)}`);
          return key;
        },
        {
          algorithms: [TOKEN_ALG],
          issuer: this.options.issuer,
          audience: TOKEN_AUDIENCE,
          requiredClaims: ['exp', 'iat', 'jti', 'sub', 'sid'],
          currentDate: new Date(this.now()),
          clockTolerance: 30,
        },
      );
      payload = result.payload;
    } catch (err) {
      throw tokenFailure(err);
    }
    if (!Array.isArray(payload.groups) || typeof payload.sub !== 'string' || (payload.auth_method !== 'oidc' && payload.auth_method !== 'ldap')) {
      throw new TokenError('missing_claim', 'groups, sub or auth_method');
    }
    if (this.revoked.has(payload.sid)) throw new TokenError('revoked', 'login ended');
    return {
      user: payload.sub,
      groups: payload.groups.filter((g): g is string => typeof g === 'string'),
      auth_method: payload.auth_method,
      credential: 'bearer',
      expires_at: new Date((payload.exp ?? 0) * 1000),
      session_id: payload.sid,
    };
  }

  /** The login behind a session id, for credentials tied to it (browser sessions, certificates). */
  async family(id: string) {
    const row = await this.store.db.selectFrom('token_families').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new TokenError('unknown', `no login ${id}`);
    return row;
  }

  private async issuePair(family: Awaited<ReturnType<TokenService['family']>>): Promise<IssuedTokens> {
    const now = this.now();
    const familyEnd = Date.parse(family.expires_at);
    if (familyEnd <= now) throw new TokenError('expired', `login ${family.id} has ended; log in again`);
    const exp = Math.min(now + this.options.accessTtlSeconds * 1000, familyEnd);
    const { kid, privateKey } = await this.keys.signing();
    const jti = randomUUID();
    const subject = subjectOf(family);
    const access = await new SignJWT({ groups: subject.groups, auth_method: subject.auth_method, sid: family.id })
      .setProtectedHeader({ alg: TOKEN_ALG, kid, typ: 'at+jwt' })
      .setIssuer(this.options.issuer)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject(subject.user)
      .setJti(jti)
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(Math.floor(exp / 1000))
      .sign(privateKey);
    const refresh = `${REFRESH_PREFIX}${randomBytes(32).toString('base64url')}`;
    await this.store.db
      .insertInto('refresh_tokens')
      .values({ hash: sha256(refresh), family_id: family.id, kind: 'refresh', csrf_hash: null, issued_at: iso(now), expires_at: family.expires_at, used_at: null })
      .execute();
    return { access_token: access, refresh_token: refresh, token_type: 'Bearer', expires_in: Math.floor((exp - now) / 1000), session_id: family.id, jti };
  }

  private async reloadRevocations(): Promise<void> {
    const rows = await this.store.db
      .selectFrom('token_families')
      .select('id')
      .where('revoked_at', 'is not', null)
      .where('expires_at', '>', iso(this.now()))
      .execute();
    const next = new Set(rows.map((r) => r.id));
    // Keep local revocations that the store query may not show yet.
    for (const id of this.revoked) next.add(id);
    this.revoked = next;
  }
}

export function subjectOf(family: { user: string; groups: string; auth_method: string }): LoginSubject {
  return { user: family.user, groups: JSON.parse(family.groups) as string[], auth_method: family.auth_method as AuthMethod };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function tokenFailure(err: unknown): TokenError {
  if (err instanceof TokenError) return err;
  if (err instanceof joseErrors.JWTExpired) return new TokenError('expired');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return new TokenError('wrong_issuer');
    if (err.claim === 'aud') return new TokenError('wrong_audience');
    if (err.claim === 'nbf' || err.claim === 'iat') return new TokenError('not_yet_valid');
    return new TokenError('missing_claim', err.claim);
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return new TokenError('bad_signature');
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return new TokenError('alg_not_allowed');
  return new TokenError('malformed', (err as Error).message);
}
