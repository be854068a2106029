/**
 * Issuing a key is serialized per account across processes on one SQLite file (the CLI
 * beside `keygate serve`, or several CLIs): `issuingKeysOf` holds the database's write
 * lock from its first read (BEGIN IMMEDIATE), so a second process reads the account's
 * keys only once the first has written its own. Three processes are started, wait until
 * all have the file open, and then try at the same moment, each holding its attempt open
 * for 300 ms: exactly one may write, the others must see its key and write nothing.
 * The children run the built store (dist/), as the CLI does: `npm test` builds first.
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openSqliteStore } from '../src/store/sqlite/sqlite-database.js';
import { tempDir } from './support/temp.js';

const CHILD = fileURLToPath(new URL('./support/issuing-child.mjs', import.meta.url));

interface Outcome {
  read?: number;
  wrote?: boolean;
  error?: string;
}

describe('issuing keys on one SQLite file from several processes', () => {
  it('lets one process at a time read and write an account\'s keys: one key, the others see it', async () => {
    const file = path.join(tempDir('sqlite-issuing'), 'k.db');
    const store = openSqliteStore(file);
    await store.migrate();
    const accountId = 'acc_shared';
    await store.createAccount({ id: accountId, name: 'Acme', planId: 'free', planExpiresAt: null, apiAccess: true, overage: null, createdAt: Date.now() });

    const children = ['one', 'two', 'three'].map((name) => fork(CHILD, [file, accountId, name], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    try {
      const message = (child: (typeof children)[number], type: string) =>
        new Promise<Outcome>((resolve, reject) => {
          child.on('message', (m: Outcome & { type: string }) => m.type === type && resolve(m));
          child.once('exit', (code) => reject(new Error(`a child exited (${code}) before "${type}"`)));
        });
      await Promise.all(children.map((child) => message(child, 'ready')));
      const outcomes = children.map((child) => message(child, 'done'));
      for (const child of children) child.send('go');
      const results = await Promise.all(outcomes);

      expect(results.filter((r) => r.error !== undefined)).toEqual([]);
      expect(results.filter((r) => r.wrote)).toEqual([{ type: 'done', read: 0, wrote: true }]);
      expect(results.filter((r) => !r.wrote)).toEqual([
        { type: 'done', read: 1, wrote: false },
        { type: 'done', read: 1, wrote: false },
      ]);
      expect(await store.listKeys({ accountId })).toHaveLength(1);
    } finally {
      for (const child of children) child.kill();
      await store.close();
    }
  }, 30_000);
});
