/** Opens the store named in keygate.yaml: `sqlite:<file>` or `postgres://...`. */
import path from 'node:path';
import type { Store } from './store.js';
import { openSqliteStore } from './sqlite/sqlite-database.js';
import { openPostgresStore } from './postgres/postgres-database.js';

export function openStore(url: string, baseDir = process.cwd()): Store {
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return openPostgresStore(url);
  if (url.startsWith('sqlite:')) return openSqliteStore(sqliteFile(url, baseDir) ?? ':memory:');
  throw new Error(`store: expected "sqlite:<file>" or "postgres://...", got "${url}"`);
}

/** The database file a `sqlite:` store URL names (absolute), or undefined (another store, or `:memory:`). */
export function sqliteFile(url: string, baseDir = process.cwd()): string | undefined {
  if (!url.startsWith('sqlite:')) return undefined;
  const file = url.slice('sqlite:'.length);
  return file === ':memory:' ? undefined : path.resolve(baseDir, file);
}

/** A URL with its password replaced, for messages and logs (store, counters, upstream). */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    // Redis also takes it as a parameter (counters: redis://host?password=...).
    if (parsed.searchParams.has('password')) parsed.searchParams.set('password', '***');
    return parsed.toString();
  } catch {
    return url;
  }
}
