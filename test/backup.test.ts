/**
 * `keygate backup` on a store that keeps being written while it copies: the copy is made
 * in one step (a backup in steps started over with every write between two of them, and
 * on a store of some size with steady writes never ended), it takes its name only once
 * whole and checked, and it is one file.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runCli } from './support/cli.js';
import { startKeygate, type TestKeygate } from './support/keygate.js';
import { tempDir } from './support/temp.js';
import { createAccount } from '../src/operations/accounts.js';
import { openSqliteStore } from '../src/store/sqlite/sqlite-database.js';

const dir = tempDir('backup');
const profile = { upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'keygate.db')}` };
let kg: TestKeygate;

beforeAll(async () => {
  writeFileSync(path.join(dir, 'keygate.yaml'), stringify(profile));
  kg = await startKeygate(profile, { dir });
  // A store of some 30 MB (7,500 of SQLite's 4 KiB pages, 75 steps of a backup in steps),
  // written by a connection of its own in one transaction (the audit log holds anything).
  const sqlite = new Database(path.join(dir, 'keygate.db'));
  const insert = sqlite.prepare("insert into audit_log (id, at, actor, action, account_id, key_id, detail) values (?, 0, 'test', 'test.filler', null, null, ?)");
  sqlite.transaction(() => {
    for (let i = 0; i < 7_500; i++) insert.run(`aud_filler_${i}`, JSON.stringify({ filler: 'x'.repeat(4_000) }));
  })();
  sqlite.close();
  for (let i = 0; i < 100; i++) await createAccount(kg.runtime, { name: `Account ${i}` }, 'test');
}, 120_000);

afterAll(async () => kg?.close());

it('backs up a store written to all the while, and leaves only the copy', async () => {
  const before = (await kg.runtime.store.listAccounts({ limit: 10_000 })).length;
  let backingUp = true;
  let written = 0;
  const writer = (async () => {
    // Until the backup is over (and at most 60 s): the command itself gives up after 30.
    const until = Date.now() + 60_000;
    while (backingUp && Date.now() < until) {
      await createAccount(kg.runtime, { name: `Written during the backup ${written}` }, 'test');
      written += 1;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  })();
  const copy = path.join(dir, 'copies', 'busy.db');
  const made = await runCli(['--config', path.join(dir, 'keygate.yaml'), 'backup', copy]);
  backingUp = false;
  await writer;
  expect(made.code, made.stderr).toBe(0);
  expect(written).toBeGreaterThan(0);
  // One file: no -wal, -shm, journal or partial copy beside it.
  expect(readdirSync(path.dirname(copy))).toEqual(['busy.db']);
  const restored = openSqliteStore(copy);
  try {
    const accounts = (await restored.listAccounts({ limit: 10_000 })).length;
    expect(accounts).toBeGreaterThanOrEqual(before);
    expect(accounts).toBeLessThanOrEqual(before + written);
  } finally {
    await restored.close();
  }
}, 120_000);
