/**
 * Kysely's SQLite driver, except in how a statement waits for another process's write
 * lock (the CLI beside `keygate serve`, a sqlite3 shell left inside a transaction, a
 * backup). better-sqlite3 is synchronous: left to SQLite's busy timeout, the wait would
 * stop the whole process, every gateway request with it. Here SQLite waits only a moment
 * (BUSY_STEP_MS) and the statement is tried again after an asynchronous pause, until
 * BUSY_TIMEOUT_MS have passed; meanwhile the process goes on, and so does every other query
 * on the connection (reads do not wait for a writer in WAL mode).
 *
 * Trying a statement again is safe only where its failure left nothing behind: outside a
 * transaction (a statement on its own, or the BEGIN that would start one). Transactions
 * begin IMMEDIATE, taking the write lock at BEGIN, so a statement inside one does not meet
 * the lock.
 *
 * A write refused for want of room or permission (a full disk, a read-only file) is thrown
 * as a StoreWriteError that says so, and reported to the dialect's `onRefused`.
 */
import type SqliteDatabase from 'better-sqlite3';
import { CompiledQuery, SqliteDialect, type DatabaseConnection, type Driver, type QueryResult } from 'kysely';
import { StoreWriteError } from '../write-refusal.js';

/** How long a write waits for another process's write lock before it fails (SQLITE_BUSY). */
export const BUSY_TIMEOUT_MS = 5_000;

/** How long SQLite itself waits (blocking the process) before the statement is tried again later. */
export const BUSY_STEP_MS = 10;

/** The pauses between tries: short at first (most locks are held for milliseconds), then at most this. */
const LONGEST_PAUSE_MS = 100;

/** Whether `error` is SQLite's "database is locked": another connection held the write lock past the wait. */
export function isBusyError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/**
 * SQLite's refusal of a write for want of room or permission (see write-refusal.ts), said
 * as a user would say it, with what to do; undefined for any other error.
 */
export function writeRefusalOf(error: unknown): StoreWriteError | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  if (code === 'SQLITE_FULL') return new StoreWriteError('disk full', 'free space on the disk it is on', code, error);
  if (code === 'SQLITE_READONLY_DBMOVED') return new StoreWriteError('the database file was moved or deleted while keygate had it open', 'restart keygate on the file its profile names', code, error);
  if (code.startsWith('SQLITE_READONLY')) {
    return new StoreWriteError('the database file is read-only', 'make the file, its folder and its -wal and -shm files writable by the user keygate runs as', code, error);
  }
  if (code.startsWith('SQLITE_IOERR')) return new StoreWriteError(`an I/O error (${code})`, 'check the disk and its file system (full, read-only, failing?)', code, error);
  return undefined;
}

/** Statements SQLite counts as read-only that write all the same: COMMIT writes the transaction out. */
const TRANSACTION_CONTROL = /^\s*(begin|commit|end)\b/i;

/** The dialect with this file's driver; `onRefused` hears of every write refused for want of room or permission. */
export class WaitingSqliteDialect extends SqliteDialect {
  constructor(
    private readonly sqlite: SqliteDatabase.Database,
    private readonly onRefused: (refusal: StoreWriteError) => void = () => undefined,
  ) {
    super({ database: sqlite });
  }

  override createDriver(): Driver {
    return new WaitingSqliteDriver(this.sqlite, this.onRefused);
  }
}

/** One connection, used by one query or transaction at a time (as Kysely's). */
class WaitingSqliteDriver implements Driver {
  readonly #turn = new Turn();
  readonly #connection: WaitingSqliteConnection;

  constructor(
    private readonly sqlite: SqliteDatabase.Database,
    onRefused: (refusal: StoreWriteError) => void,
  ) {
    this.#connection = new WaitingSqliteConnection(sqlite, this.#turn, onRefused);
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    await this.#turn.take();
    return this.#connection;
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'));
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'));
  }

  async releaseConnection(): Promise<void> {
    this.#turn.give();
  }

  async destroy(): Promise<void> {
    this.sqlite.close();
  }
}

class WaitingSqliteConnection implements DatabaseConnection {
  constructor(
    private readonly sqlite: SqliteDatabase.Database,
    private readonly turn: Turn,
    private readonly onRefused: (refusal: StoreWriteError) => void,
  ) {}

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const giveUpAt = Date.now() + BUSY_TIMEOUT_MS;
    for (let pause = 5; ; pause = Math.min(pause * 2, LONGEST_PAUSE_MS)) {
      try {
        return this.run<R>(compiledQuery);
      } catch (error) {
        // Inside a transaction the statement's failure is the transaction's to handle.
        if (!isBusyError(error) || this.sqlite.inTransaction || Date.now() + pause > giveUpAt) throw error;
      }
      // The connection is the others' while this one waits: nothing of it is under way.
      this.turn.give();
      await new Promise((resolve) => setTimeout(resolve, pause));
      await this.turn.take();
    }
  }

  private run<R>({ sql, parameters }: CompiledQuery): QueryResult<R> {
    const statement = this.sqlite.prepare(sql);
    try {
      // Also statements that write and answer rows (INSERT ... RETURNING).
      if (statement.reader) return { rows: statement.all(parameters) as R[] };
      const { changes, lastInsertRowid } = statement.run(parameters);
      return { numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid), rows: [] };
    } catch (error) {
      // A read that fails (an I/O error reading) is not a refused write.
      const refusal = statement.readonly && !TRANSACTION_CONTROL.test(sql) ? undefined : writeRefusalOf(error);
      if (!refusal) throw error;
      this.onRefused(refusal);
      throw refusal;
    }
  }

  async *streamQuery<R>({ sql, parameters }: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    for (const row of this.sqlite.prepare(sql).iterate(parameters)) yield { rows: [row as R] };
  }
}

/** Whose turn it is on the one connection: taken in the order asked. */
class Turn {
  #held = false;
  readonly #waiting: (() => void)[] = [];

  async take(): Promise<void> {
    if (!this.#held) {
      this.#held = true;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  give(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#held = false;
  }
}
