/**
 * Who serves a SQLite file, for those that must not run beside them. A keygate with
 * in-memory counters serves it alone: a second one would count rate limits and balances
 * on its own and overwrite the first one's balances, without a word. Keygates with Redis
 * counters share it (several processes on one file is a deployment docs/scale-out.md
 * describes), but none of them beside one with in-memory counters. `keygate store copy`
 * takes it alone too: it must see every serving process, whatever its counters, and keep
 * one from starting while it copies.
 *
 * The lock is SQLite's own on a small database beside the file (`<file>.lock`): an
 * exclusive transaction held for the one that serves alone, a read transaction held by
 * each that shares it (any number of those, and no exclusive one, at once). The operating
 * system drops it when the process ends, however it ends, so a killed process never
 * blocks the next start; a refused one is told who holds it, in another process or in
 * this one. CLI commands take no lock: they may run beside the gateway.
 */
import { readFileSync, realpathSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createPrivateFile, makeFolderFor, PRIVATE_FILE_MODE } from './private-files.js';

export interface ProcessLock {
  release(): void;
}

/** `alone`: no other keygate on the file (in-memory counters, store copy); `shared`: only others that share it (Redis counters). */
export type LockUse = 'alone' | 'shared';

/** How a sharing holder says so in the holder file, read back by one refused. */
const SHARING = ', with Redis counters';

export class DatabaseInUseError extends Error {
  /** Whether the holder (as it said) shares the file with others like it: keygates with Redis counters. */
  readonly holderShares: boolean;
  /**
   * `holder`: who holds the lock, as it said; `'this process'` when this process itself does.
   * `wanted`: the lock refused (`shared`: a keygate with Redis counters).
   */
  constructor(
    readonly holder: string | undefined,
    wanted: LockUse = 'alone',
  ) {
    super(inUseMessage(holder, wanted));
    this.name = 'DatabaseInUseError';
    this.holderShares = holder?.endsWith(SHARING) === true;
  }
}

function inUseMessage(holder: string | undefined, wanted: LockUse): string {
  const two = "two would each count rate limits and balances on their own and overwrite each other's balances";
  const beside = 'it would count rate limits and balances on its own and overwrite the balances of the other';
  if (holder === THIS_PROCESS) {
    return wanted === 'alone'
      ? `this process already runs a keygate on this SQLite file with in-memory counters (one not closed yet: a second createKeygate or serve, or a module evaluated again by a dev server's reload): ${two}. Use the one it has, or close() it first.`
      : `this process already runs a keygate on this SQLite file with in-memory counters (one not closed yet): ${beside}. Close it first, or give every keygate on the file Redis counters.`;
  }
  const who = `another keygate ${holder ? `process (${holder})` : 'process'}`;
  if (wanted === 'shared') {
    return `${who} is serving with this SQLite file and in-memory counters: ${beside}. Stop it first: several processes on one SQLite file all take Redis counters (docs/scale-out.md).`;
  }
  if (holder?.endsWith(SHARING)) {
    return `${who} is serving this SQLite file: a keygate with in-memory counters beside it would count rate limits and balances on its own and overwrite the balances of the others. Stop them first, or give this one the same Redis counters (docs/scale-out.md).`;
  }
  return `${who} is serving with this SQLite file and in-memory counters: ${two}. Stop it first, or run several processes on PostgreSQL + Redis (docs/scale-out.md).`;
}

const THIS_PROCESS = 'this process';
/** The lock files this process holds, and how many times shared: a second runtime here is told so, not sent looking for another process with this one's pid. */
const heldHere = new Map<string, { use: LockUse; count: number }>();

/** Takes the lock of `databaseFile` for `use`, or throws DatabaseInUseError naming the holder (as far as it said). */
export function lockDatabase(databaseFile: string, use: LockUse = 'alone'): ProcessLock {
  let lockFile: string;
  try {
    // Before the database exists (first start): its folder is made here, as the store would.
    makeFolderFor(databaseFile);
    // Named by its folder's real path: the same file reached through a symlinked folder is the same lock.
    lockFile = path.join(realpathSync(path.dirname(path.resolve(databaseFile))), `${path.basename(databaseFile)}.lock`);
    const here = heldHere.get(lockFile);
    if (here && (use === 'alone' || here.use === 'alone')) throw new DatabaseInUseError(THIS_PROCESS, use);
    // Create-only: closing a descriptor of the lock file would drop the lock this process may hold on it.
    createPrivateFile(lockFile);
  } catch (error) {
    if (error instanceof DatabaseInUseError) throw error;
    // Said as the store says it (the folder or the file it cannot make), with the profile's field.
    throw new Error(`store: cannot open the SQLite file ${databaseFile}: ${(error as Error).message}`);
  }
  const holderFile = `${lockFile}.holder`;
  const lock = openLock(lockFile, use);
  const here = heldHere.get(lockFile);
  if (here) here.count += 1;
  else heldHere.set(lockFile, { use, count: 1 });
  // Only to name this process in another's refusal. Of several sharing the file, the one
  // that started last is named (and none once it stops): the lock still refuses.
  const me = `pid ${process.pid} on ${hostname()}, started ${new Date().toISOString()}${use === 'shared' ? SHARING : ''}`;
  try {
    writeFileSync(holderFile, `${me}\n`, { mode: PRIVATE_FILE_MODE });
  } catch {
    // Naming the holder is a courtesy; the lock is what counts.
  }
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      const here = heldHere.get(lockFile);
      if (here && --here.count === 0) heldHere.delete(lockFile);
      if (readHolder(holderFile) === me) {
        try {
          unlinkSync(holderFile);
        } catch {
          // Already gone.
        }
      }
      lock.exec('ROLLBACK');
      lock.close();
    },
  };
}

/**
 * The lock database, held: alone, a write inside the transaction proves the lock is real (a
 * read-only file would take it in name only); shared, a read holds SQLite's shared lock
 * until the transaction ends, which refuses an exclusive one.
 */
function openLock(lockFile: string, use: LockUse, attempt = 0): Database.Database {
  let lock: Database.Database | undefined;
  try {
    lock = new Database(lockFile, { timeout: 0 });
    if (use === 'alone') {
      lock.exec('BEGIN EXCLUSIVE');
      lock.pragma('user_version = 1');
    } else {
      lock.exec('BEGIN');
      lock.prepare('select count(*) from sqlite_master').get();
    }
    return lock;
  } catch (error) {
    lock?.close();
    const code = (error as { code?: string }).code;
    if (code === 'SQLITE_BUSY') throw new DatabaseInUseError(readHolder(`${lockFile}.holder`), use);
    // Not a SQLite file (something else wrote it): no keygate holds a lock on it.
    if (code === 'SQLITE_NOTADB' && attempt === 0) {
      unlinkSync(lockFile);
      return openLock(lockFile, use, 1);
    }
    if (code === 'SQLITE_READONLY' || code === 'SQLITE_CANTOPEN' || code === 'SQLITE_PERM') {
      throw new Error(`cannot take the lock that keeps a second keygate off this SQLite file: ${lockFile} cannot be written by this user (left by one run as another user?); remove it, or run keygate as its owner (${(error as Error).message})`);
    }
    throw error;
  }
}

function readHolder(holderFile: string): string | undefined {
  try {
    return readFileSync(holderFile, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
