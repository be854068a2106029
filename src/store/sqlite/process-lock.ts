/**
 * One serving process per SQLite file with in-memory counters: a second one would count
 * rate limits and balances on its own and overwrite the first one's balances, without a
 * word. The serving process keeps a lock file beside the database (`<file>.lock`) and
 * touches it every few seconds; a lock not touched for a while is left from a process
 * that was killed, and is taken over. CLI commands take no lock: they may run beside the
 * gateway.
 */
import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import path from 'node:path';
import { hostname } from 'node:os';

/** How often the holder touches its lock. */
const HEARTBEAT_MS = 5_000;
/** A lock not touched for this long is stale. */
const STALE_AFTER_MS = 15_000;

export interface ProcessLock {
  release(): void;
}

export class DatabaseInUseError extends Error {
  constructor(lockFile: string, holder: string) {
    super(
      `another keygate process (${holder}) is serving with this SQLite file and in-memory counters: two would each count rate limits and balances on their own and overwrite each other's balances. Stop it first, or run several processes on PostgreSQL + Redis (docs/scale-out.md). If no such process runs, ${lockFile} is left from one that was killed: it is ignored ${STALE_AFTER_MS / 1000} s after it was last touched.`,
    );
    this.name = 'DatabaseInUseError';
  }
}

/** Takes the lock of `databaseFile`, or throws DatabaseInUseError naming the holder. */
export function lockDatabase(databaseFile: string): ProcessLock {
  const lockFile = `${databaseFile}.lock`;
  // Before the database exists (first start): its folder is made here, as the store would.
  mkdirSync(path.dirname(databaseFile), { recursive: true });
  const me = `pid ${process.pid} on ${hostname()}, started ${new Date().toISOString()}`;
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(lockFile, 'wx');
      writeSync(fd, `${me}\n`);
      closeSync(fd);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw error;
      const holder = holderOf(lockFile);
      // This process holds it already (a second runtime in one process, as tests make).
      if (holder !== undefined && !holder.startsWith(`pid ${process.pid} on ${hostname()},`)) throw new DatabaseInUseError(lockFile, holder);
      unlinkIfPresent(lockFile);
    }
  }
  const heartbeat = setInterval(() => {
    try {
      utimesSync(lockFile, new Date(), new Date());
    } catch {
      // Removed by hand: nothing to keep alive.
    }
  }, HEARTBEAT_MS);
  heartbeat.unref();
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      clearInterval(heartbeat);
      if (holderOf(lockFile, Infinity) === me) unlinkIfPresent(lockFile);
    },
  };
}

/** Who holds the lock, or undefined when it is gone or stale (file times are wall-clock time). */
function holderOf(lockFile: string, staleAfterMs = STALE_AFTER_MS): string | undefined {
  try {
    if (Date.now() - statSync(lockFile).mtimeMs > staleAfterMs) return undefined;
    return readFileSync(lockFile, 'utf8').trim() || 'a process that has not said which';
  } catch {
    return undefined;
  }
}

function unlinkIfPresent(file: string): void {
  try {
    unlinkSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
