/**
 * SQLite backend: a file (created with its folder on first start) opened with
 * better-sqlite3 in WAL mode, so the CLI and a running server can share it.
 */
import { accessSync, closeSync, constants, existsSync, openSync, readSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, sql } from 'kysely';
import { KEY_SCAN_ROWS, SqlStore, type Database, type ExclusiveTransaction } from '../sql-store.js';
import { createPrivateFile, makeFolderFor } from './private-files.js';
import { BUSY_STEP_MS, WaitingSqliteDialect, isBusyError } from './sqlite-driver.js';
import { WriteRefusals } from '../write-refusal.js';

export { BUSY_TIMEOUT_MS, isBusyError } from './sqlite-driver.js';

/** The database file, made with its folder if need be; what stands in the way is named with the profile's field. */
function openFile(file: string): SqliteDatabase.Database {
  try {
    if (file !== ':memory:') {
      makeFolderFor(file);
      // SQLite takes an empty file as a new database.
      createPrivateFile(file);
    }
    return new SqliteDatabase(file);
  } catch (error) {
    // makeFolderFor and createPrivateFile say what stands in the way in words; SQLite's own errors are its message.
    throw new Error(`store: cannot open the SQLite file ${file}: ${(error as Error).message}`);
  }
}


/** The first statements on a file: SQLite's own message ("file is not a database") with the file and what it means. */
function configure(sqlite: SqliteDatabase.Database, file: string): void {
  try {
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    // A moment only: longer waits are the driver's, without blocking the process (sqlite-driver.ts).
    sqlite.pragma(`busy_timeout = ${BUSY_STEP_MS}`);
    sqlite.pragma('foreign_keys = ON');
  } catch (error) {
    sqlite.close();
    throw cannotOpen(file, error);
  }
}

/** SQLite's own message on opening `file` ("file is not a database"), with the file and what it means. */
export function cannotOpen(file: string, error: unknown): Error {
  const { code, message } = error as { code?: string; message: string };
  const why = code === 'SQLITE_NOTADB' ? "it is not a SQLite database (is the profile's store the right file?)" : isBusyError(error) ? `another process holds its lock (${message})` : message;
  return new Error(`store: cannot open the SQLite file ${file}: ${why}`);
}

/** `keyScanRows`: as KEY_SCAN_ROWS (a test's few keys, in several slices). */
export function openSqliteStore(file: string, { keyScanRows = KEY_SCAN_ROWS }: { keyScanRows?: number } = {}): SqlStore {
  const sqlite = openFile(file);
  configure(sqlite, file);
  // SQLite's own lower() folds A-Z only: searches fold names as JavaScript does.
  sqlite.function('keygate_lower', { deterministic: true }, (text: unknown) => (typeof text === 'string' ? text.toLowerCase() : text));
  // Once a write is refused (a full disk), a setting rewritten every few seconds tells when writes go through again.
  const writeRefusals: WriteRefusals = new WriteRefusals(() => store.putSetting(WRITE_PROBE_SETTING, new Date().toISOString()));
  const db = new Kysely<Database>({ dialect: new WaitingSqliteDialect(sqlite, (refusal) => writeRefusals.refused(refusal)) });

  // data_version changes when another connection (the CLI, another process) commits.
  // Reading it is a query, so it is read only after the file system reports a write to
  // the database's files, and at least once a second where watching is not possible.
  const dataVersion = sqlite.prepare('PRAGMA data_version').pluck();
  let seen = dataVersion.get() as number;
  let maybeChanged = false;
  const stopWatching = file === ':memory:' ? () => undefined : watchForWrites(file, () => (maybeChanged = true));
  const changedElsewhere = (): boolean => {
    if (!maybeChanged) return false;
    maybeChanged = false;
    const now = dataVersion.get() as number;
    if (now === seen) return false;
    seen = now;
    return true;
  };
  const store: SqlStore = new SqlStore(db, {
    kind: 'sqlite',
    exclusive: writingAlone,
    migrating: inWriteTransaction,
    onClose: async () => {
      stopWatching();
      writeRefusals.close();
    },
    changedElsewhere,
    writeRefusals,
    keyScanRows,
  });
  return store;
}

/**
 * A file that exists, opened to be looked at and never written (`keygate check`: which
 * migrations it lacks): never made, never migrated, its journal mode as it is, and its
 * folder left as it was found.
 *
 * A read-only connection to a WAL database makes the -wal and -shm files it reads through
 * and, not allowed to checkpoint, leaves them behind, empty. So where the file is in WAL
 * mode and neither is there (nothing holds the database), it is opened read-write with
 * every write refused (`query_only`): SQLite then takes them away as it closes, as it does
 * for any last connection, and only if it is the last (a keygate that opened the file
 * meanwhile keeps them). With them there (a running keygate, or one that stopped without
 * closing), or a file it may not write, it is opened read-only: their content is read,
 * never checkpointed into the file, and nothing is removed.
 */
export function openSqliteStoreToRead(file: string): SqlStore {
  let sqlite: SqliteDatabase.Database;
  try {
    const cleansUp = isWalFile(file) && !existsSync(`${file}-wal`) && !existsSync(`${file}-shm`) && canWrite(file);
    sqlite = new SqliteDatabase(file, { readonly: !cleansUp, fileMustExist: true });
    if (cleansUp) sqlite.pragma('query_only = ON');
    sqlite.pragma(`busy_timeout = ${BUSY_STEP_MS}`);
  } catch (error) {
    throw cannotOpen(file, error);
  }
  return new SqlStore(new Kysely<Database>({ dialect: new WaitingSqliteDialect(sqlite) }), { kind: 'sqlite', exclusive: writingAlone });
}

/** SQLite's header: byte 18 (the file format write version) is 2 for a database in WAL mode. */
const WAL_FORMAT_OFFSET = 18;
const WAL_FORMAT = 2;

function isWalFile(file: string): boolean {
  const header = Buffer.alloc(WAL_FORMAT_OFFSET + 1);
  const fd = openSync(file, 'r');
  try {
    return readSync(fd, header, 0, header.length, 0) === header.length && header[WAL_FORMAT_OFFSET] === WAL_FORMAT;
  } finally {
    closeSync(fd);
  }
}

/** The file and its folder (where SQLite makes the -wal and -shm files) can be written. */
function canWrite(file: string): boolean {
  try {
    accessSync(file, constants.W_OK);
    accessSync(path.dirname(path.resolve(file)), constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The setting the write probe rewrites (with the time of its last try): nothing reads it. */
const WRITE_PROBE_SETTING = 'write_probe';

/**
 * SQLite has one writer at a time. IMMEDIATE takes the write lock before the first read,
 * so another process (the CLI beside a server) waits for it (the driver's wait) instead of
 * reading keys that are about to change; in this process, once the lock is taken, the
 * connection is held, and every other query waits for it.
 */
const writingAlone: ExclusiveTransaction = (db, _lock, work) => inWriteTransaction(db, work);

/**
 * `work` in one IMMEDIATE transaction. Migrations run this way: processes starting at once
 * on a file an older keygate made (after an upgrade) apply them one after the other, the
 * later ones finding nothing left to do (without it each applied them itself, and all but
 * one failed with 'table "keygate_settings" already exists'), and a migration that fails
 * half way leaves the file as it was.
 */
function inWriteTransaction<T>(db: Kysely<Database>, work: (db: Kysely<Database>) => Promise<T>): Promise<T> {
  return db.connection().execute(async (connection) => {
    await sql`begin immediate`.execute(connection);
    try {
      const result = await work(connection);
      await sql`commit`.execute(connection);
      return result;
    } catch (error) {
      // The error that stopped the work is the one to report, not a failed rollback's.
      await sql`rollback`.execute(connection).catch(() => undefined);
      throw error;
    }
  });
}

/** How often the data_version is read anyway, should file events be missed. */
const RECHECK_MS = 1_000;

/** Calls `onWrite` when the database file or its WAL changes; returns a stop function. */
function watchForWrites(file: string, onWrite: () => void): () => void {
  const base = path.basename(file);
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(path.dirname(path.resolve(file)), { persistent: false }, (_event, name) => {
      if (name === null || name.startsWith(base)) onWrite();
    });
    watcher.on('error', () => watcher?.close());
  } catch {
    watcher = undefined; // e.g. too many watches: the timer below still catches changes
  }
  const timer = setInterval(onWrite, RECHECK_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    watcher?.close();
  };
}
