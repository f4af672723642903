// The one migration set. Written with Kysely's schema builder only (no dialect-specific SQL),
// so the PostgreSQL store can run the same list.
import type { Kysely, Migration } from 'kysely';

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
};
