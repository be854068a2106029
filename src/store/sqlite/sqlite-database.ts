/**
 * SQLite backend: a file (created with its folder on first start) opened with
 * better-sqlite3 in WAL mode, so the CLI and a running server can share it.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { Database } from '../sql-store.js';
import { SqlStore } from '../sql-store.js';

export function openSqliteStore(file: string): SqlStore {
  if (file !== ':memory:') mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const sqlite = new SqliteDatabase(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('foreign_keys = ON');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });

  // data_version changes when another connection (the CLI, another process) commits.
  const dataVersion = sqlite.prepare('PRAGMA data_version').pluck();
  let seen = dataVersion.get() as number;
  const changedElsewhere = (): boolean => {
    const now = dataVersion.get() as number;
    if (now === seen) return false;
    seen = now;
    return true;
  };
  return new SqlStore('sqlite', db, async () => undefined, changedElsewhere);
}
