/**
 * One serving runtime per SQLite file with in-memory counters (src/store/sqlite/process-lock.ts):
 * a second one is refused, in this process as in another; CLI commands run beside it;
 * a start that fails leaves nothing locked.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRuntime } from '../src/runtime.js';
import { parseConfigObject } from '../src/config/load.js';
import { DatabaseInUseError } from '../src/store/sqlite/process-lock.js';
import { createLog } from '../src/log.js';
import { tempDir } from './support/temp.js';

const quiet = createLog({ level: 'silent' });

describe('one serving runtime per SQLite file', () => {
  it('refuses a second runtime on the file until the first closes; a CLI command runs beside it', async () => {
    const dir = tempDir('lock');
    const loaded = { config: parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'k.db')}` }), file: 'inline', dir };
    const first = await createRuntime(loaded, { log: quiet });
    try {
      const second = createRuntime(loaded, { log: quiet });
      await expect(second).rejects.toBeInstanceOf(DatabaseInUseError);
      // Not "another process" naming this one's own pid: a second createKeygate, or a module a dev server evaluated again.
      await expect(second).rejects.toThrow(/^this process already runs a keygate on this SQLite file with in-memory counters \(one not closed yet/);
      const command = await createRuntime(loaded, { log: quiet, use: 'command' });
      await command.close();
    } finally {
      await first.close();
    }
    const again = await createRuntime(loaded, { log: quiet });
    await again.close();
  });

  it('refuses a second runtime that reaches the file through a symlinked folder as one of this process, and the first keeps its lock against other processes', async () => {
    const dir = tempDir('lock-symlink');
    mkdirSync(path.join(dir, 'data'));
    symlinkSync(path.join(dir, 'data'), path.join(dir, 'linked'));
    const at = (folder: string) => ({ config: parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, folder, 'k.db')}` }), file: 'inline', dir });
    const first = await createRuntime(at('data'), { log: quiet });
    try {
      await expect(createRuntime(at('linked'), { log: quiet })).rejects.toThrow(/^this process already runs a keygate on this SQLite file/);
      // Another process is still refused the lock (opening and closing the lock file here would have dropped it).
      expect(takeLockElsewhere(path.join(dir, 'data', 'k.db.lock'))).toBe('SQLITE_BUSY');
    } finally {
      await first.close();
    }
  });

  it('replaces a lock file that is not a SQLite database (no keygate can hold a lock on it)', async () => {
    const dir = tempDir('lock-foreign');
    writeFileSync(path.join(dir, 'k.db.lock'), 'pid 1 on somewhere\n');
    const loaded = { config: parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'k.db')}` }), file: 'inline', dir };
    const rt = await createRuntime(loaded, { log: quiet });
    try {
      await expect(createRuntime(loaded, { log: quiet })).rejects.toBeInstanceOf(DatabaseInUseError);
    } finally {
      await rt.close();
    }
  });

  it('leaves nothing locked after a start that fails', async () => {
    const dir = tempDir('lock-failed');
    const file = path.join(dir, 'k.db');
    writeFileSync(file, 'this is not a database, and long enough to be read as a header of one');
    const loaded = { config: parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${file}` }), file: 'inline', dir };
    await expect(createRuntime(loaded, { log: quiet })).rejects.toThrow(/is not a SQLite database/);
    writeFileSync(file, '');
    const fixed = await createRuntime(loaded, { log: quiet });
    await fixed.close();
  });
});

/** What another process gets when it tries to take the lock at once, as a second `keygate serve` would: 'taken' or SQLite's error code. */
function takeLockElsewhere(lockFile: string): string {
  const script = `
    const Database = require('better-sqlite3');
    const lock = new Database(process.argv[1], { timeout: 0 });
    let answer = 'taken';
    try { lock.exec('BEGIN EXCLUSIVE'); lock.exec('ROLLBACK'); } catch (error) { answer = error.code; }
    lock.close();
    process.stdout.write(answer);`;
  return execFileSync(process.execPath, ['-e', script, lockFile], { encoding: 'utf8' });
}
