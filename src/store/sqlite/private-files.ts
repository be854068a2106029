/**
 * The SQLite store's files can be read by their owner only: the database holds password
 * hashes, members' addresses and the hashes keys are found by. SQLite gives its -wal and
 * -shm files the database's permissions; files and folders that exist keep their own.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';

const FILE_MODE = 0o600;
const FOLDER_MODE = 0o700;

/** Makes the folder `file` goes in (and its parents), readable by the owner only, unless it exists. */
export function makeFolderFor(file: string): void {
  mkdirSync(path.dirname(path.resolve(file)), { recursive: true, mode: FOLDER_MODE });
}

/** Creates `file` empty and owner-only unless it exists (never truncating one that does). */
export function createPrivateFile(file: string): void {
  closeSync(openSync(file, 'a', FILE_MODE));
}

export { FILE_MODE as PRIVATE_FILE_MODE };
