import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { isBusyError, openSqliteStore } from './sqlite-database.js';
import { writeRefusalOf } from './sqlite-driver.js';
import type { AccountRecord } from '../store.js';
import { tempDir } from '../../../test/support/temp.js';

const account = (id: string): AccountRecord => ({ id, name: id, planId: 'team', planExpiresAt: null, apiAccess: true, overage: null, createdAt: Date.now() });

/** Settles with what `promise` came to, or 'waiting' if it has not yet. */
const stateOf = (promise: Promise<unknown>): Promise<string> => Promise.race([promise.then(() => 'done', () => 'failed'), new Promise<string>((resolve) => setTimeout(() => resolve('waiting'), 0))]);

describe('the SQLite store, another connection holding the write lock', () => {
  const dir = tempDir('sqlite-driver');

  it('waits for it without stopping the process, reads going on meanwhile, and writes once it is released, a transaction too', async () => {
    const file = path.join(dir, 'wait.db');
    const store = openSqliteStore(file);
    await store.migrate();
    await store.createAccount(account('acc_first'));
    await store.insertKey({ id: 'key_1', hash: 'h', hint: 'k…1', name: 'k', accountId: 'acc_first', mode: 'live', scopes: [], createdAt: 1, lastUsedAt: null, expiresAt: null, revokedAt: null, createdBy: null, rotatedFrom: null });
    const holder = new SqliteDatabase(file);
    holder.exec('BEGIN IMMEDIATE');
    let released = false;
    try {
      const write = store.createAccount(account('acc_second'));
      // In a transaction (BEGIN IMMEDIATE: it waits at its first statement).
      const touch = store.touchKeys(new Map([['key_1', 5]]));
      // Handled here should an expectation below fail first.
      void Promise.allSettled([write, touch]);
      // Timers run meanwhile: the process is not held by SQLite's wait.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect([await stateOf(write), await stateOf(touch)]).toEqual(['waiting', 'waiting']);
      // Reads go on beside the waiting writes (WAL).
      expect((await store.listAccounts()).map((a) => a.id)).toEqual(['acc_first']);
      expect(await stateOf(write)).toBe('waiting');
      holder.exec('ROLLBACK');
      released = true;
      await Promise.all([write, touch]);
    } finally {
      if (!released) holder.exec('ROLLBACK');
      holder.close();
    }
    expect((await store.listAccounts()).map((a) => a.id)).toEqual(['acc_first', 'acc_second']);
    expect((await store.getKey('key_1'))?.lastUsedAt).toBe(5);
    await store.close();
  });

  it('gives up after 5 s with SQLite\'s busy error, having done nothing', { timeout: 20_000 }, async () => {
    const file = path.join(dir, 'give-up.db');
    const store = openSqliteStore(file);
    await store.migrate();
    const holder = new SqliteDatabase(file);
    holder.exec('BEGIN IMMEDIATE');
    const startedAt = Date.now();
    try {
      const error = await store.createAccount(account('acc_late')).then(() => undefined, (e: unknown) => e);
      expect(isBusyError(error)).toBe(true);
      expect(Date.now() - startedAt).toBeGreaterThanOrEqual(4_900);
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    expect(await store.listAccounts()).toEqual([]);
    await store.close();
  });
});

describe('a write SQLite refuses for want of permission', () => {
  const dir = tempDir('sqlite-refusal');

  it('is said as a user would say it, with what to do (a full disk is proved in test/full-disk.test.ts)', () => {
    const file = path.join(dir, 'read-only.db');
    const writer = new SqliteDatabase(file);
    writer.exec('create table t (a)');
    writer.close();
    // Root writes through file modes: a connection opened read-only meets the same refusal.
    const reader = new SqliteDatabase(file, { readonly: true });
    const refused = (() => {
      try {
        reader.exec('insert into t values (1)');
      } catch (error) {
        return error;
      }
    })();
    reader.close();
    expect(writeRefusalOf(refused)).toMatchObject({
      message: 'the database could not be written: the database file is read-only',
      code: 'SQLITE_READONLY',
      fix: 'make the file, its folder and its -wal and -shm files writable by the user keygate runs as',
    });
    expect(writeRefusalOf(Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }))).toBeUndefined();
  });
});
