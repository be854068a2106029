/**
 * PostgreSQL backend: a pg pool. bigint columns are read as numbers (milliseconds fit
 * easily in a double).
 */
import pg from 'pg';
import { Kysely, PostgresDialect } from 'kysely';
import type { Database } from '../sql-store.js';
import { SqlStore } from '../sql-store.js';

const INT8_OID = 20;

export function openPostgresStore(url: string, options: { max?: number } = {}): SqlStore {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
    },
  });
  // A dropped connection must not crash the process; queries will report the error.
  pool.on('error', () => undefined);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return new SqlStore('postgres', db);
}
