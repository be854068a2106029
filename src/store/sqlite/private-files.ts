/**
 * The SQLite store's files can be read by their owner only: the database holds password
 * hashes, members' addresses and the hashes keys are found by. SQLite gives its -wal and
 * -shm files the database's permissions; files and folders that exist keep their own.
 */
import { accessSync, closeSync, constants, mkdirSync, openSync, statSync } from 'node:fs';
import path from 'node:path';

const FILE_MODE = 0o600;
const FOLDER_MODE = 0o700;

/** Makes the folder `file` goes in (and its parents), readable by the owner only, unless it exists. */
export function makeFolderFor(file: string): void {
  makeFolder(path.dirname(path.resolve(file)), FOLDER_MODE);
}

/**
 * Makes `folder` and the parents it lacks, one at a time from the deepest that exists.
 * Not Node's `mkdirSync(…, { recursive: true })`: where the system answers ENOENT for a
 * folder it will never make (under /proc), that loops forever, and a file in the way came
 * out as a bare EEXIST. Throws an Error whose message says which folder, and why, in words.
 */
export function makeFolder(folder: string, mode = FOLDER_MODE): void {
  const missing: string[] = [];
  let at = path.resolve(folder);
  for (;;) {
    const found = statOf(at);
    if (found === 'directory') break;
    if (found === 'file') {
      throw new Error(at === path.resolve(folder) ? `${at} is a file, not a folder` : `${at} is a file, not a folder, so no folder can be made under it`);
    }
    missing.unshift(at);
    const parent = path.dirname(at);
    if (parent === at) break;
    at = parent;
  }
  for (const dir of missing) {
    try {
      mkdirSync(dir, { mode });
    } catch (error) {
      const { code } = error as NodeJS.ErrnoException;
      // Made meanwhile by another process starting on the same folder: as good as made here.
      if (code === 'EEXIST' && statOf(dir) === 'directory') continue;
      throw new Error(`cannot make the folder ${dir}: ${FOLDER_TROUBLE[code ?? ''] ?? (error as Error).message}`);
    }
  }
}

/**
 * What would stop `makeFolderFor(file)` and `createPrivateFile(file)`, for a file that is
 * not there, asked without making anything (`keygate check`): a file where a folder goes,
 * or a deepest existing folder this user may not write in. Undefined: they would go through
 * (as far as permissions tell: a full disk is found only by writing).
 */
export function whatStopsMaking(file: string): string | undefined {
  let at = path.dirname(path.resolve(file));
  for (;;) {
    const found = statOf(at);
    if (found === 'file') return `${at} is a file, not a folder`;
    if (found === 'directory') break;
    const parent = path.dirname(at);
    if (parent === at) return undefined;
    at = parent;
  }
  try {
    accessSync(at, constants.W_OK | constants.X_OK);
    return undefined;
  } catch (error) {
    const { code } = error as NodeJS.ErrnoException;
    return code === 'EROFS' ? `${at} is on a read-only file system (EROFS)` : `this user may not write in ${at} (${code ?? (error as Error).message})`;
  }
}

/** What stops a folder being made, by the system's code. */
const FOLDER_TROUBLE: Record<string, string> = {
  EACCES: 'this user may not write in the folder above it (EACCES)',
  EPERM: 'the system does not allow it there (EPERM)',
  EROFS: 'the file system is read-only (EROFS)',
  ENOENT: 'the system makes no folder there (ENOENT): name one on a writable disk',
  ENOSPC: 'the disk is full (ENOSPC)',
};

/** Whether `at` is a folder, something else, or nothing (also when a parent is a file: ENOTDIR). */
function statOf(at: string): 'directory' | 'file' | undefined {
  try {
    const stats = statSync(at, { throwIfNoEntry: false });
    if (stats === undefined) return undefined;
    return stats.isDirectory() ? 'directory' : 'file';
  } catch (error) {
    const { code } = error as NodeJS.ErrnoException;
    if (code === 'ENOTDIR') return undefined;
    throw new Error(code === 'EACCES' ? `this user may not look into ${path.dirname(at)} (EACCES)` : (error as Error).message);
  }
}

/**
 * Creates `file` empty and owner-only unless it exists; what stops it is said in words.
 * A file that exists is never opened here: this process may have it open in SQLite
 * already (a CLI command beside a server, a second store on one file), and closing any
 * descriptor of a file drops every POSIX lock the process holds on it, SQLite's included
 * (sqlite.org/howtocorrupt.html §2.2): another process could then take the database as
 * unused, and checkpoint and delete its WAL under this one. So: create-only (`wx`), and
 * for a file that exists, only asked whether it is a folder and may be written.
 */
export function createPrivateFile(file: string): void {
  try {
    closeSync(openSync(file, 'wx', FILE_MODE));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(fileTrouble(file, error as NodeJS.ErrnoException));
    checkExisting(file);
  }
}

/** What `openSync(file, 'a')` would have refused of a file that exists, asked without opening it. */
function checkExisting(file: string): void {
  try {
    if (statSync(file).isDirectory()) throw Object.assign(new Error(`EISDIR: ${file}`), { code: 'EISDIR' });
    accessSync(file, constants.R_OK | constants.W_OK);
  } catch (error) {
    throw new Error(fileTrouble(file, error as NodeJS.ErrnoException));
  }
}

/** Why `file` could not be made or opened, in words, by the system's code. */
function fileTrouble(file: string, error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'EISDIR':
      return 'that is a folder; name a file in it, such as sqlite:./data/keygate.db';
    case 'EACCES':
    case 'EPERM':
      return `this user may not write ${path.basename(file)} in ${path.dirname(file)} (${error.code})`;
    case 'ENOENT':
      return 'the system makes no file there (ENOENT): name one on a writable disk';
    case 'EROFS':
      return `${path.dirname(file)} is on a read-only file system (EROFS)`;
    default:
      return error.message;
  }
}

export { FILE_MODE as PRIVATE_FILE_MODE };
