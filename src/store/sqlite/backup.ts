/**
 * A copy of a SQLite store taken while keygate runs: SQLite's online backup, which copies
 * a consistent snapshot of the database (WAL included). Copying the file itself (cp) can
 * catch the database between its file and its -wal file.
 *
 * The copy is made in one step: an online backup made in steps starts over whenever
 * another connection writes between two of them, so on a busy store it never ended. One
 * step is one read transaction, which in WAL mode does not hold up keygate's writes.
 * It is written under a temporary name beside the destination and given the destination's
 * name only once whole and checked: a backup that fails or is interrupted never leaves a
 * file that looks like a backup.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, openSync, closeSync, rmSync, statSync } from 'node:fs';
import SqliteDatabase from 'better-sqlite3';
import { makeFolderFor, PRIVATE_FILE_MODE } from './private-files.js';
import { cannotOpen } from './sqlite-database.js';

export interface BackupResult {
  /** The copy, as given. */
  file: string;
  bytes: number;
}

/** Pages copied per step: all of them (see above). */
const ALL_PAGES = 0x7fffffff;

/**
 * Copies the database at `source` (which must exist) to `destination` (which must not:
 * an earlier backup is never overwritten), readable by its owner only, as the store's
 * own files are: one file, in rollback-journal mode (no -wal or -shm beside it), checked
 * with `PRAGMA integrity_check` before it takes its name.
 */
export async function backupSqlite(source: string, destination: string): Promise<BackupResult> {
  if (!existsSync(source)) throw new Error(`there is no database at ${source} (the profile's store): nothing to back up`);
  if (existsSync(destination)) throw existsAlready(destination);
  makeFolderFor(destination);
  const partial = `${destination}.partial-${randomBytes(4).toString('hex')}`;
  closeSync(openSync(partial, 'wx', PRIVATE_FILE_MODE));
  try {
    // Not read-only: a reader of a WAL database may need to make its -shm file (keygate stopped).
    const database = new SqliteDatabase(source, { fileMustExist: true });
    try {
      await database.backup(partial, { progress: () => ALL_PAGES });
    } catch (error) {
      // The store is not a database (the profile names the wrong file): said with its file, as every other command says it.
      throw (error as { code?: unknown }).code === 'SQLITE_NOTADB' ? cannotOpen(source, error) : error;
    } finally {
      database.close();
    }
    const copy = new SqliteDatabase(partial, { fileMustExist: true });
    try {
      // One file to keep and to restore: the copy leaves WAL mode (and its two side files).
      copy.pragma('journal_mode = DELETE');
      const verdict = copy.pragma('integrity_check', { simple: true });
      if (verdict !== 'ok') throw new Error(`the copy did not pass SQLite's integrity check: ${String(verdict)}`);
    } finally {
      copy.close();
    }
    // A link fails if the name was taken meanwhile: never over another file.
    try {
      linkSync(partial, destination);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw existsAlready(destination);
      throw error;
    }
  } finally {
    for (const file of [partial, `${partial}-journal`, `${partial}-wal`, `${partial}-shm`]) rmSync(file, { force: true });
  }
  return { file: destination, bytes: statSync(destination).size };
}

function existsAlready(destination: string): Error {
  return new Error(`${destination} exists already: name a new file (a backup never overwrites one)`);
}
