/**
 * A SQLite store path keygate cannot use is refused at once, by `migrate` and `serve`
 * alike, with the path and the profile's field (`store:`) in one line: never a hang (Node's
 * recursive mkdir loops forever under /proc) and never a stack trace.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { runCli, startFailure, type CliResult } from './support/cli.js';
import { tempDir } from './support/temp.js';

/** A user other than root, for a folder root could write in anyway (nobody, on most systems). */
const OTHER_USER = 65_534;

describe('a SQLite store path keygate cannot use', () => {
  const dir = tempDir('store-paths');
  /** `migrate` and `serve` on a profile whose store is `sqlite:<file>`, each as `as` runs them. */
  const both = async (name: string, file: string, as: { uid?: number } = {}): Promise<CliResult[]> => {
    const profile = path.join(dir, `${name}.yaml`);
    writeFileSync(profile, stringify({ upstream: { url: 'http://127.0.0.1:9' }, store: `sqlite:${file}`, listen: { port: 0 }, admin: { listen: { port: 0 } }, dashboard: { enabled: false } }));
    return [await runCli(['migrate', '--config', profile], as), await runCli(['serve', '--config', profile], as)];
  };
  /** migrate: one line on stderr, `error: <why>`; serve: one JSON log line, `keygate could not start: <why>`. Exit code 1. */
  const refusedWith = ([migrate, serve]: CliResult[], why: string) => {
    expect([migrate?.code, migrate?.stdout, migrate?.stderr]).toEqual([1, '', `error: ${why}\n`]);
    expect(serve?.stdout.trimEnd().split('\n')).toHaveLength(1);
    expect(startFailure(serve as CliResult)).toEqual({ code: 1, msg: `keygate could not start: ${why}`, stderr: '' });
  };

  it('under /proc, where no folder can be made: refused at once, not a hang', async () => {
    const file = `/proc/self/keygate-${process.pid}/keygate.db`;
    refusedWith(await both('proc', file), `store: cannot open the SQLite file ${file}: cannot make the folder /proc/self/keygate-${process.pid}: the system makes no folder there (ENOENT): name one on a writable disk`);
  });

  it('under a regular file, directly or further down', async () => {
    const plain = path.join(dir, 'plain.txt');
    writeFileSync(plain, 'not a folder');
    refusedWith(await both('file-parent', path.join(plain, 'keygate.db')), `store: cannot open the SQLite file ${path.join(plain, 'keygate.db')}: ${plain} is a file, not a folder`);
    const deeper = path.join(plain, 'data', 'keygate.db');
    refusedWith(await both('file-grandparent', deeper), `store: cannot open the SQLite file ${deeper}: ${plain} is a file, not a folder, so no folder can be made under it`);
  });

  it('in a folder this user may not write in, or under one', async () => {
    // Root writes anywhere: as root, the commands run as another user.
    const root = process.getuid?.() === 0;
    const as = root ? { uid: OTHER_USER } : {};
    const open = path.join(dir, 'open');
    mkdirSync(open);
    const readOnly = path.join(open, 'read-only');
    mkdirSync(readOnly);
    chmodSync(readOnly, 0o555);
    // The other user reaches the profiles and the folder.
    if (root) for (const folder of [dir, open]) chmodSync(folder, 0o755);
    const inside = path.join(readOnly, 'keygate.db');
    // serve makes its lock beside the database first (one serving process per file).
    const [migrate, serve] = (await both('read-only', inside, as)) as [CliResult, CliResult];
    expect([migrate.code, migrate.stderr]).toEqual([1, `error: store: cannot open the SQLite file ${inside}: this user may not write keygate.db in ${readOnly} (EACCES)\n`]);
    expect(startFailure(serve)).toEqual({ code: 1, msg: `keygate could not start: store: cannot open the SQLite file ${inside}: this user may not write keygate.db.lock in ${readOnly} (EACCES)`, stderr: '' });
    const below = path.join(readOnly, 'data', 'keygate.db');
    refusedWith(await both('read-only-below', below, as), `store: cannot open the SQLite file ${below}: cannot make the folder ${path.join(readOnly, 'data')}: this user may not write in the folder above it (EACCES)`);
  });
});
