// The gateway's own credentials after a login: short-lived access tokens (JWT, EdDSA) and refresh
// tokens that rotate on every use. One login is one family; presenting a used refresh token again
// means it was stolen or replayed, so the whole family is revoked (RFC 6819 §5.2.2.3).
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload, SignJWT } from 'jose';
import type { Store } from '../store/index.js';
import { GatehouseError } from '../wire/index.js';
import { codeOrHash } from './audit-text.js';
import { type LiveLogins, liveLoginsOf } from './live-logins.js';
import { type AuthMethod, type Identity, type LoginSubject, posixUserOf } from '../identity/index.js';
import { type SigningKeys, TOKEN_ALG } from './signing-keys.js';
import { type CredentialOwner, TokenError } from './token-error.js';

export const TOKEN_AUDIENCE = 'gatehouse';
const REFRESH_PREFIX = 'ghr_';
const VERIFIED_CACHE_MAX = 10_000;
/** Logins known here to be revoked (this gateway's, or seen revoked in the store): a shortcut only. */
const KNOWN_REVOKED_MAX = 10_000;
/** Logins one revocation query asks about at most (well under either database's parameter limit). */
const LOOKUP_BATCH_MAX = 500;

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
  /** The login's POSIX account, when it has one. */
  posix_user?: string;
}

/** The ids a login or a refresh will use, known before anything is stored so the audit event can name them first. */
export interface NewIds {
  session_id: string;
  jti: string;
}

type Family = Awaited<ReturnType<TokenService['family']>>;

/** A refresh token checked and not yet used: what the route records before rotate() changes anything. */
export interface RefreshPlan {
  hash: string;
  family: Family;
  subject: LoginSubject;
  session_id: string;
  /** The id the new access token will carry. */
  jti: string;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

/**
 * Revocation across replicas: every verification, cached or not, reads its login's revoked_at from
 * the store (a primary-key lookup, the only query on a request with a cached token), so a logout
 * or a revocation through any gateway is refused by every other one at the next request, with no
 * reload window. Chosen over the alternatives: a revocation counter row read per request costs the
 * same round trip and adds a reload and a contended row; LISTEN/NOTIFY leaves a window (the notice
 * arrives after the commit, and not at all across a dropped connection) and exists on PostgreSQL
 * only. The signature check (the expensive part) stays cached by token hash, and the lookups of
 * requests arriving together share one query (RevocationLookups). On the embedded store a login
 * found live is not read again until another connection commits anything or this process revokes
 * it (live-logins.ts): the same guarantee, at the cost of one PRAGMA instead of a query.
 */
export class TokenService {
  private readonly verified = new Map<string, Identity>();
  private readonly revoked = new Set<string>();
  private readonly lookups: RevocationLookups;
  /** Logins confirmed live, kept until anyone else writes the store (embedded store only). */
  private readonly live: LiveLogins | null;
  private readonly now: () => number;

  constructor(
    private readonly store: Store,
    private readonly keys: SigningKeys,
    readonly options: TokenOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.live = liveLoginsOf(store);
    this.lookups = new RevocationLookups(store, this.live);
  }

  /** Nothing to load: revocations are read from the store per request (kept for the service's lifecycle). */
  async start(): Promise<void> {}

  stop(): void {}

  /** Fresh ids for a login, so its audit event can be recorded before the login exists. */
  newIds(): NewIds {
    return { session_id: randomUUID(), jti: randomUUID() };
  }

  /** The clock tokens, sessions and certificates are judged by. */
  clock(): number {
    return this.now();
  }

  /** Starts a login (a new family) and issues its first pair, with the ids given (recorded first) or new ones. */
  async login(subject: LoginSubject, ids: NewIds = this.newIds()): Promise<IssuedTokens> {
    const now = this.now();
    const id = ids.session_id;
    await this.store.db
      .insertInto('token_families')
      .values({
        id,
        user: subject.user,
        groups: JSON.stringify(subject.groups),
        auth_method: subject.auth_method,
        posix_user: posixUserOf(subject.posix_user) ?? null,
        created_at: iso(now),
        expires_at: iso(now + this.options.refreshTtlSeconds * 1000),
        revoked_at: null,
        revoke_reason: null,
      })
      .execute();
    return this.issuePair(await this.family(id), ids.jti);
  }

  /**
   * Checks a refresh token without using it: the plan to rotate it, or a TokenError naming the
   * login's owner. A token already used is 'reused'; the caller records that, then revokes the
   * login (revoke()), so the revocation never happens unrecorded.
   */
  async checkRefresh(refreshToken: string): Promise<RefreshPlan> {
    if (!refreshToken.startsWith(REFRESH_PREFIX)) throw new TokenError('malformed', 'not a refresh token');
    const hash = sha256(refreshToken);
    const row = await this.store.db.selectFrom('refresh_tokens').selectAll().where('hash', '=', hash).where('kind', '=', 'refresh').executeTakeFirst();
    if (!row) throw new TokenError('unknown', 'no such refresh token');
    const family = await this.family(row.family_id);
    const owner = ownerOf(family);
    if (family.revoked_at) throw new TokenError('revoked', `login ${family.id} ended: ${family.revoke_reason ?? 'revoked'}`, owner);
    if (Date.parse(row.expires_at) <= this.now()) throw new TokenError('expired', 'refresh token expired', owner);
    if (row.used_at !== null) throw new TokenError('reused', `refresh token of login ${family.id} presented again`, owner);
    return { hash, family, subject: subjectOf(family), session_id: family.id, jti: randomUUID() };
  }

  /**
   * Uses the checked token and issues the new pair. Of two concurrent uses exactly one wins (the
   * conditional update); the other gets 'reused' and, as after checkRefresh, the caller records and revokes.
   */
  async rotate(plan: RefreshPlan, current?: LoginSubject): Promise<IssuedTokens & { subject: LoginSubject }> {
    let family = plan.family;
    // The directory's groups and account for the login from now on (directory-check.ts), written
    // before the token is used: a lost race below leaves the directory's truth, nothing else.
    if (current !== undefined) family = await this.withSubject(family, current);
    const used = await this.store.db.updateTable('refresh_tokens').set({ used_at: iso(this.now()) }).where('hash', '=', plan.hash).where('used_at', 'is', null).executeTakeFirst();
    if (Number(used.numUpdatedRows) !== 1) throw new TokenError('reused', `refresh token of login ${plan.family.id} presented again`, ownerOf(plan.family));
    const pair = await this.issuePair(family, plan.jti);
    return { ...pair, subject: subjectOf(family) };
  }

  /** The directory's groups and account for a login from now on (directory-guard.ts); nothing written when they are the same. */
  async updateSubject(sessionId: string, current: LoginSubject): Promise<void> {
    await this.withSubject(await this.family(sessionId), current);
  }

  /** The login with `current`'s groups and account, written when they differ (the same person only). */
  private async withSubject(family: Family, current: LoginSubject): Promise<Family> {
    if (current.user !== family.user || sameSubject(subjectOf(family), current)) return family;
    const changed = { groups: JSON.stringify(current.groups), posix_user: posixUserOf(current.posix_user) ?? null };
    await this.store.db.updateTable('token_families').set(changed).where('id', '=', family.id).execute();
    return { ...family, ...changed };
  }

  /** checkRefresh and rotate in one, revoking the login on reuse (for callers with nothing to record). */
  async refresh(refreshToken: string): Promise<IssuedTokens & { subject: LoginSubject }> {
    try {
      return await this.rotate(await this.checkRefresh(refreshToken));
    } catch (err) {
      if (err instanceof TokenError && err.reason === 'reused' && err.owner?.session_id) {
        await this.revoke(err.owner.session_id, 'refresh token reused');
        throw new TokenError('reused', `${err.detail ?? 'refresh token presented again'}; login revoked`, err.owner);
      }
      throw err;
    }
  }

  /** Ends a login: its refresh tokens, browser session, access tokens and certificates stop working. */
  async revoke(sessionId: string, reason: string): Promise<boolean> {
    // Before the write (a read racing it keeps nothing) and after it (nothing kept meanwhile survives).
    this.live?.forget(sessionId);
    const result = await this.store.db
      .updateTable('token_families')
      .set({ revoked_at: iso(this.now()), revoke_reason: reason })
      .where('id', '=', sessionId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    this.live?.forget(sessionId);
    this.knownRevoked(sessionId);
    return Number(result.numUpdatedRows) === 1;
  }

  /** Revoked as far as this gateway knows without asking the store; callers that need other replicas' revocations read the login's row. */
  isRevoked(sessionId: string): boolean {
    return this.revoked.has(sessionId);
  }

  /**
   * Whether the login is revoked, as the store says now (any replica's logout or revocation). A login
   * the store does not hold counts as revoked: every login's row is written before its first token,
   * so a token naming another is from a store restored from a backup, a deleted login, or a key that
   * signed elsewhere, and none of those has a revocation record to honour. A store that cannot be
   * reached refuses the request (503 not_ready), never accepts it.
   */
  async revokedNow(sessionId: string): Promise<boolean> {
    if (this.revoked.has(sessionId)) return true;
    if (this.live?.isLive(sessionId)) return false;
    if (!(await this.lookups.revoked(sessionId))) return false;
    this.knownRevoked(sessionId);
    return true;
  }

  private knownRevoked(sessionId: string): void {
    if (this.revoked.size >= KNOWN_REVOKED_MAX) this.revoked.delete(this.revoked.values().next().value as string);
    this.revoked.add(sessionId);
  }

  /** A bearer token → Identity, or TokenError with the reason. Verified tokens are cached until expiry. */
  async verifyAccess(token: string): Promise<Identity> {
    const cacheKey = sha256(token);
    const cached = this.verified.get(cacheKey);
    if (cached) {
      if (cached.expires_at.getTime() <= this.now()) this.verified.delete(cacheKey);
      else {
        if (cached.session_id && (await this.revokedNow(cached.session_id))) throw new TokenError('revoked', 'login ended', { user: cached.user, groups: cached.groups, auth_method: cached.auth_method, verified: true, session_id: cached.session_id });
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
          if (header.alg !== TOKEN_ALG) throw new TokenError('alg_not_allowed', `alg ${codeOrHash(header.alg)}`);
          const key = header.kid ? await this.keys.publicKeyFresh(header.kid).catch(() => Promise.reject(new GatehouseError('not_ready', 'the gateway cannot reach its store to read signing keys; try again shortly'))) : undefined;
          if (!key) throw new TokenError('unknown_key', `kid ${codeOrHash(header.kid)}`);
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
      if (err instanceof GatehouseError) throw err; // the store, not the token: 503, not 401
      throw tokenFailure(err, token);
    }
    // Our tokens live accessTtlSeconds at most: a longer one was minted by whoever holds a key, not by this service.
    if (typeof payload.iat !== 'number' || typeof payload.exp !== 'number' || payload.exp - payload.iat > this.options.accessTtlSeconds) {
      throw new TokenError('too_long_lived', `lifetime ${String(Number(payload.exp) - Number(payload.iat))} s is past tokens.access_ttl (${this.options.accessTtlSeconds} s)`, claimedOwner(payload, false));
    }
    if (!Array.isArray(payload.groups) || typeof payload.sub !== 'string' || (payload.auth_method !== 'oidc' && payload.auth_method !== 'ldap')) {
      throw new TokenError('missing_claim', 'groups, sub or auth_method');
    }
    if (await this.revokedNow(payload.sid)) throw new TokenError('revoked', 'login ended', claimedOwner(payload, true));
    const posixUser = posixUserOf(payload.posix_user);
    return {
      user: payload.sub,
      groups: payload.groups.filter((g): g is string => typeof g === 'string'),
      auth_method: payload.auth_method,
      credential: 'bearer',
      expires_at: new Date((payload.exp ?? 0) * 1000),
      session_id: payload.sid,
      ...(posixUser !== undefined ? { posix_user: posixUser } : {}),
    };
  }

  /** The login behind a session id, for credentials tied to it (browser sessions, certificates). */
  async family(id: string) {
    const row = await this.store.db.selectFrom('token_families').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new TokenError('unknown', `no login ${id}`);
    return row;
  }

  private async issuePair(family: Family, jti: string = randomUUID()): Promise<IssuedTokens> {
    const now = this.now();
    const familyEnd = Date.parse(family.expires_at);
    if (familyEnd <= now) throw new TokenError('expired', `login ${family.id} has ended; log in again`);
    const exp = Math.min(now + this.options.accessTtlSeconds * 1000, familyEnd);
    const { kid, privateKey } = await this.keys.signing();
    const subject = subjectOf(family);
    const access = await new SignJWT({ groups: subject.groups, auth_method: subject.auth_method, sid: family.id, ...(subject.posix_user !== undefined ? { posix_user: subject.posix_user } : {}) })
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
}

/**
 * Reads revoked_at for the logins asked about, one query for all the requests that arrive while the
 * previous query runs. Never answers from a query that started before the question was asked: a
 * request arriving mid-query waits for the next one, so a revocation committed before the request
 * came is always seen. A failed query fails every request waiting on it (closed).
 */
class RevocationLookups {
  private waiting = new Map<string, { resolve: (revoked: boolean) => void; reject: (err: unknown) => void }[]>();
  private running = false;

  constructor(
    private readonly store: Store,
    private readonly live: LiveLogins | null,
  ) {}

  revoked(sessionId: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const list = this.waiting.get(sessionId);
      if (list) list.push({ resolve, reject });
      else this.waiting.set(sessionId, [{ resolve, reject }]);
      // Started after this turn's other requests have asked too, so they share the query.
      if (!this.running) {
        this.running = true;
        setImmediate(() => void this.run());
      }
    });
  }

  private async run(): Promise<void> {
    try {
      while (this.waiting.size > 0) {
        const batch = new Map([...this.waiting].slice(0, LOOKUP_BATCH_MAX));
        for (const id of batch.keys()) this.waiting.delete(id);
        try {
          const mark = this.live?.mark() ?? null;
          const rows = await this.store.db.selectFrom('token_families').select(['id', 'revoked_at']).where('id', 'in', [...batch.keys()]).execute();
          // Only a row that says "not revoked" lets a token through; a missing row does not.
          const live = new Set(rows.filter((r) => r.revoked_at === null).map((r) => r.id));
          this.live?.confirmed(mark, live);
          for (const [id, waiters] of batch) for (const w of waiters) w.resolve(!live.has(id));
        } catch {
          const closed = new GatehouseError('not_ready', 'the gateway cannot reach its store to check revocations; try again shortly');
          for (const waiters of batch.values()) for (const w of waiters) w.reject(closed);
        }
      }
    } finally {
      this.running = false;
    }
  }
}

export function subjectOf(family: { user: string; groups: string; auth_method: string; posix_user?: string | null }): LoginSubject {
  const posixUser = posixUserOf(family.posix_user);
  return { user: family.user, groups: JSON.parse(family.groups) as string[], auth_method: family.auth_method as AuthMethod, ...(posixUser !== undefined ? { posix_user: posixUser } : {}) };
}

function sameSubject(a: LoginSubject, b: LoginSubject): boolean {
  return a.posix_user === b.posix_user && a.groups.length === b.groups.length && a.groups.every((g, i) => g === b.groups[i]);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * Why jose refused a token, and whom it names: claim checks run after the signature, so their
 * payload is genuine (verified); for every other failure the name is only claimed. The detail is
 * jose's error code, never its message (which can quote the token's own header values).
 */
function tokenFailure(err: unknown, token: string): TokenError {
  const claimed = () => {
    try {
      return claimedOwner(decodeJwt(token), false);
    } catch {
      return undefined;
    }
  };
  if (err instanceof TokenError) return new TokenError(err.reason, err.detail, err.owner ?? claimed());
  if (err instanceof joseErrors.JWTClaimValidationFailed || err instanceof joseErrors.JWTExpired) {
    const owner = claimedOwner(err.payload, true);
    if (err instanceof joseErrors.JWTExpired) return new TokenError('expired', undefined, owner);
    if (err.claim === 'iss') return new TokenError('wrong_issuer', undefined, owner);
    if (err.claim === 'aud') return new TokenError('wrong_audience', undefined, owner);
    if (err.claim === 'nbf' || err.claim === 'iat') return new TokenError('not_yet_valid', undefined, owner);
    return new TokenError('missing_claim', /^[a-z_]{1,32}$/i.test(err.claim) ? err.claim : 'claim', owner);
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return new TokenError('bad_signature', undefined, claimed());
  if (err instanceof joseErrors.JOSEAlgNotAllowed) {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      alg = undefined;
    }
    return new TokenError('alg_not_allowed', `alg ${codeOrHash(alg)}`, claimed());
  }
  const code = (err as { code?: unknown }).code;
  return new TokenError('malformed', typeof code === 'string' && /^[A-Z_]{1,64}$/.test(code) ? code : 'not a JWT', claimed());
}

/** Whom a token's claims name (sub, groups, auth_method, sid), if it names anyone. */
function claimedOwner(payload: JWTPayload, verified: boolean): CredentialOwner | undefined {
  if (typeof payload.sub !== 'string') return undefined;
  const groups = Array.isArray(payload.groups) ? payload.groups.filter((g): g is string => typeof g === 'string') : [];
  return {
    user: payload.sub,
    groups: verified ? groups : [],
    auth_method: verified && typeof payload.auth_method === 'string' ? payload.auth_method : 'unknown',
    verified,
    ...(verified && typeof payload.sid === 'string' ? { session_id: payload.sid } : {}),
  };
}

/** The owner of a login's credentials (its refresh tokens, session, certificates): genuine, from our store. */
export function ownerOf(family: { id: string; user: string; groups: string; auth_method: string }): CredentialOwner {
  return { ...subjectOf(family), verified: true, session_id: family.id };
}
