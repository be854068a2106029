/**
 * An account's revoked and expired keys pile up over the years; issuing a key must not
 * read them, or every new key costs time in proportion to the account's history (5,355
 * keys made POST /v1/keys take 80–137 ms, about ten times as long as on a new account).
 * The store is wrapped to record every key the issuing transaction reads: a new key, a
 * plan's key limit and a rotation read the keys in use and, for a rotation, the chain of
 * replacements whose end date it takes, and no other dead key.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigObject } from '../src/config/load.js';
import { createAccount } from '../src/operations/accounts.js';
import { createKey, revokeKey, rotateKey } from '../src/operations/keys.js';
import { HOUR_MS } from '../src/config/duration.js';
import { createRuntime, type Runtime } from '../src/runtime.js';
import { openSqliteStore } from '../src/store/sqlite/sqlite-database.js';
import type { KeyIssuing, Store } from '../src/store/store.js';
import { tempDir } from './support/temp.js';

const DEAD_KEYS = 40;
const DAY = 24 * HOUR_MS;

/** The store, recording the ids of the keys `listKeys` answers inside `issuingKeysOf`. */
function recordingReads(store: Store, read: string[]): Store {
  const recording = (locked: KeyIssuing): KeyIssuing =>
    new Proxy(locked, {
      get: (target, name, receiver) =>
        name === 'listKeys'
          ? async (...args: Parameters<KeyIssuing['listKeys']>) => {
              const keys = await target.listKeys(...args);
              read.push(...keys.map((k) => k.id));
              return keys;
            }
          : Reflect.get(target, name, receiver),
    });
  return new Proxy(store, {
    get: (target, name, receiver) =>
      name === 'issuingKeysOf'
        ? (accountId: string, work: (locked: KeyIssuing) => Promise<unknown>) => target.issuingKeysOf(accountId, (locked) => work(recording(locked)))
        : Reflect.get(target, name, receiver),
  });
}

describe('issuing a key on an account with many dead keys', () => {
  const read: string[] = [];
  let rt: Runtime;
  const dead = new Set<string>();

  /** An account with DEAD_KEYS keys that no longer work: half revoked, half expired. */
  async function accountWithDeadKeys(planId: string): Promise<string> {
    const account = await createAccount(rt, { name: `On ${planId}`, planId }, 'test');
    for (let i = 0; i < DEAD_KEYS; i++) {
      const { key } = await createKey(rt, { accountId: account.id, name: `old ${i}` }, 'test');
      await (i % 2 === 0 ? rt.store.updateKey(key.id, { revokedAt: rt.clock() - 1 }) : rt.store.updateKey(key.id, { expiresAt: rt.clock() - 1 }));
      dead.add(key.id);
    }
    read.length = 0;
    return account.id;
  }
  const deadRead = () => read.filter((id) => dead.has(id));

  beforeAll(async () => {
    const dir = tempDir('dead-keys');
    const file = path.join(dir, 'keygate.db');
    const store = openSqliteStore(file);
    await store.migrate();
    const config = parseConfigObject({ store: `sqlite:${file}`, upstream: { url: 'http://127.0.0.1:1' }, keys: { expiry: true }, plans: { free: {}, pro: { maxKeys: 2 } } });
    rt = await createRuntime({ config, file: 'test profile', dir }, { store: recordingReads(store, read), use: 'command' });
  });
  afterAll(() => rt.close());

  it('reads no key of the account on a plan without a key limit', async () => {
    const accountId = await accountWithDeadKeys('free');
    const { key } = await createKey(rt, { accountId, name: 'new' }, 'test');
    expect(key.accountId).toBe(accountId);
    expect(read).toEqual([]);
  });

  it('counts only the keys in use against the plan\'s key limit, and reads no dead one', async () => {
    const accountId = await accountWithDeadKeys('pro');
    const first = await createKey(rt, { accountId, name: 'first' }, 'test');
    await createKey(rt, { accountId, name: 'second' }, 'test');
    await expect(createKey(rt, { accountId, name: 'third' }, 'test')).rejects.toThrow('the pro plan allows 2 keys per account; revoke one first');
    expect(read).toContain(first.key.id);
    expect(deadRead()).toEqual([]);
  });

  it('rotates reading, of the dead keys, only the revoked replacement whose end date the new one takes', async () => {
    const accountId = await accountWithDeadKeys('free');
    const expiresAt = rt.clock() + 30 * DAY;
    const { key } = await createKey(rt, { accountId, name: 'rotated twice', expiresAt }, 'test');
    const first = await rotateKey(rt, key.id, HOUR_MS, 'test');
    await revokeKey(rt, first.key.id, 'test');
    dead.add(first.key.id);
    read.length = 0;

    const second = await rotateKey(rt, key.id, HOUR_MS, 'test');
    // The old key's end date went to its first replacement, and comes back with the second.
    expect(second.key.expiresAt).toBe(expiresAt);
    expect(deadRead()).toEqual([first.key.id]);
  });
});
