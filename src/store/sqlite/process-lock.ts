/**
 * One serving process per SQLite file with in-memory counters: a second one would count
 * rate limits and balances on its own and overwrite the first one's balances, without a
 * word. The serving runtime holds an exclusive SQLite lock on a small database beside
 * the file (`<file>.lock`) for as long as it runs. The operating system drops that lock
 * when the process ends, however it ends, so a killed process never blocks the next
 * start; a second runtime, in another process or in the same one, is refused. CLI
 * commands take no lock: they may run beside the gateway.
 */
import { readFileSync, realpathSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createPrivateFile, makeFolderFor, PRIVATE_FILE_MODE } from './private-files.js';

export interface ProcessLock {
  release(): void;
}

export class DatabaseInUseError extends Error {
  /** `holder`: who holds the lock, as it said; `'this process'` when this process itself does. */
  constructor(readonly holder: string | undefined) {
    super(
      holder === THIS_PROCESS
        ? `this process already runs a keygate on this SQLite file with in-memory counters (one not closed yet: a second createKeygate or serve, or a module evaluated again by a dev server's reload): two would each count rate limits and balances on their own and overwrite each other's balances. Use the one it has, or close() it first.`
        : `another keygate ${holder ? `process (${holder})` : 'process'} is serving with this SQLite file and in-memory counters: two would each count rate limits and balances on their own and overwrite each other's balances. Stop it first, or run several processes on PostgreSQL + Redis (docs/scale-out.md).`,
    );
    this.name = 'DatabaseInUseError';
  }
}

const THIS_PROCESS = 'this process';
/** The lock files this process holds: a second runtime here is told so, not sent looking for another process with this one's pid. */
const heldHere = new Set<string>();

/** Takes the lock of `databaseFile`, or throws DatabaseInUseError naming the holder (as far as it said). */
export function lockDatabase(databaseFile: string): ProcessLock {
  let lockFile: string;
  try {
    // Before the database exists (first start): its folder is made here, as the store would.
    makeFolderFor(databaseFile);
    // Named by its folder's real path: the same file reached through a symlinked folder is the same lock.
    lockFile = path.join(realpathSync(path.dirname(path.resolve(databaseFile))), `${path.basename(databaseFile)}.lock`);
    if (heldHere.has(lockFile)) throw new DatabaseInUseError(THIS_PROCESS);
    // Create-only: closing a descriptor of the lock file would drop the lock this process may hold on it.
    createPrivateFile(lockFile);
  } catch (error) {
    if (error instanceof DatabaseInUseError) throw error;
    // Said as the store says it (the folder or the file it cannot make), with the profile's field.
    throw new Error(`store: cannot open the SQLite file ${databaseFile}: ${(error as Error).message}`);
  }
  const holderFile = `${lockFile}.holder`;
  const lock = openLock(lockFile);
  heldHere.add(lockFile);
  // Only to name this process in another's refusal.
  const me = `pid ${process.pid} on ${hostname()}, started ${new Date().toISOString()}`;
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
      heldHere.delete(lockFile);
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

/** The lock database, held: a write inside the transaction proves the lock is real (a read-only file would take it in name only). */
function openLock(lockFile: string, attempt = 0): Database.Database {
  let lock: Database.Database | undefined;
  try {
    lock = new Database(lockFile, { timeout: 0 });
    lock.exec('BEGIN EXCLUSIVE');
    lock.pragma('user_version = 1');
    return lock;
  } catch (error) {
    lock?.close();
    const code = (error as { code?: string }).code;
    if (code === 'SQLITE_BUSY') throw new DatabaseInUseError(readHolder(`${lockFile}.holder`));
    // Not a SQLite file (something else wrote it): no keygate holds a lock on it.
    if (code === 'SQLITE_NOTADB' && attempt === 0) {
      unlinkSync(lockFile);
      return openLock(lockFile, 1);
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
