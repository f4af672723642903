// The one migration set. Written with Kysely's schema builder only (no dialect-specific SQL),
// so the PostgreSQL store can run the same list.
import { type Kysely, type Migration, PostgresAdapter, sql } from 'kysely';

export const migrations: Record<string, Migration> = {
  '0001_instance': {
    async up(db: Kysely<unknown>) {
      // Who this store belongs to: the instance id names the installation in logs and exports.
      await db.schema
        .createTable('instance')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('instance').execute();
    },
  },
  '0002_identity': {
    async up(db: Kysely<unknown>) {
      // Token signing keys: the private half stays in the store (mode 0600 folder), never in a log.
      await db.schema
        .createTable('signing_keys')
        .addColumn('kid', 'text', (c) => c.primaryKey())
        .addColumn('alg', 'text', (c) => c.notNull())
        .addColumn('public_jwk', 'text', (c) => c.notNull())
        .addColumn('private_pkcs8', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('signs_until', 'text', (c) => c.notNull()) // then the next key signs
        .addColumn('published_until', 'text', (c) => c.notNull()) // then it leaves the JWKS
        .execute();
      // One login = one family: refresh tokens, the browser session and certificates hang off it.
      await db.schema
        .createTable('token_families')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user', 'text', (c) => c.notNull())
        .addColumn('groups', 'text', (c) => c.notNull()) // JSON array
        .addColumn('auth_method', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .addColumn('revoke_reason', 'text')
        .execute();
      await db.schema.createIndex('token_families_user').on('token_families').column('user').execute();
      // Refresh tokens and browser session cookies are stored as SHA-256 hashes only.
      await db.schema
        .createTable('refresh_tokens')
        .addColumn('hash', 'text', (c) => c.primaryKey())
        .addColumn('family_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull()) // refresh | session
        .addColumn('csrf_hash', 'text')
        .addColumn('issued_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('used_at', 'text')
        .execute();
      await db.schema.createIndex('refresh_tokens_family').on('refresh_tokens').column('family_id').execute();
      // Browser sign-ins in flight: state → nonce and PKCE verifier, for ten minutes.
      await db.schema
        .createTable('oidc_requests')
        .addColumn('state', 'text', (c) => c.primaryKey())
        .addColumn('nonce', 'text', (c) => c.notNull())
        .addColumn('code_verifier', 'text', (c) => c.notNull())
        .addColumn('return_to', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('client_certificates')
        .addColumn('serial', 'text', (c) => c.primaryKey())
        .addColumn('user', 'text', (c) => c.notNull())
        .addColumn('groups', 'text', (c) => c.notNull())
        .addColumn('auth_method', 'text', (c) => c.notNull())
        .addColumn('family_id', 'text')
        .addColumn('fingerprint', 'text', (c) => c.notNull())
        .addColumn('not_before', 'text', (c) => c.notNull())
        .addColumn('not_after', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .addColumn('revoked_by', 'text')
        .execute();
      await db.schema.createIndex('client_certificates_user').on('client_certificates').column('user').execute();
    },
    async down(db: Kysely<unknown>) {
      for (const t of ['client_certificates', 'oidc_requests', 'refresh_tokens', 'token_families', 'signing_keys']) await db.schema.dropTable(t).execute();
    },
  },
  '0003_jobs': {
    async up(db: Kysely<unknown>) {
      // The gateway's job record: who submitted what, what was granted, where it runs and how it
      // ended. Pending jobs keep their whole spec here so a restart loses none of them; usage is
      // held by every record admitted and not yet released (the ledger is rebuilt from these rows).
      await db.schema
        .createTable('jobs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('seq', 'integer', (c) => c.notNull().unique()) // submission order: the pending queue's FIFO
        .addColumn('user', 'text', (c) => c.notNull())
        .addColumn('groups', 'text', (c) => c.notNull()) // JSON array, as at submission: limits of pending jobs
        .addColumn('auth_method', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('input', 'text', (c) => c.notNull())
        .addColumn('output', 'text', (c) => c.notNull())
        .addColumn('backend', 'text', (c) => c.notNull())
        .addColumn('backend_id', 'text')
        .addColumn('spec', 'text', (c) => c.notNull()) // JSON JobSpec, source included
        .addColumn('spec_hash', 'text', (c) => c.notNull())
        .addColumn('cores', 'integer', (c) => c.notNull())
        .addColumn('memory_mb', 'integer', (c) => c.notNull())
        .addColumn('time_limit_s', 'integer', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('held', 'integer', (c) => c.notNull()) // 1 while the job holds quota
        .addColumn('reason', 'text')
        .addColumn('error', 'text')
        .addColumn('status', 'text') // JSON: the backend's last status
        .addColumn('core_seconds', 'double precision', (c) => c.notNull()) // REAL in SQLite; 8 bytes in PostgreSQL, where real is 4
        .addColumn('policy_version', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('admitted_at', 'text')
        .addColumn('finished_at', 'text')
        .execute();
      await db.schema.createIndex('jobs_user_seq').on('jobs').columns(['user', 'seq']).execute();
      await db.schema.createIndex('jobs_state').on('jobs').column('state').execute();
      await db.schema.createIndex('jobs_finished_at').on('jobs').column('finished_at').execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('jobs').execute();
    },
  },
  '0004_oidc_binding': {
    async up(db: Kysely<unknown>) {
      // A browser sign-in belongs to the browser that started it: the hash of a random value kept
      // in that browser's cookie. Rows without one (started before this migration) are refused.
      await db.schema.alterTable('oidc_requests').addColumn('binding_hash', 'text').execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.alterTable('oidc_requests').dropColumn('binding_hash').execute();
    },
  },
  '0005_posix_user': {
    async up(db: Kysely<unknown>) {
      // The POSIX account a login names (the directory's slurm.user_attribute, the IdP's
      // slurm.user_claim): what the Slurm backend runs the person's jobs as. Logins from before
      // this migration have none, so Slurm refuses them until they log in again.
      await db.schema.alterTable('token_families').addColumn('posix_user', 'text').execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.alterTable('token_families').dropColumn('posix_user').execute();
    },
  },
  '0006_job_posix_user': {
    async up(db: Kysely<unknown>) {
      // The POSIX account a job runs as (the submitter's, from their login), kept with the job so a
      // pending job admitted later, or after a restart, is handed over under the same account.
      // Jobs from before this migration have none.
      await db.schema.alterTable('jobs').addColumn('posix_user', 'text').execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.alterTable('jobs').dropColumn('posix_user').execute();
    },
  },
  '0007_login_throttle': {
    async up(db: Kysely<unknown>) {
      // Failed logins and lockouts, shared by every gateway over this store (src/auth/throttle.ts).
      // key_hash: SHA-256 of user:<name> or the client address's key, never the name itself.
      // at, locked_until: milliseconds since the epoch (bigint: past 2^31 in PostgreSQL).
      await db.schema
        .createTable('login_throttle')
        .addColumn('key_hash', 'text', (c) => c.notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('locked_until', 'bigint')
        // A login in flight reserves its failure row before the password is tried (attempt: its random
        // id), so racing guesses cannot all pass the check at the limit; a success removes its own row.
        .addColumn('attempt', 'text')
        .execute();
      await db.schema.createIndex('login_throttle_key_at').on('login_throttle').columns(['key_hash', 'at']).execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('login_throttle').execute();
    },
  },
  '0008_jobs_user_finished': {
    async up(db: Kysely<unknown>) {
      // Every admission reads its user's charges of the last 24 hours from the records (the ledger is
      // shared by all gateways over the store): by user, then by end time, not by scanning their history.
      await db.schema.createIndex('jobs_user_finished').on('jobs').columns(['user', 'finished_at']).execute();
      // Submission numbers (the pending queues' order) drawn by several gateways at once: a shared
      // sequence in PostgreSQL. The embedded store has one process, which counts on its own.
      if (db.getExecutor().adapter instanceof PostgresAdapter) {
        await sql`create sequence jobs_seq`.execute(db);
        await sql`select setval('jobs_seq', coalesce(max(seq), 0) + 1, false) from jobs`.execute(db);
      }
    },
    async down(db: Kysely<unknown>) {
      if (db.getExecutor().adapter instanceof PostgresAdapter) await sql`drop sequence jobs_seq`.execute(db);
      await db.schema.dropIndex('jobs_user_finished').execute();
    },
  },
  '0009_gateways': {
    async up(db: Kysely<unknown>) {
      // The gateways over one store, each with the URL the others reach it at: the audit routes ask
      // every live one for its trail (one chain per gateway), so a query spans them all.
      await db.schema
        .createTable('gateways')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('seen_at', 'bigint', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('gateways').execute();
    },
  },
  '0010_audit_chains': {
    async up(db: Kysely<unknown>) {
      // Every gateway's chain ever seen over this store, kept after its gateway stops: an auditor's
      // merged answer names a chain whose gateway is gone as missing, until an admin retires it
      // (its trail exported). The `gateways` rows above are processes; these are trails.
      // Keyed by the chain's own identity (drawn in its audit.db), not the gateway's name: a name
      // can pass to a new chain once the old one is retired, and both stay listed.
      await db.schema
        .createTable('audit_chains')
        .addColumn('chain_id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('first_seen_at', 'bigint', (c) => c.notNull())
        .addColumn('seen_at', 'bigint', (c) => c.notNull())
        .addColumn('retired_at', 'bigint')
        .addColumn('retired_by', 'text')
        .addColumn('retired_reason', 'text')
        .execute();
      await db.schema.createIndex('audit_chains_name').on('audit_chains').column('name').execute();
      // The policy version each gateway serves, renewed with its heartbeat: /readyz says when they differ.
      await db.schema.alterTable('gateways').addColumn('policy_version', 'text').execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.alterTable('gateways').dropColumn('policy_version').execute();
      await db.schema.dropTable('audit_chains').execute();
    },
  },
  '0011_slurm_jobs': {
    async up(db: Kysely<unknown>) {
      // The Slurm backend's record of each job (src/proxy/slurm/job-records.ts), shared by every gateway
      // over the store so any of them answers status, logs and cancel, and the leader finishes a job
      // another submitted. record: the JSON SlurmJobRecord; live: 1 until its final status is recorded
      // (a final record is never written again).
      await db.schema
        .createTable('slurm_jobs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('live', 'integer', (c) => c.notNull())
        .addColumn('record', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('slurm_jobs_live').on('slurm_jobs').column('live').execute();
      // A finished job's task logs, copied out of the person's folder (bounded: 8 MiB per job in all).
      // Bytes, not text: a log may hold anything, NUL included, which PostgreSQL text refuses.
      const bytes = db.getExecutor().adapter instanceof PostgresAdapter ? 'bytea' : 'blob';
      await db.schema
        .createTable('slurm_job_logs')
        .addColumn('job_id', 'text', (c) => c.notNull())
        .addColumn('partition', 'integer', (c) => c.notNull())
        .addColumn('content', bytes, (c) => c.notNull())
        .addPrimaryKeyConstraint('slurm_job_logs_pk', ['job_id', 'partition'])
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('slurm_job_logs').execute();
      await db.schema.dropTable('slurm_jobs').execute();
    },
  },
  '0012_jobs_cancelled_by': {
    async up(db: Kysely<unknown>) {
      // Who cancelled a job (its owner, or someone policy lets cancel it), shown to its owner: an
      // admin's cancel must not look like the job's own end. Null for every other end.
      await db.schema.alterTable('jobs').addColumn('cancelled_by', 'text').execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.alterTable('jobs').dropColumn('cancelled_by').execute();
    },
  },
  '0013_policy_versions': {
    async up(db: Kysely<unknown>) {
      // The text of every policy version that ever served, stored before it serves (keyed by its
      // content hash, which every decision in the trail carries): an auditor's lineage shows the
      // deciding rule as it was when it decided, whatever policies/ says today.
      await db.schema
        .createTable('policy_versions')
        .addColumn('version', 'text', (c) => c.primaryKey())
        .addColumn('model', 'text', (c) => c.notNull())
        .addColumn('policy', 'text', (c) => c.notNull())
        .addColumn('first_served_at', 'text', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('policy_versions').execute();
    },
  },
  '0014_jobs_login': {
    async up(db: Kysely<unknown>) {
      // The login (token family) a job was submitted under: a job still waiting when that login ends
      // (logout, a stolen refresh token detected, the directory's account gone) is not run. Null on
      // jobs from before it was kept, and on jobs no login submitted.
      await db.schema.alterTable('jobs').addColumn('login_id', 'text').execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.alterTable('jobs').dropColumn('login_id').execute();
    },
  },
  '0015_jobs_end_owed': {
    async up(db: Kysely<unknown>) {
      // The trail (its chain id) that owes an ended job its job.finish: set by the end's own write,
      // cleared once the event is durable. A gateway stopped between the two finds its rows at start-up
      // and records what its trail lacks (JobBook.recordOwedEnds). Indexed only where set.
      await db.schema.alterTable('jobs').addColumn('end_owed', 'text').execute();
      await db.schema.createIndex('jobs_end_owed').on('jobs').column('end_owed').where(sql.ref('end_owed'), 'is not', null).execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropIndex('jobs_end_owed').execute();
      await db.schema.alterTable('jobs').dropColumn('end_owed').execute();
    },
  },
};
