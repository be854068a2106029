/**
 * A copy of a SQLite store taken while keygate runs: SQLite's online backup, which copies
 * a consistent snapshot of the database (WAL included) page by page and starts over if
 * another connection writes meanwhile, so the copy is never half of one write. Copying
 * the file itself (cp) can catch the database between its file and its -wal file.
 */
import { existsSync, statSync } from 'node:fs';
import SqliteDatabase from 'better-sqlite3';
import { createPrivateFile, makeFolderFor } from './private-files.js';

export interface BackupResult {
  /** The copy, as given. */
  file: string;
  bytes: number;
}

/**
 * Copies the database at `source` (which must exist) to `destination` (which must not:
 * an earlier backup is never overwritten), readable by its owner only, as the store's
 * own files are. The copy is checked (`PRAGMA integrity_check`) before it is reported.
 */
export async function backupSqlite(source: string, destination: string): Promise<BackupResult> {
  if (!existsSync(source)) throw new Error(`there is no database at ${source} (the profile's store): nothing to back up`);
  if (existsSync(destination)) throw new Error(`${destination} exists already: name a new file (a backup never overwrites one)`);
  // Not read-only: a reader of a WAL database may need to make its -shm file (keygate stopped).
  const database = new SqliteDatabase(source, { fileMustExist: true });
  try {
    makeFolderFor(destination);
    createPrivateFile(destination);
    await database.backup(destination);
  } finally {
    database.close();
  }
  const copy = new SqliteDatabase(destination, { readonly: true, fileMustExist: true });
  try {
    const verdict = copy.pragma('integrity_check', { simple: true });
    if (verdict !== 'ok') throw new Error(`the copy at ${destination} did not pass SQLite's integrity check: ${String(verdict)}`);
  } finally {
    copy.close();
  }
  return { file: destination, bytes: statSync(destination).size };
}
