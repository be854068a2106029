/**
 * A real disk that fills: a small tmpfs mounted on a temporary folder, filled with a file
 * until the kernel answers ENOSPC, so SQLite meets the SQLITE_FULL a full disk gives it.
 * Mounting needs root (the tests run as root in CI); where mount is refused the caller's
 * tests are skipped with the reason printed. Not chmod (root writes through it).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** Room for the database (a few hundred KB once migrated) and the lock file, not much more. */
const DISK_SIZE = '8m';

/** A tmpfs of DISK_SIZE on a new temporary folder, or undefined (with the reason printed) where mount is refused. */
export function mountSmallDisk(): string | undefined {
  const dir = mkdtempSync(path.join(tmpdir(), 'full-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${DISK_SIZE},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
    return dir;
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    const why = `cannot mount a tmpfs (needs root): ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`;
    console.warn(`[skip] ${why}: the full-disk tests are skipped`);
    return undefined;
  }
}

/** Fills the file system `dir` is on with one file until the kernel answers ENOSPC; answers the file. */
export function fill(dir: string): string {
  const filler = path.join(dir, 'filler');
  const fd = openSync(filler, 'w');
  try {
    for (const size of [1 << 20, 1 << 12, 1]) {
      const chunk = Buffer.alloc(size, 0x2e);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
      }
    }
  } finally {
    closeSync(fd);
  }
  return filler;
}
