// The gateway's token signing keys (Ed25519, EdDSA): one signs at a time and is replaced every
// tokens.key_rotation; a retired key stays published in the JWKS until the last token it signed
// has expired, so nothing valid is refused mid-rotation. Kept in the store so replicas share them:
// a new key is created only when none signs now, by one statement that inserts it only if still
// none does (serialized by PostgreSQL's advisory lock, by SQLite's single writer), and a gateway
// that loses that race adopts the winner's key. Every replica thus signs with one key and publishes one JWKS.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Store } from '../store/index.js';

export const TOKEN_ALG = 'EdDSA';

export interface PublicJwk {
  kty: string;
  crv: string;
  x: string;
  kid: string;
  alg: string;
  use: 'sig';
}

interface LoadedKey {
  kid: string;
  publicKey: KeyObject;
  privateKey: KeyObject;
  jwk: PublicJwk;
  signsUntil: number;
  publishedUntil: number;
}

export interface SigningKeyOptions {
  rotationSeconds: number;
  /** The longest a token signed by a key stays valid: its key stays published this long after it retires. */
  tokenLifetimeSeconds: number;
  now?: () => number;
}

export class SigningKeys {
  private keys = new Map<string, LoadedKey>();
  private refreshedAt = 0;
  private readonly now: () => number;

  private constructor(
    private readonly store: Store,
    private readonly options: SigningKeyOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  static async open(store: Store, options: SigningKeyOptions): Promise<SigningKeys> {
    const keys = new SigningKeys(store, options);
    await keys.refresh();
    await keys.signing();
    return keys;
  }

  /** The key to sign with now, creating the next one when the current has reached its rotation time. */
  async signing(): Promise<{ kid: string; privateKey: KeyObject }> {
    const active = this.active();
    if (active) return active;
    await this.refresh(); // another replica may have rotated already
    return this.active() ?? (await this.rotate());
  }

  /** The public key for a `kid`, while it is published; undefined for unknown or withdrawn keys. */
  publicKey(kid: string): KeyObject | undefined {
    const key = this.keys.get(kid);
    return key && key.publishedUntil > this.now() ? key.publicKey : undefined;
  }

  /**
   * For a kid we do not know: reloads the key set from the store (another replica's rotation), at
   * most once a second, so tokens with made-up kids cannot turn every request into a store query.
   */
  async publicKeyFresh(kid: string): Promise<KeyObject | undefined> {
    if (!this.keys.has(kid) && this.now() - this.refreshedAt >= 1000) await this.refresh();
    return this.publicKey(kid);
  }

  /** The JWKS as the store holds it now (another replica may have rotated): one small query, new rows parsed only. */
  async jwksFresh(): Promise<{ keys: PublicJwk[] }> {
    await this.refresh();
    return this.jwks();
  }

  jwks(): { keys: PublicJwk[] } {
    const now = this.now();
    return { keys: [...this.keys.values()].filter((k) => k.publishedUntil > now).map((k) => k.jwk) };
  }

  private active(): LoadedKey | undefined {
    const now = this.now();
    let best: LoadedKey | undefined;
    for (const k of this.keys.values()) if (k.signsUntil > now && (!best || k.signsUntil > best.signsUntil)) best = k;
    return best;
  }

  /** Creates the next key unless another gateway just did; either way returns the one that signs now. */
  private async rotate(): Promise<LoadedKey> {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const now = this.now();
    const nowIso = new Date(now).toISOString();
    const kid = `${nowIso.slice(0, 10).replaceAll('-', '')}-${randomBytes(6).toString('base64url')}`;
    const signsUntil = now + this.options.rotationSeconds * 1000;
    // Published past the rotation by one token lifetime, plus a minute of clock skew.
    const publishedUntil = signsUntil + (this.options.tokenLifetimeSeconds + 60) * 1000;
    const row = {
      kid,
      alg: TOKEN_ALG,
      public_jwk: JSON.stringify(toJwk(publicKey, kid)),
      private_pkcs8: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      created_at: nowIso,
      signs_until: new Date(signsUntil).toISOString(),
      published_until: new Date(publishedUntil).toISOString(),
    };
    const columns = Object.keys(row) as (keyof typeof row)[];
    // INSERT ... SELECT ... WHERE NOT EXISTS (a key that signs now): of two gateways rotating at
    // once, only the first inserts. One statement is atomic on SQLite, whose writers take turns
    // (and no transaction is held open across an await, which would stall another connection of
    // this process in SQLite's busy wait). PostgreSQL's READ COMMITTED lets two such statements
    // both see no key, so there they run under a transaction-scoped advisory lock: the second
    // statement starts after the first committed, and sees its key.
    const insert = (db: typeof this.store.db) =>
      db
        .insertInto('signing_keys')
        .columns(columns)
        .expression(
          db
            .selectNoFrom((eb) => columns.map((c) => eb.cast<string>(eb.val(row[c]), 'text').as(c)))
            .where((eb) => eb.not(eb.exists(db.selectFrom('signing_keys').select('kid').where('signs_until', '>', nowIso)))),
        )
        .execute();
    if (this.store.dialect === 'postgres') {
      await this.store.db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(hashtext('gatehouse:signing_keys'))`.execute(trx);
        await insert(trx);
      });
    } else await insert(this.store.db);
    // Keys no token can still need are deleted, private halves included.
    await this.store.db.deleteFrom('signing_keys').where('published_until', '<', nowIso).execute();
    await this.refresh();
    // Ours, or the key another gateway created a moment before: the one every replica signs with.
    const active = this.active();
    if (!active) throw new Error('signing_keys: no key signs now after a rotation (is the clock far off?)');
    return active;
  }

  private async refresh(): Promise<void> {
    const rows = await this.store.db.selectFrom('signing_keys').selectAll().where('published_until', '>', new Date(this.now()).toISOString()).execute();
    const next = new Map<string, LoadedKey>();
    for (const row of rows) {
      const known = this.keys.get(row.kid);
      if (known) {
        next.set(row.kid, known);
        continue;
      }
      const privateKey = createPrivateKey(row.private_pkcs8);
      next.set(row.kid, {
        kid: row.kid,
        privateKey,
        publicKey: createPublicKey(privateKey),
        jwk: JSON.parse(row.public_jwk) as PublicJwk,
        signsUntil: Date.parse(row.signs_until),
        publishedUntil: Date.parse(row.published_until),
      });
    }
    this.keys = next;
    this.refreshedAt = this.now();
  }
}

function toJwk(publicKey: KeyObject, kid: string): PublicJwk {
  const jwk = publicKey.export({ format: 'jwk' }) as { kty: string; crv: string; x: string };
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, kid, alg: TOKEN_ALG, use: 'sig' };
}
