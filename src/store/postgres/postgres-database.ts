/**
 * PostgreSQL backend: a pg pool. bigint columns are read as numbers (milliseconds fit
 * easily in a double). An unreachable database makes queries fail within seconds
 * instead of hanging requests: connections time out, queries time out, and dead
 * connections are noticed by TCP keep-alive. Every connection reads committed data
 * (PostgreSQL's default), also where a database's owner has set another default.
 */
import type { Pool } from 'pg';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { SqlStore, type Database, type ExclusiveTransaction } from '../sql-store.js';
import { holdsNul } from '../unstorable-text.js';

const INT8_OID = 20;
/**
 * Opening a connection gives up after this long (a host that drops packets, a server that
 * takes the connection and never answers): keygate check's deadline (REACH_DEADLINE_MS),
 * so that a start-up and a check say the same "did not answer within 3 s".
 */
export const CONNECT_TIMEOUT_MS = 3_000;
/** A query gives up after this long (a database that stopped answering). */
const QUERY_TIMEOUT_MS = 10_000;

/** `keyScanRows`: as KEY_SCAN_ROWS (a test's few keys, in several slices). */
/** `connectTimeoutMs`: how long a connection may take to open (CONNECT_TIMEOUT_MS; `keygate check` gives its own deadline). */
export function openPostgresStore(url: string, options: { max?: number; keyScanRows?: number; connectTimeoutMs?: number } = {}): SqlStore {
  // pg is loaded with the first query (Kysely asks for the pool then): a process on SQLite
  // (the library's default) never loads it.
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: () => openPool(url, options.max ?? 10, options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS) }) });
  return new SqlStore(db, { kind: 'postgres', exclusive: lockingTheAccount, keyScanRows: options.keyScanRows });
}

/** pg-pool's error for a connection not opened within the connect timeout. */
export function isConnectTimeout(error: unknown): boolean {
  return error instanceof Error && error.message === 'Connection terminated due to connection timeout';
}

async function openPool(url: string, max: number, connectTimeoutMs: number): Promise<Pool> {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({
    connectionString: url,
    max,
    connectionTimeoutMillis: connectTimeoutMs,
    query_timeout: QUERY_TIMEOUT_MS,
    keepAlive: true,
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
    },
  });
  // A dropped connection must not crash the process; queries will report the error. The
  // pool listens on idle connections only; a connection that breaks while a query is in
  // flight reports on the client itself (the query is failed as well).
  pool.on('error', () => undefined);
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
    // Read committed, whatever the database's default: the counts written in one statement
    // (ON CONFLICT ... + 1) and the exclusive transactions (a row lock or an advisory lock
    // taken first, then what others wrote before it was granted read) rely on it; under
    // repeatable read they fail with serialization errors or read a stale snapshot. Queued
    // on the connection before any query it is handed out for; a connection that refuses it
    // is closed, so that those queries fail (and say so) rather than run without it.
    client.query('SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED').catch(() => void client.end().catch(() => undefined));
  });
  return pool;
}

/**
 * The account's row, locked until the transaction ends, is what the issuers of its keys
 * queue on; the inviters of an address (who may have no row yet) on an advisory lock
 * named after it, also held until the transaction ends. Neither sends a NUL, which
 * PostgreSQL refuses in text (unstorable-text.ts): an account id with one names no row
 * to lock (nor can it ever: no id holds one); an address with one is locked by a name
 * with the NUL written out (`\0`; a name another address shares only makes the two wait
 * for each other).
 */
const lockingTheAccount: ExclusiveTransaction = (db, lock, work) =>
  db.transaction().execute(async (tx) => {
    if ('accountKeys' in lock) {
      if (!holdsNul(lock.accountKeys)) await tx.selectFrom('accounts').select('id').where('id', '=', lock.accountKeys).forUpdate().execute();
    } else await sql`select pg_advisory_xact_lock(hashtextextended(${`keygate invitation ${lock.invitationOf.replaceAll('\0', '\\0')}`}, 0))`.execute(tx);
    return work(tx);
  });
