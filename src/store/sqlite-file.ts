/**
 * Where a `sqlite:` store URL puts its file: apart from store/open.ts, so that what reads
 * a profile without opening a store (`keygate check` on a database not made yet) loads no
 * database driver to say where it would be.
 */
import path from 'node:path';

/** The database file a `sqlite:` store URL names (absolute), or undefined (another store, or `:memory:`). */
export function sqliteFile(url: string, baseDir = process.cwd()): string | undefined {
  if (!url.startsWith('sqlite:')) return undefined;
  const file = url.slice('sqlite:'.length);
  return file === ':memory:' ? undefined : path.resolve(baseDir, file);
}
