/**
 * Requests by key read while the usage gathered in memory is being written to the store:
 * rows the write has taken are in neither the store nor what is pending, so a reader
 * waits for the write and reads again if one started meanwhile. A key's last use not yet
 * written counts too.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { accountUsage, createAccount, createKey, createKeygate, parseConfigObject } from '../src/index.js';
import type { UsageDailyRow } from '../src/store/store.js';
import { tempDir } from './support/temp.js';

describe('requests by key while usage is being written', () => {
  const dir = tempDir('key-requests-write');

  it('counts every request, none lost to the write under way, and names the last use before it is stored', async () => {
    const config = parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'k.db')}`, routes: [{ path: '/v1/*' }] });
    const gate = await createKeygate({ config, file: 'inline', dir }, { flushIntervalMs: 3_600_000 });
    try {
      const account = await createAccount(gate.runtime, { name: 'Acme' }, 'test');
      const { key, secret } = await createKey(gate.runtime, { accountId: account.id, name: 'ci' }, 'test');
      for (let i = 0; i < 3; i++) {
        const result = await gate.check({ method: 'GET', url: '/v1/rows', headers: { authorization: `Bearer ${secret}` } });
        expect(result.allowed).toBe(true);
        if (result.allowed) await result.settle(200);
      }
      // Before any write: counted from memory, last use included.
      const before = await accountUsage(gate.runtime, account.id, { keys: true });
      expect(before.keys.map((k) => [k.keyId, k.requests, typeof k.lastUsedAt])).toEqual([[key.id, 3, 'number']]);

      // A write held in the middle: the rows have left memory and are not stored yet.
      const store = gate.runtime.store;
      const addUsageDaily = store.addUsageDaily.bind(store);
      let release: () => void = () => {};
      const held = new Promise<void>((resolve) => (release = resolve));
      store.addUsageDaily = async (rows: UsageDailyRow[]) => {
        await held;
        return addUsageDaily(rows);
      };
      const writing = gate.runtime.flush();
      const reading = accountUsage(gate.runtime, account.id, { keys: true });
      setTimeout(release, 50);
      const [during] = await Promise.all([reading, writing]);
      expect(during.keys.map((k) => [k.keyId, k.requests])).toEqual([[key.id, 3]]);
      expect(during.keys[0]?.lastUsedAt).toBe(before.keys[0]?.lastUsedAt);
    } finally {
      await gate.close();
    }
  });
});
