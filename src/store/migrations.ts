/**
 * The one migration set, applied unchanged to SQLite and PostgreSQL. Times are
 * milliseconds since the epoch in bigint columns; booleans are 0/1 integers; lists and
 * details are JSON text, so both databases read the same rows the same way.
 */
import type { Kysely, Migration } from 'kysely';

export const migrations: Record<string, Migration> = {
  '0001_core': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('accounts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('plan_id', 'text', (c) => c.notNull())
        .addColumn('plan_expires_at', 'bigint')
        .addColumn('api_access', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('overage', 'integer')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('hash', 'text', (c) => c.notNull().unique())
        .addColumn('hint', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('account_id', 'text', (c) => c.references('accounts.id').onDelete('set null'))
        .addColumn('mode', 'text', (c) => c.notNull())
        .addColumn('scopes', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint')
        .addColumn('expires_at', 'bigint')
        .addColumn('revoked_at', 'bigint')
        .addColumn('created_by', 'text')
        .addColumn('rotated_from', 'text')
        .execute();
      await db.schema.createIndex('api_keys_account').on('api_keys').column('account_id').execute();

      await db.schema
        .createTable('members')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.references('accounts.id').onDelete('cascade'))
        .addColumn('email', 'text', (c) => c.notNull().unique())
        .addColumn('password_hash', 'text')
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('invite_hash', 'text', (c) => c.unique())
        .addColumn('invite_expires_at', 'bigint')
        .addColumn('failed_logins', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('locked_until', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('sessions')
        .addColumn('id_hash', 'text', (c) => c.primaryKey())
        .addColumn('member_id', 'text', (c) => c.notNull().references('members.id').onDelete('cascade'))
        .addColumn('csrf_secret', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('audit_log')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('account_id', 'text')
        .addColumn('key_id', 'text')
        .addColumn('detail', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_log_account').on('audit_log').columns(['account_id', 'at']).execute();

      await db.schema
        .createTable('meter_usage')
        .addColumn('account_id', 'text', (c) => c.notNull())
        .addColumn('meter', 'text', (c) => c.notNull())
        .addColumn('period_start', 'text', (c) => c.notNull())
        .addColumn('used', 'double precision', (c) => c.notNull())
        .addPrimaryKeyConstraint('meter_usage_pk', ['account_id', 'meter', 'period_start'])
        .execute();

      await db.schema
        .createTable('gauges')
        .addColumn('account_id', 'text', (c) => c.notNull())
        .addColumn('meter', 'text', (c) => c.notNull())
        .addColumn('value', 'double precision', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('gauges_pk', ['account_id', 'meter'])
        .execute();

      await db.schema
        .createTable('usage_daily')
        .addColumn('account_id', 'text', (c) => c.notNull())
        .addColumn('day', 'text', (c) => c.notNull())
        .addColumn('metric', 'text', (c) => c.notNull())
        .addColumn('label', 'text', (c) => c.notNull())
        .addColumn('value', 'double precision', (c) => c.notNull())
        .addPrimaryKeyConstraint('usage_daily_pk', ['account_id', 'day', 'metric', 'label'])
        .execute();
    },
    async down(db: Kysely<any>) {
      for (const table of ['usage_daily', 'gauges', 'meter_usage', 'audit_log', 'sessions', 'members', 'api_keys', 'accounts']) {
        await db.schema.dropTable(table).ifExists().execute();
      }
    },
  },
  // Facts about the database itself, such as which key hashing its keys were made with.
  '0002_settings': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('keygate_settings')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('keygate_settings').ifExists().execute();
    },
  },
  // Units a process stopping during a Redis outage could not deliver (see PendingUnits).
  '0003_pending_units': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('pending_units')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull())
        .addColumn('meter', 'text', (c) => c.notNull())
        .addColumn('period_start', 'text', (c) => c.notNull())
        .addColumn('units', 'double precision', (c) => c.notNull())
        .addColumn('saved_at', 'bigint', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('pending_units').ifExists().execute();
    },
  },
  // Give-backs counted apart from usage, so a give-back written after the charge it undoes
  // is not lost to the larger-value-wins merge (see mergeUsage).
  '0004_returned_units': {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('meter_usage').addColumn('returned', 'double precision', (c) => c.notNull().defaultTo(0)).execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.alterTable('meter_usage').dropColumn('returned').execute();
    },
  },
  // The audit log of every account is read a page at a time, newest first: without this
  // each page sorted the whole table.
  '0005_audit_order': {
    async up(db: Kysely<any>) {
      await db.schema.createIndex('audit_log_order').on('audit_log').columns(['at', 'id']).execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropIndex('audit_log_order').ifExists().execute();
    },
  },
  // Wrong passwords per email and client address (or /64), counted by every process alike.
  '0006_sign_in_failures': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('sign_in_failures')
        .addColumn('email', 'text', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('failures', 'integer', (c) => c.notNull())
        .addColumn('locked_until', 'bigint')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('sign_in_failures_pk', ['email', 'source'])
        .execute();
      await db.schema.createIndex('sign_in_failures_updated').on('sign_in_failures').column('updated_at').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('sign_in_failures').ifExists().execute();
    },
  },
  // Rate-limit windows and blocks of the memory counters, so a restart lifts no block.
  '0007_limit_state': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('limit_state')
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('limit_state_pk', ['kind', 'id'])
        .execute();
      await db.schema.createIndex('limit_state_expires').on('limit_state').column('expires_at').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('limit_state').ifExists().execute();
    },
  },
  // An account's own limits in place of its plan's (rate-limit windows, meter limits), as
  // JSON text; null: its plan's (see limits/overrides.ts).
  '0008_account_limits': {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('accounts').addColumn('limits', 'text').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.alterTable('accounts').dropColumn('limits').execute();
    },
  },
  // `sign_in_failures.email` holds a keyed digest of the email from now on, not the text
  // typed (a password pasted into the field stayed there for a day). The rows kept in clear
  // until now are dropped: counts and pauses of the last day start afresh, once.
  '0009_sign_in_email_digests': {
    async up(db: Kysely<any>) {
      await db.deleteFrom('sign_in_failures').execute();
    },
    async down(db: Kysely<any>) {
      await db.deleteFrom('sign_in_failures').execute();
    },
  },
  // Issuing and rotating a key read the account's keys still in use, and a rotation the
  // replacements of the key it replaces: without these, every key the account ever had
  // (revoked, expired) was read for each new one, inside its account's lock.
  '0010_keys_in_use': {
    async up(db: Kysely<any>) {
      await db.schema.createIndex('api_keys_account_in_use').on('api_keys').columns(['account_id', 'revoked_at', 'expires_at']).execute();
      await db.schema.createIndex('api_keys_rotated_from').on('api_keys').column('rotated_from').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropIndex('api_keys_rotated_from').ifExists().execute();
      await db.schema.dropIndex('api_keys_account_in_use').ifExists().execute();
    },
  },
  // A key's own rate-limit windows, on top of its account's (limits/key-windows.ts), as
  // JSON text; null: none.
  '0011_key_rate_limits': {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('api_keys').addColumn('rate_limits', 'text').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.alterTable('api_keys').dropColumn('rate_limits').execute();
    },
  },
  // The client address each change was asked from (the admin API's, the dashboard's), as
  // the admin access log reads it; null for the CLI's, the library's, and every event
  // written before.
  '0012_audit_actor_address': {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('audit_log').addColumn('actor_address', 'text').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.alterTable('audit_log').dropColumn('actor_address').execute();
    },
  },
  // A session's forms are signed with a secret derived from its id, which only the
  // member's browser holds (dashboard/csrf.ts): the secret each session kept in clear
  // here let whoever read the database (a backup, a replica) make any session's form
  // tokens. Sessions themselves stay: their cookies still sign them in, and their forms
  // take the derived secret from the next page on.
  '0013_drop_session_csrf_secret': {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('sessions').dropColumn('csrf_secret').execute();
    },
    async down(db: Kysely<any>) {
      // The release before reads a secret for every session: none has one to give it.
      await db.deleteFrom('sessions').execute();
      await db.schema.alterTable('sessions').addColumn('csrf_secret', 'text').execute();
    },
  },
};
