/**
 * A name checked for the account's imported keys that only the store can tell (bare ones, and
 * a prefix glued to a word), on a real SQLite store: only the parts that begin and end as one
 * of the account's keys are hashed and looked up, and the key is still found wherever it is.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkedName, NAME_KEY_LOOKUPS_MOST, OperationError } from './errors.js';
import { createKeyFormat, randomBase62, type KeyFormat } from '../keys/format.js';
import { createKeyHasher } from '../keys/hash.js';
import { openSqliteStore } from '../store/sqlite/sqlite-database.js';
import type { SqlStore } from '../store/sql-store.js';
import type { KeyRecord } from '../store/store.js';
import { keyRecord, T0 } from '../../test/support/key-records.js';
import { tempDir } from '../../test/support/temp.js';

const HOLDS_KEY = 'a key name cannot contain an API key (it would be stored and shown in clear): name it after what it is for';
/** The most parts ending at one place of a 100-character name: one for each length from 16 (the shortest key) to 100. */
const ONE_PLACE_MOST = 100 - 16 + 1;

/** Letters only, `length` of them: no part of it ends as a key below does (their last four are digits), and no two parts are alike. */
function letters(length: number): string {
  let out = '';
  while (out.length < length) out += randomBase62(length).replace(/[0-9]/g, '');
  return out.slice(0, length);
}

/** `key` written into `letters(length)` from `at` on. */
function nameWith(key: string, at: number, length = 100): string {
  const around = letters(length);
  return around.slice(0, at) + key + around.slice(at + key.length);
}

describe('checking a long name for the account’s imported keys', () => {
  const dir = tempDir('name-keys');
  const plainHash = createKeyHasher(undefined);
  let store: SqlStore;
  /** Every secret hashed by the last check. */
  let hashed: string[] = [];
  const hashKey = (secret: string) => {
    hashed.push(secret);
    return plainHash(secret);
  };
  const bare = createKeyFormat({ format: 'prefixed', prefix: { live: 'kg_live_' }, hexLength: 40, imported: { prefix: {}, alphabet: 'unreserved', length: { min: 16, max: 256 } } });
  const glued = createKeyFormat({ format: 'prefixed', prefix: { live: 'kg_live_' }, hexLength: 40, imported: { prefix: { live: 'rk_' }, alphabet: 'unreserved', length: { min: 8, max: 256 } } });
  /** A hand-set key ending in four digits, as `bob.secret~2023`. */
  const handSet = () => `bob.${randomBase62(20)}~${String(Math.floor(Math.random() * 10_000)).padStart(4, '0')}`;
  const active = handSet();
  const revoked = handSet();
  const expired = handSet();
  const prefixed = `rk_${randomBase62(16)}${String(Math.floor(Math.random() * 10_000)).padStart(4, '0')}`;
  /** More keys of the account, ending in digits too. */
  const others = Array.from({ length: 20 }, handSet);
  const accountId = `acc_${randomBase62(16)}`;
  const otherAccountId = `acc_${randomBase62(16)}`;

  async function check(format: KeyFormat, name: string, account = accountId, what = 'a key'): Promise<string> {
    hashed = [];
    return checkedName(what, name, 200, { keyFormat: format, store, hashKey }, { accountId: account });
  }

  beforeAll(async () => {
    store = openSqliteStore(path.join(dir, 'keygate.db'));
    await store.migrate();
    for (const id of [accountId, otherAccountId]) await store.createAccount({ id, name: 'Acme', planId: 'free', planExpiresAt: null, apiAccess: true, overage: null, createdAt: T0 });
    const keys: [string, Partial<KeyRecord>][] = [[active, {}], [revoked, { revokedAt: T0 + 1 }], [expired, { expiresAt: T0 + 1 }], [prefixed, {}], ...others.map((secret): [string, Partial<KeyRecord>] => [secret, {}])];
    for (const [secret, state] of keys) await store.insertKey(keyRecord({ accountId, hash: plainHash(secret), hint: bare.hint(secret), ...state }));
  });

  afterAll(() => store?.close());

  it('hashes none of the 3,655 key-long parts of 100 characters of the alphabet that end as none of the account’s keys does, and a few where one does', async () => {
    const name = letters(100);
    expect(await check(bare, name)).toBe(name);
    expect(hashed).toEqual([]);
    // The last four characters of a key, ending at the 60th character: the parts ending there, 16 to 60 long.
    const ending = nameWith(active.slice(-4), 56);
    expect(await check(bare, ending)).toBe(ending);
    expect(hashed).toHaveLength(60 - 16 + 1);
    // A 200-character account name: none.
    const long = letters(200);
    expect(await check(bare, long, accountId, 'an account')).toBe(long);
    expect(hashed).toEqual([]);
  });

  it('refuses a 100-character name holding one of the account’s bare keys (revoked or expired too) wherever it is, hashing only parts that end where the key does', async () => {
    for (const key of [active, revoked, expired]) {
      for (let at = 0; at + key.length <= 100; at += key === active ? 1 : 9) {
        const name = nameWith(key, at);
        await expect(check(bare, name), `at ${at}`).rejects.toThrow(HOLDS_KEY);
        expect(hashed, `at ${at}`).toContain(key);
        expect(hashed.length, `at ${at}`).toBeLessThanOrEqual(ONE_PLACE_MOST);
        // Another account's name may hold it: only an account's own keys are looked for.
        expect(await check(bare, name, otherAccountId)).toBe(name);
      }
    }
  });

  it('refuses a 100-character name holding one of the account’s keys after its prefix glued to a word (prodrk_<key>) wherever it is, hashing a few parts', async () => {
    // `xrk_` everywhere around it: a glued prefix at every fourth character, each with a long run after it.
    const around = 'xrk_'.repeat(25);
    for (let at = 4; at + 4 + prefixed.length <= 100; at += 4) {
      const name = `${around.slice(0, at)}prod${prefixed}${around.slice(at + 4 + prefixed.length)}`.slice(0, 100);
      await expect(check(glued, name), `at ${at}`).rejects.toThrow(HOLDS_KEY);
      expect(hashed, `at ${at}`).toContain(prefixed);
      expect(hashed.length, `at ${at}`).toBeLessThanOrEqual(25);
    }
    expect(await check(glued, around)).toBe(around);
    expect(hashed).toEqual([]);
  });

  it('refuses, before hashing any, a name stringing the account’s keys’ last four characters together into more parts than it looks up, saying what to do', async () => {
    // 200 characters: the last four of one of the account's keys at every fourth place, each the end of up to 185 parts.
    const tails = [active, revoked, expired, ...others].map((secret) => secret.slice(-4));
    const strung = Array.from({ length: 50 }, () => tails[Math.floor(Math.random() * tails.length)]).join('');
    const refused = await check(bare, strung, accountId, 'an account').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OperationError);
    expect(refused).toMatchObject({ kind: 'invalid', message: "an account name has too many parts that could be one of the account's keys to check them all: shorten it, or break it up with spaces" });
    expect(hashed).toEqual([]);
    // Broken up with spaces, it is checked and taken.
    const spaced = strung.slice(0, 160).match(/.{40}/g)!.join(' ');
    expect(await check(bare, spaced, accountId, 'an account')).toBe(spaced);
    expect(hashed.length).toBeGreaterThan(0);
    expect(hashed.length).toBeLessThanOrEqual(NAME_KEY_LOOKUPS_MOST);
  });
});
