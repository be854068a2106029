/**
 * The store suite: one set of assertions every store backend must pass (SQLite,
 * PostgreSQL). A backend test file calls `describeStore` with a way to open a migrated,
 * empty store of its kind.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccountRecord, AuditEntry, KeyRecord, MemberRecord, Page, SavedPendingUnits, Store } from '../../src/store/store.js';
import { UsageRecorder } from '../../src/usage/usage-recorder.js';
import { keyRecord, T0 } from '../support/key-records.js';

export interface StoreBackend {
  /** A migrated, empty store, and how to remove it afterwards. */
  open(): Promise<{ store: Store; teardown(): Promise<void> }>;
}

const byDayAndLabel = (x: { day: string; label: string }, y: { day: string; label: string }) => x.day.localeCompare(y.day) || x.label.localeCompare(y.label);

const unique = (prefix: string) => `${prefix}_${randomBytes(6).toString('hex')}`;

function account(overrides: Partial<AccountRecord> = {}): AccountRecord {
  return { id: unique('acc'), name: 'Acme', planId: 'free', planExpiresAt: null, apiAccess: true, overage: null, createdAt: T0, ...overrides };
}

/** A key row of `accountId`, scoped read and write (keyRecord's defaults). */
function key(accountId: string | null, overrides: Partial<KeyRecord> = {}): KeyRecord {
  return keyRecord({ accountId, ...overrides });
}

function member(accountId: string | null, overrides: Partial<MemberRecord> = {}): MemberRecord {
  return {
    id: unique('mem'),
    accountId,
    email: `${unique('m')}@example.com`,
    passwordHash: null,
    role: 'member',
    inviteHash: null,
    inviteExpiresAt: null,
    failedLogins: 0,
    lockedUntil: null,
    createdAt: T0,
    ...overrides,
  };
}

export function describeStore(name: string, backend: StoreBackend, enabled = true): void {
  describe.skipIf(!enabled)(`store: ${name}`, () => {
    let store: Store;
    let teardown: () => Promise<void>;

    beforeAll(async () => {
      ({ store, teardown } = await backend.open());
    });
    afterAll(async () => {
      await teardown?.();
    });

    it('is fully migrated', async () => {
      expect(await store.pendingMigrations()).toEqual([]);
      expect(await store.migrate()).toEqual([]);
    });

    it('keeps the first value a setting was given, for every later caller, until it is deleted', async () => {
      const name = `check_${Math.random().toString(36).slice(2)}`;
      expect(await store.getSetting(name)).toBeUndefined();
      const both = await Promise.all([store.settleSetting(name, 'first'), store.settleSetting(name, 'second')]);
      expect(both[0]).toBe(both[1]);
      expect(await store.settleSetting(name, 'third')).toBe(both[0]);
      expect(await store.getSetting(name)).toBe(both[0]);
      expect(await store.deleteSetting(name)).toBe(true);
      expect(await store.getSetting(name)).toBeUndefined();
      expect(await store.deleteSetting(name)).toBe(false);
      expect(await store.settleSetting(name, 'fourth')).toBe('fourth');
    });

    it('replaces a setting put again, and creates one that was not there', async () => {
      const name = `mark_${Math.random().toString(36).slice(2)}`;
      await store.putSetting(name, 'first');
      expect(await store.getSetting(name)).toBe('first');
      await store.putSetting(name, 'second');
      expect(await store.getSetting(name)).toBe('second');
      expect(await store.deleteSetting(name)).toBe(true);
    });

    it('merges meter write-backs arriving in any order: a give-back written after its charge is kept, a late older figure changes nothing', async () => {
      const accountId = `acc_merge_${Math.random().toString(36).slice(2)}`;
      const row = (used: number, returned?: number) => ({ accountId, meter: 'credits', periodStart: '2026-01-01', used, ...(returned === undefined ? {} : { returned }) });
      const stored = async () => (await store.loadMeterUsage({ accountId })).map((r) => ({ used: r.used, returned: r.returned }));
      await store.saveMeterUsage([row(100)]);
      expect(await stored()).toEqual([{ used: 100, returned: 0 }]);
      await store.saveMeterUsage([row(0, 100)]);
      expect(await stored()).toEqual([{ used: 0, returned: 100 }]);
      await store.saveMeterUsage([row(100, 0)]);
      expect(await stored()).toEqual([{ used: 0, returned: 100 }]);
      await store.saveMeterUsage([row(25, 100)]);
      expect(await stored()).toEqual([{ used: 25, returned: 100 }]);
      await store.saveMeterUsage([row(20, 100)]);
      expect(await stored()).toEqual([{ used: 25, returned: 100 }]);
      // The same fractional reading twice stays exactly as written (0.3 + 0.6 - 0.6 would not).
      const fractional = `${accountId}_f`;
      for (let i = 0; i < 2; i++) await store.saveMeterUsage([{ accountId: fractional, meter: 'credits', periodStart: '2026-01-01', used: 0.3, returned: 0.6 }]);
      expect((await store.loadMeterUsage({ accountId: fractional })).map((r) => [r.used, r.returned])).toEqual([[0.3, 0.6]]);
    });

    it('keeps rate-limit state rows until they expire, the last one written for a kind and id winning', async () => {
      const id = `k:key_limits_${Math.random().toString(36).slice(2)}`;
      // Long past: the deletions of expired rows here reach no other test's rows.
      const now = Date.parse('2001-01-01T00:00:00Z');
      const mine = async (at: number) => (await store.loadLimitState(at)).filter((r) => r.id.startsWith(id)).sort((a, b) => a.kind.localeCompare(b.kind) || a.id.localeCompare(b.id));
      await store.saveLimitState(
        [
          { kind: 'block', id, state: '{"level":1}', expiresAt: now + 60_000 },
          { kind: 'window', id, state: '{"first":1}', expiresAt: now + 1_000 },
          { kind: 'window', id: `${id}:1000:5:0`, state: '{"first":2}', expiresAt: now + 2_000 },
        ],
        now,
      );
      expect(await mine(now)).toEqual([
        { kind: 'block', id, state: '{"level":1}', expiresAt: now + 60_000 },
        { kind: 'window', id, state: '{"first":1}', expiresAt: now + 1_000 },
        { kind: 'window', id: `${id}:1000:5:0`, state: '{"first":2}', expiresAt: now + 2_000 },
      ]);
      // Not loaded once expired.
      expect((await mine(now + 1_500)).map((r) => r.state)).toEqual(['{"level":1}', '{"first":2}']);
      // Written again: replaced; written already expired (a block lifted): gone, with every row expired by then.
      await store.saveLimitState([{ kind: 'block', id, state: '{"level":2}', expiresAt: now + 120_000 }], now);
      expect((await mine(now)).map((r) => r.state)).toEqual(['{"level":2}', '{"first":1}', '{"first":2}']);
      await store.saveLimitState([{ kind: 'block', id, state: '{}', expiresAt: 0 }], now + 1_500);
      expect(await mine(0)).toEqual([{ kind: 'window', id: `${id}:1000:5:0`, state: '{"first":2}', expiresAt: now + 2_000 }]);
      await store.saveLimitState([], now + 2_000);
      expect(await mine(0)).toEqual([]);
    });

    it('keeps pending units until they are removed, with the balances they reached written in the same transaction', async () => {
      const accountId = `acc_pending_${Math.random().toString(36).slice(2)}`;
      const row = (units: number) => ({ accountId, meter: 'credits', periodStart: '2026-01-01', units });
      const mine = async () => (await store.readPendingUnits(1000)).filter((r) => r.accountId === accountId);
      await store.savePendingUnits([row(5), row(-2)]);
      await store.savePendingUnits([row(7.5)]);
      // Read, not taken: two readers at once both see every row (adding each once is Redis's part).
      const [first, second] = await Promise.all([mine(), mine()]);
      expect(first.map((r) => r.units).sort((a, b) => a - b)).toEqual([-2, 5, 7.5]);
      expect(second).toEqual(first);
      expect(new Set(first.map((r) => r.id)).size).toBe(3);
      expect(first.every((r) => r.accountId === accountId && r.meter === 'credits' && r.periodStart === '2026-01-01')).toBe(true);

      const [a, b, c] = first as [SavedPendingUnits, SavedPendingUnits, SavedPendingUnits];
      await store.removePendingUnits([a.id, b.id], [{ accountId, meter: 'credits', periodStart: '2026-01-01', used: 3, returned: 2 }]);
      expect((await mine()).map((r) => r.id)).toEqual([c.id]);
      expect(await store.loadMeterUsage({ accountId })).toEqual([{ accountId, meter: 'credits', periodStart: '2026-01-01', used: 3, returned: 2 }]);
      // Removed twice (two processes, or one after a kill): nothing more happens; a balance never goes back.
      await store.removePendingUnits([a.id, c.id], [{ accountId, meter: 'credits', periodStart: '2026-01-01', used: 1, returned: 0 }]);
      expect(await mine()).toEqual([]);
      expect(await store.loadMeterUsage({ accountId })).toEqual([{ accountId, meter: 'credits', periodStart: '2026-01-01', used: 3, returned: 2 }]);
    });

    it('removes no pending row when the balance written with it is refused', async () => {
      const accountId = `acc_pending_${Math.random().toString(36).slice(2)}`;
      await store.savePendingUnits([{ accountId, meter: 'credits', periodStart: '2026-01-01', units: 4 }]);
      const [saved] = (await store.readPendingUnits(1000)).filter((r) => r.accountId === accountId);
      await expect(store.removePendingUnits([saved?.id ?? ''], [{ accountId, meter: 'credits', periodStart: '2026-01-01', used: null as unknown as number }])).rejects.toThrow();
      expect((await store.readPendingUnits(1000)).filter((r) => r.accountId === accountId)).toEqual([saved]);
      expect(await store.loadMeterUsage({ accountId })).toEqual([]);
    });

    it('lists accounts and keys a page at a time, in creation order, each row once (ties in time broken by id)', async () => {
      // Far in the future, so this test's rows come after every other test's.
      const at = T0 + 10 * 365 * 86_400_000;
      const accounts = [account({ createdAt: at }), account({ createdAt: at }), account({ createdAt: at + 1 }), account({ createdAt: at + 1 }), account({ createdAt: at + 2 })];
      for (const a of accounts) await store.createAccount(a);
      const expected = [...accounts].sort((x, y) => x.createdAt - y.createdAt || (x.id < y.id ? -1 : 1)).map((a) => a.id);
      const first = await store.listAccounts({ after: { createdAt: at - 1, id: '' }, limit: 2 });
      const seen = first.map((a) => a.id);
      let last = first[first.length - 1];
      while (last) {
        const page = await store.listAccounts({ after: { createdAt: last.createdAt, id: last.id }, limit: 2 });
        seen.push(...page.map((a) => a.id));
        last = page.length === 2 ? page[1] : undefined;
      }
      expect(seen).toEqual(expected);

      const owner = accounts[0] as AccountRecord;
      const keys = [key(owner.id, { createdAt: at }), key(owner.id, { createdAt: at }), key(owner.id, { createdAt: at + 5 })];
      for (const k of keys) await store.insertKey(k);
      const byId = [...keys].sort((x, y) => x.createdAt - y.createdAt || (x.id < y.id ? -1 : 1)).map((k) => k.id);
      const firstKeys = await store.listKeys({ accountId: owner.id, limit: 2 });
      expect(firstKeys.map((k) => k.id)).toEqual(byId.slice(0, 2));
      const lastKey = firstKeys[1] as KeyRecord;
      expect((await store.listKeys({ accountId: owner.id, after: { createdAt: lastKey.createdAt, id: lastKey.id }, limit: 2 })).map((k) => k.id)).toEqual(byId.slice(2));
    });

    it('creates, reads, lists, updates and deletes accounts', async () => {
      const a = account({ name: 'First', createdAt: T0 + 1, planExpiresAt: T0 + 86_400_000, overage: true });
      const b = account({ name: 'Second', createdAt: T0 + 2, apiAccess: false, overage: false });
      expect(await store.createAccount(a)).toBe(true);
      expect(await store.createAccount(b)).toBe(true);
      // One with an id taken already (a form sent twice chose it) writes nothing, and says so.
      expect(await store.createAccount({ ...a, name: 'Second send' })).toBe(false);

      expect(await store.getAccount(a.id)).toEqual(a);
      expect(await store.getAccount(b.id)).toEqual(b);
      expect(await store.getAccount('acc_missing')).toBeUndefined();
      const listed = (await store.listAccounts()).filter((x) => x.id === a.id || x.id === b.id);
      expect(listed.map((x) => x.id)).toEqual([a.id, b.id]);

      const updated = await store.updateAccount(a.id, { name: 'Renamed', planId: 'pro', planExpiresAt: null, apiAccess: false, overage: null });
      expect(updated).toEqual({ ...a, name: 'Renamed', planId: 'pro', planExpiresAt: null, apiAccess: false, overage: null });
      expect(await store.updateAccount(a.id, {})).toEqual(updated);
      expect(await store.updateAccount('acc_missing', { name: 'x' })).toBeUndefined();

      const bound = key(b.id);
      await store.insertKey(bound);
      expect(await store.deleteAccount(b.id)).toBe(true);
      expect(await store.deleteAccount(b.id)).toBe(false);
      expect(await store.getAccount(b.id)).toBeUndefined();
      // Its keys stay, unbound.
      expect((await store.getKey(bound.id))?.accountId).toBeNull();
    });

    it("keeps an account's own limits (its overrides of the plan's) and changes or clears them", async () => {
      const a = account({ limits: { rateLimits: [{ limit: 25, window: 1_000, scope: 'key' }, { name: 'hourly', limit: 5_000, window: 3_600_000, scope: 'account' }], meters: { units: 150 } } });
      expect(await store.createAccount(a)).toBe(true);
      expect(await store.getAccount(a.id)).toEqual(a);
      // Other changes leave them as they are.
      expect((await store.updateAccount(a.id, { name: 'Renamed' }))?.limits).toEqual(a.limits);
      // No plan-level window at all is kept apart from the plan's windows.
      expect((await store.updateAccount(a.id, { limits: { rateLimits: [], meters: {} } }))?.limits).toEqual({ rateLimits: [], meters: {} });
      // Nothing overridden is no overrides.
      const cleared = await store.updateAccount(a.id, { limits: { rateLimits: null, meters: {} } });
      expect(cleared?.limits).toBeUndefined();
      expect((await store.listAccounts({ ids: [a.id] }))[0]?.limits).toBeUndefined();
    });

    it('stores keys by hash, lists them per account and updates them', async () => {
      const a = account();
      await store.createAccount(a);
      const first = key(a.id, { createdAt: T0 + 10, expiresAt: T0 + 1_000_000, mode: 'test', scopes: [] });
      const second = key(a.id, { createdAt: T0 + 20, rotatedFrom: first.id });
      await store.insertKey(first);
      await store.insertKey(second);

      expect(await store.getKey(first.id)).toEqual(first);
      expect(await store.findKeyByHash(second.hash)).toEqual(second);
      expect(await store.findKeyByHash('0'.repeat(64))).toBeUndefined();
      expect((await store.listKeys({ accountId: a.id })).map((k) => k.id)).toEqual([first.id, second.id]);
      expect((await store.listKeys()).some((k) => k.id === first.id)).toBe(true);

      const revoked = await store.updateKey(first.id, { revokedAt: T0 + 30, scopes: ['read'], name: 'old', expiresAt: null });
      expect(revoked).toEqual({ ...first, revokedAt: T0 + 30, scopes: ['read'], name: 'old', expiresAt: null });
      expect(await store.updateKey('key_missing', { name: 'x' })).toBeUndefined();

      // A second key with the same hash, or the same id, is refused, and nothing is written.
      expect(await store.insertKey(key(a.id, { hash: first.hash }))).toBe(false);
      expect(await store.insertKey({ ...key(a.id), id: first.id })).toBe(false);
      expect((await store.listKeys({ accountId: a.id })).map((k) => k.id)).toEqual([first.id, second.id]);
    });

    it("tells which of many hashes are one account's keys, revoked ones too, past one statement of lookups, and not another account's", async () => {
      const a = account();
      await store.createAccount(a);
      const active = key(a.id, { createdAt: T0 + 10 });
      const revoked = key(a.id, { createdAt: T0 + 20, revokedAt: T0 + 30 });
      await store.insertKey(active);
      await store.insertKey(revoked);
      const unknown = Array.from({ length: 1_200 }, (_, i) => i.toString(16).padStart(64, 'f'));
      expect((await store.storedKeyHashes(a.id, [...unknown.slice(0, 700), active.hash, ...unknown.slice(700), revoked.hash])).sort()).toEqual([active.hash, revoked.hash].sort());
      expect(await store.storedKeyHashes(a.id, unknown)).toEqual([]);
      expect(await store.storedKeyHashes(a.id, [])).toEqual([]);
      // Another account's keys are not told: a name is checked against its own account's.
      const other = account();
      await store.createAccount(other);
      expect(await store.storedKeyHashes(other.id, [active.hash, revoked.hash])).toEqual([]);
    });

    it("gives the hints of one account's keys (revoked and expired too) that end with one of many endings, each once, case and all, and not another account's", async () => {
      const a = account();
      await store.createAccount(a);
      const active = key(a.id, { hint: 'rk_…x4Qz' });
      const revoked = key(a.id, { hint: '…x4Qz', revokedAt: T0 + 30 });
      const expired = key(a.id, { hint: 'kg_live_…2023', expiresAt: T0 + 1 });
      const sameHint = key(a.id, { hint: 'rk_…x4Qz' });
      const otherEnding = key(a.id, { hint: '…X4QZ' });
      for (const record of [active, revoked, expired, sameHint, otherEnding]) await store.insertKey(record);
      // Past one statement of endings, as a lookup of hashes is.
      const unrelated = Array.from({ length: 600 }, (_, i) => i.toString(36).padStart(4, 'q'));
      expect((await store.keyHintsEndingIn(a.id, [...unrelated.slice(0, 550), 'x4Qz', ...unrelated.slice(550), '2023'])).sort()).toEqual(['kg_live_…2023', 'rk_…x4Qz', '…x4Qz'].sort());
      expect(await store.keyHintsEndingIn(a.id, unrelated)).toEqual([]);
      expect(await store.keyHintsEndingIn(a.id, [])).toEqual([]);
      // A NUL (no text PostgreSQL stores) matches nothing and fails nothing.
      expect([await store.keyHintsEndingIn(a.id, ['x4\0z', 'X4QZ']), await store.keyHintsEndingIn(`${a.id}\0`, ['x4Qz'])]).toEqual([['…X4QZ'], []]);
      const other = account();
      await store.createAccount(other);
      expect(await store.keyHintsEndingIn(other.id, ['x4Qz', '2023'])).toEqual([]);
    });

    it("keeps a key's own rate-limit windows, changes them, and takes none for no windows", async () => {
      const a = account();
      await store.createAccount(a);
      const windows = [{ limit: 10, window: 60_000, scope: 'key' as const }, { name: 'burst', limit: 2, window: 1_000, scope: 'key' as const }];
      const limited = key(a.id, { createdAt: T0 + 10, rateLimits: windows });
      const plain = key(a.id, { createdAt: T0 + 20 });
      await store.insertKey(limited);
      await store.insertKey(plain);
      expect((await store.getKey(limited.id))?.rateLimits).toEqual(windows);
      expect((await store.findKeyByHash(limited.hash))?.rateLimits).toEqual(windows);
      expect((await store.listKeys({ accountId: a.id })).map((k) => k.rateLimits)).toEqual([windows, undefined]);
      // Absent: no windows of its own (not an empty list to tell apart).
      expect(await store.getKey(plain.id)).toEqual(plain);

      const changed = await store.updateKey(plain.id, { rateLimits: [{ limit: 5, window: 1_000, scope: 'key' }] });
      expect(changed?.rateLimits).toEqual([{ limit: 5, window: 1_000, scope: 'key' }]);
      // Another field changed leaves them as they are.
      expect((await store.updateKey(plain.id, { name: 'renamed' }))?.rateLimits).toEqual([{ limit: 5, window: 1_000, scope: 'key' }]);
      const cleared = await store.updateKey(limited.id, { rateLimits: [] });
      expect(cleared).toEqual(limited.rateLimits && { ...limited, rateLimits: undefined });
      expect(cleared && 'rateLimits' in cleared).toBe(false);
    });

    it('lists only the keys in use at a time (neither revoked nor expired), and the replacements of a key', async () => {
      const a = account();
      await store.createAccount(a);
      const at = T0 + 1_000;
      const forever = key(a.id, { createdAt: T0 + 1 });
      const until = key(a.id, { createdAt: T0 + 2, expiresAt: at + 1 });
      const expired = key(a.id, { createdAt: T0 + 3, expiresAt: at, rotatedFrom: forever.id });
      const revoked = key(a.id, { createdAt: T0 + 4, revokedAt: at - 1, rotatedFrom: forever.id });
      const revokedLater = key(a.id, { createdAt: T0 + 5, revokedAt: at + 1, expiresAt: at + 1, rotatedFrom: until.id });
      for (const k of [forever, until, expired, revoked, revokedLater]) await store.insertKey(k);
      const other = key(null, { createdAt: T0 + 6 });
      await store.insertKey(other);

      const ids = async (filter: Parameters<Store['listKeys']>[0]) => (await store.listKeys(filter)).map((k) => k.id);
      expect(await ids({ accountId: a.id, inUseAt: at })).toEqual([forever.id, until.id]);
      expect(await ids({ accountId: a.id, inUseAt: at + 1 })).toEqual([forever.id]);
      expect(await ids({ accountId: a.id, rotatedFrom: forever.id })).toEqual([expired.id, revoked.id]);
      expect(await ids({ accountId: a.id, rotatedFrom: forever.id, inUseAt: T0 })).toEqual([expired.id]);
      expect(await ids({ accountId: a.id, rotatedFrom: `${forever.id}\u0000` })).toEqual([]);
      expect(await ids({ accountId: a.id, inUseAt: at, limit: 1, after: { createdAt: forever.createdAt, id: forever.id } })).toEqual([until.id]);

      // The replacements of several keys at once (a page of `keys list`), in creation order; an id with a NUL matches none.
      expect(await ids({ rotatedFromIds: [until.id, forever.id] })).toEqual([expired.id, revoked.id, revokedLater.id]);
      expect(await ids({ rotatedFromIds: [until.id, forever.id], inUseAt: T0 })).toEqual([expired.id]);
      expect(await ids({ rotatedFromIds: [`${forever.id}\u0000`, until.id] })).toEqual([revokedLater.id]);
      expect(await ids({ rotatedFromIds: [`${forever.id}\u0000`] })).toEqual([]);
      expect(await ids({ rotatedFromIds: [] })).toEqual([]);
      // As many ids as `keys list --limit` takes (10,000) fit in one query on every backend.
      const page = Array.from({ length: 10_000 }, (_, i) => (i === 9_999 ? until.id : `key_${String(i).padStart(16, '0')}`));
      expect(await ids({ rotatedFromIds: page })).toEqual([revokedLater.id]);
    });

    it('counts the keys in use whose hint begins with none of the given starts, and shows the oldest', async () => {
      // Other tests' keys share the store: counted before, and these are older than any of theirs.
      const at = T0 + 1_000;
      const starts = ['a_b…', 'a_b_test_…', '…'];
      const before = await store.keysOfOtherHints(starts, at, 2);
      const old = (n: number) => T0 - 1_000_000 + n;
      const outside = [
        key(null, { createdAt: old(1), hint: 'gone_…wxyz' }),
        // Not LIKE: `_` is a character, not a wildcard.
        key(null, { createdAt: old(2), hint: 'aXb…wxyz' }),
        // A start is the whole prefix, not the beginning of a longer one.
        key(null, { createdAt: old(3), hint: 'a_bc…wxyz' }),
        // Case counts (SQLite's LIKE would ignore it).
        key(null, { createdAt: old(4), hint: 'A_B…wxyz' }),
      ];
      const inside = [
        key(null, { createdAt: old(5), hint: 'a_b…wxyz' }),
        key(null, { createdAt: old(6), hint: 'a_b_test_…wxyz', mode: 'test' }),
        key(null, { createdAt: old(7), hint: '…wxyz' }),
      ];
      const notInUse = [key(null, { createdAt: old(8), hint: 'old_…wxyz', revokedAt: at - 1 }), key(null, { createdAt: old(9), hint: 'old_…wxyz', expiresAt: at })];
      for (const k of [...outside, ...inside, ...notInUse]) await store.insertKey(k);

      const after = await store.keysOfOtherHints(starts, at, 2);
      expect(after.count - before.count).toBe(4);
      expect(after.hints).toEqual(['gone_…wxyz', 'aXb…wxyz']);
      expect((await store.keysOfOtherHints(['gone_…', 'aXb…', 'a_bc…', 'A_B…', ...starts], at, 2)).count).toBe(before.count);
    });

    it('lets one issuer of an account\'s keys at a time read and write them, and keeps nothing of one that fails', async () => {
      const a = account();
      await store.createAccount(a);
      const events: string[] = [];
      const issuer = (name: string) =>
        store.issuingKeysOf(a.id, async (locked) => {
          events.push(`${name} read ${(await locked.listKeys({ accountId: a.id })).length}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
          await locked.insertKey(key(a.id));
          events.push(`${name} wrote`);
        });
      await Promise.all([issuer('one'), issuer('two')]);
      // Whichever came first, the other read the key it wrote.
      const [first, second] = events[0]?.startsWith('one') ? ['one', 'two'] : ['two', 'one'];
      expect(events).toEqual([`${first} read 0`, `${first} wrote`, `${second} read 1`, `${second} wrote`]);

      await expect(
        store.issuingKeysOf(a.id, async (locked) => {
          await locked.insertKey(key(a.id));
          throw new Error('refused after writing');
        }),
      ).rejects.toThrow('refused after writing');
      expect(await store.listKeys({ accountId: a.id })).toHaveLength(2);
    });

    it("lets one changer of an account at a time read and write it, and keeps nothing of one that fails", async () => {
      const a = account();
      await store.createAccount(a);
      const changer = (name: string) =>
        store.changingAccount(a.id, async (locked) => {
          const read = (await locked.getAccount(a.id)) as AccountRecord;
          await new Promise((resolve) => setTimeout(resolve, 50));
          await locked.updateAccount(a.id, { name: `${read.name} ${name}` });
        });
      await Promise.all([changer('one'), changer('two')]);
      // Whichever came first, the other read the name it wrote.
      expect([`${a.name} one two`, `${a.name} two one`]).toContain((await store.getAccount(a.id))?.name);

      const named = (await store.getAccount(a.id))?.name;
      await expect(
        store.changingAccount(a.id, async (locked) => {
          await locked.updateAccount(a.id, { name: 'never kept' });
          throw new Error('refused after writing');
        }),
      ).rejects.toThrow('refused after writing');
      expect((await store.getAccount(a.id))?.name).toBe(named);
    });

    it('lets one inviter of an address at a time read and write its member (the address in any case), and keeps nothing of one that fails', async () => {
      const a = account();
      await store.createAccount(a);
      const email = `${unique('invited')}@example.com`;
      const events: string[] = [];
      const inviter = (name: string, as: string) =>
        store.invitingMember(as, async (locked) => {
          const found = await locked.findMemberByEmail(email);
          events.push(`${name} ${found ? 'found' : 'read none'}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
          if (!found) await locked.createMember(member(a.id, { email }));
          events.push(`${name} done`);
        });
      await Promise.all([inviter('one', email), inviter('two', email.toUpperCase())]);
      const [first, second] = events[0]?.startsWith('one') ? ['one', 'two'] : ['two', 'one'];
      expect(events).toEqual([`${first} read none`, `${first} done`, `${second} found`, `${second} done`]);

      const other = `${unique('refused')}@example.com`;
      await expect(
        store.invitingMember(other, async (locked) => {
          await locked.createMember(member(a.id, { email: other }));
          throw new Error('refused after writing');
        }),
      ).rejects.toThrow('refused after writing');
      expect(await store.findMemberByEmail(other)).toBeUndefined();
    });

    it('finds accounts by a part of their name, either case, wildcards taken literally, or by id', async () => {
      const tag = unique('find');
      const data = account({ name: `${tag} Data_Co`, createdAt: T0 + 1 });
      const metrics = account({ name: `${tag} 100% METRICS`, createdAt: T0 + 2 });
      const decoy = account({ name: `${tag} DataXCo 100 metrics`, createdAt: T0 + 3 });
      const school = account({ name: `${tag} École Ärzte`, createdAt: T0 + 4 });
      for (const a of [data, metrics, decoy, school]) await store.createAccount(a);
      const names = async (search: string, page: Page = {}) => (await store.listAccounts({ search, ...page })).map((a) => a.name);

      expect(await names(tag.toUpperCase())).toEqual([data.name, metrics.name, decoy.name, school.name]);
      expect(await names(`${tag} École`)).toEqual([school.name]);
      expect(await names(`${tag} école ärzte`)).toEqual([school.name]);
      expect(await names(`${tag} data_co`)).toEqual([data.name]);
      expect(await names(`${tag} 100% m`)).toEqual([metrics.name]);
      expect(await names(data.id)).toEqual([data.name]);
      expect(await names(`${tag} nothing`)).toEqual([]);
      expect(await names('\u0000')).toEqual([]);
      expect(await names(tag, { limit: 1, after: { createdAt: data.createdAt, id: data.id } })).toEqual([metrics.name]);
    });

    it('lists the keys and members of several accounts at once (a page of accounts), and of none', async () => {
      const [a, b, c] = [account(), account(), account()];
      for (const x of [a, b, c]) await store.createAccount(x);
      const keys = [key(a.id, { createdAt: T0 + 1 }), key(b.id, { createdAt: T0 + 2 }), key(c.id, { createdAt: T0 + 3 }), key(a.id, { createdAt: T0 + 4 })];
      for (const k of keys) await store.insertKey(k);
      const members = [member(b.id), member(c.id), member(a.id)];
      for (const m of members) await store.createMember(m);

      expect((await store.listKeys({ accountIds: [a.id, b.id] })).map((k) => k.id)).toEqual([keys[0]?.id, keys[1]?.id, keys[3]?.id]);
      expect((await store.listMembers({ accountIds: [a.id, c.id] })).map((m) => m.id).sort()).toEqual([members[1]?.id, members[2]?.id].sort());
      expect(await store.listKeys({ accountIds: [] })).toEqual([]);
      expect(await store.listMembers({ accountIds: [] })).toEqual([]);
    });

    it('moves "last used" only forward', async () => {
      const a = account();
      await store.createAccount(a);
      const k1 = key(a.id);
      const k2 = key(a.id, { lastUsedAt: T0 + 500 });
      await store.insertKey(k1);
      await store.insertKey(k2);

      await store.touchKeys(new Map([[k1.id, T0 + 100], [k2.id, T0 + 400], ['key_missing', T0]]));
      expect((await store.getKey(k1.id))?.lastUsedAt).toBe(T0 + 100);
      expect((await store.getKey(k2.id))?.lastUsedAt).toBe(T0 + 500);

      await store.touchKeys(new Map([[k1.id, T0 + 50], [k2.id, T0 + 600]]));
      expect((await store.getKey(k1.id))?.lastUsedAt).toBe(T0 + 100);
      expect((await store.getKey(k2.id))?.lastUsedAt).toBe(T0 + 600);
      await store.touchKeys(new Map());
    });

    it('keeps members, invitations and sessions', async () => {
      const a = account();
      await store.createAccount(a);
      const invited = member(a.id, { inviteHash: unique('inv'), inviteExpiresAt: T0 + 7 * 86_400_000 });
      const operator = member(null, { role: 'operator', passwordHash: 'scrypt$x' });
      await store.createMember(invited);
      await store.createMember(operator);

      expect(await store.getMember(invited.id)).toEqual(invited);
      expect(await store.findMemberByEmail(operator.email.toUpperCase())).toEqual(operator);
      expect(await store.findMemberByInvite(invited.inviteHash as string)).toEqual(invited);
      expect((await store.listMembers({ accountId: a.id })).map((m) => m.id)).toEqual([invited.id]);
      await expect(store.createMember(member(a.id, { email: invited.email }))).rejects.toThrow();

      const activated = await store.updateMember(invited.id, { passwordHash: 'scrypt$y', inviteHash: null, inviteExpiresAt: null, failedLogins: 2, lockedUntil: T0 + 60_000 });
      expect(activated).toEqual({ ...invited, passwordHash: 'scrypt$y', inviteHash: null, inviteExpiresAt: null, failedLogins: 2, lockedUntil: T0 + 60_000 });

      const live = { idHash: unique('s'), memberId: invited.id, expiresAt: T0 + 1_000, createdAt: T0 };
      const old = { idHash: unique('s'), memberId: invited.id, expiresAt: T0 - 1, createdAt: T0 - 10 };
      await store.createSession(live);
      await store.createSession(old);
      expect(await store.getSession(live.idHash)).toEqual(live);
      expect(await store.deleteExpiredSessions(T0)).toBeGreaterThanOrEqual(1);
      expect(await store.getSession(old.idHash)).toBeUndefined();
      await store.deleteSession(live.idHash);
      expect(await store.getSession(live.idHash)).toBeUndefined();
    });

    it('uses an invitation link up with the password it sets, only while the link is the member\'s and works', async () => {
      const a = account();
      await store.createAccount(a);
      const inviteHash = unique('inv');
      const invited = member(a.id, { inviteHash, inviteExpiresAt: T0 + 1_000, failedLogins: 3, lockedUntil: T0 + 500 });
      await store.createMember(invited);

      expect(await store.useMemberInvite(invited.id, unique('inv'), T0, 'scrypt$other')).toBeUndefined();
      expect(await store.useMemberInvite(invited.id, inviteHash, T0 + 1_000, 'scrypt$late')).toBeUndefined();
      expect(await store.getMember(invited.id)).toEqual(invited);

      const joined = { ...invited, passwordHash: 'scrypt$y', inviteHash: null, inviteExpiresAt: null, failedLogins: 0, lockedUntil: null };
      expect(await store.useMemberInvite(invited.id, inviteHash, T0 + 999, 'scrypt$y')).toEqual(joined);
      // Used up: a second send of the same link sets nothing.
      expect(await store.useMemberInvite(invited.id, inviteHash, T0, 'scrypt$z')).toBeUndefined();
      expect(await store.getMember(invited.id)).toEqual(joined);
    });

    it('counts sign-in failures per email and source, for every process alike', async () => {
      const email = `sha:${unique('m')}`; // an email's digest: the store keeps what it is given
      const other = `sha:${unique('m')}`;
      const byAddress = { emailDigest: email, source: '203.0.113.7', failures: 3, lockedUntil: null, updatedAt: T0 };
      const byNetwork = { emailDigest: email, source: '2001:db8::/64', failures: 0, lockedUntil: T0 + 900_000, updatedAt: T0 };
      await store.putSignInFailure(byAddress);
      await store.putSignInFailure(byNetwork);
      await store.putSignInFailure({ ...byAddress, emailDigest: other });
      expect(await store.listSignInFailures(email, ['203.0.113.7', '198.51.100.1'])).toEqual([byAddress]);
      expect(await store.listSignInFailures(email)).toEqual([byNetwork, byAddress]);
      expect(await store.listSignInFailures(email, [])).toEqual([]);
      // A write replaces the record of the same email and source.
      const fourth = { ...byAddress, failures: 4, updatedAt: T0 + 1 };
      await store.putSignInFailure(fourth);
      expect(await store.listSignInFailures(email, ['203.0.113.7'])).toEqual([fourth]);

      // Pruned: records untouched since then whose pause, if any, has ended.
      expect(await store.pruneSignInFailures(T0 + 1)).toBe(1); // the other email's (written at T0); this email's at T0 + 1 stays
      expect(await store.listSignInFailures(other)).toEqual([]);
      expect(await store.pruneSignInFailures(T0 + 2)).toBe(1); // this email's count; its /64's pause still runs
      expect(await store.listSignInFailures(email)).toEqual([byNetwork]);

      await store.putSignInFailure(fourth);
      await store.deleteSignInFailures(email, ['2001:db8::/64']);
      expect(await store.listSignInFailures(email)).toEqual([fourth]);
      await store.putSignInFailure(byNetwork);
      await store.deleteSignInFailures(email);
      expect(await store.listSignInFailures(email)).toEqual([]);

      // Counted in one statement: at once, each counts.
      const counted = await Promise.all(Array.from({ length: 6 }, () => store.countSignInFailure(email, '192.0.2.1', T0 + 10, T0)));
      expect(counted.map((r) => r.failures).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
      // A pause that has ended is dropped; a count last written before `forgetBefore` starts afresh.
      await store.putSignInFailure({ emailDigest: email, source: '192.0.2.2', failures: 0, lockedUntil: T0 + 20, updatedAt: T0 + 10 });
      expect(await store.countSignInFailure(email, '192.0.2.2', T0 + 20, T0)).toEqual({ emailDigest: email, source: '192.0.2.2', failures: 1, lockedUntil: null, updatedAt: T0 + 20 });
      expect(await store.countSignInFailure(email, '192.0.2.1', T0 + 30, T0 + 11)).toMatchObject({ failures: 1, updatedAt: T0 + 30 });
      await store.deleteSignInFailures(email);
    });

    it('counts a member\'s wrong passwords in one statement', async () => {
      const a = account();
      await store.createAccount(a);
      const m = member(a.id, { passwordHash: 'scrypt$x' });
      await store.createMember(m);
      expect((await Promise.all(Array.from({ length: 4 }, () => store.countMemberFailure(m.id)))).sort()).toEqual([1, 2, 3, 4]);
      expect((await store.getMember(m.id))?.failedLogins).toBe(4);
      expect(await store.countMemberFailure('mem_nobody')).toBe(0);
    });

    it('appends to the audit log and lists it newest first', async () => {
      const a = account();
      await store.createAccount(a);
      for (let i = 0; i < 3; i += 1) {
        await store.appendAudit({ id: unique(`aud${i}`), at: T0 + i, actor: 'cli', actorAddress: null, action: `act.${i}`, accountId: a.id, keyId: null, detail: { i, nested: { ok: true } } });
      }
      const entries = await store.listAudit({ accountId: a.id });
      expect(entries.map((e) => e.action)).toEqual(['act.2', 'act.1', 'act.0']);
      expect(entries[0]?.detail).toEqual({ i: 2, nested: { ok: true } });
      expect(await store.listAudit({ accountId: a.id, limit: 1 })).toHaveLength(1);
    });

    it("keeps the client address an audit entry's change was asked from, and none for one without", async () => {
      const a = account();
      await store.createAccount(a);
      const fromAdmin = { id: unique('aud_http'), at: T0 + 1, actor: 'admin-api', actorAddress: '2001:db8::7', action: 'key.revoked', accountId: a.id, keyId: 'key_1', detail: {} };
      const fromCli = { id: unique('aud_cli'), at: T0, actor: 'cli', actorAddress: null, action: 'key.created', accountId: a.id, keyId: 'key_1', detail: {} };
      await store.appendAudit(fromAdmin);
      await store.appendAudit(fromCli);
      expect(await store.listAudit({ accountId: a.id })).toEqual([fromAdmin, fromCli]);
    });

    it('lists the audit log a page at a time, newest first, each entry once (ties in time broken by id)', async () => {
      const a = account();
      await store.createAccount(a);
      const written = [0, 0, 1, 1, 1, 2].map((t, i) => ({ id: unique(`aud${i}`), at: T0 + t, actor: 'cli', actorAddress: null, action: `page.${i}`, accountId: a.id, keyId: null, detail: {} }));
      for (const e of written) await store.appendAudit(e);
      const expected = [...written].sort((x, y) => y.at - x.at || (x.id < y.id ? 1 : -1)).map((e) => e.id);
      const seen: string[] = [];
      let page = await store.listAudit({ accountId: a.id, limit: 4 });
      while (page.length > 0) {
        seen.push(...page.map((e) => e.id));
        const last = page[page.length - 1] as AuditEntry;
        page = await store.listAudit({ accountId: a.id, limit: 4, after: { createdAt: last.at, id: last.id } });
      }
      expect(seen).toEqual(expected);
    });

    it('lists the accounts a set of ids names, and none for an empty set', async () => {
      const [a, b, c] = [account(), account(), account()];
      for (const x of [a, b, c]) await store.createAccount(x);
      expect((await store.listAccounts({ ids: [a.id, c.id, 'acc_nobody'] })).map((x) => x.id).sort()).toEqual([a.id, c.id].sort());
      expect(await store.listAccounts({ ids: [] })).toEqual([]);
    });

    it('saves absolute meter balances, never lowering one, and loads them by account and period', async () => {
      const a = account();
      const b = account();
      await store.saveMeterUsage([
        { accountId: a.id, meter: 'units', periodStart: '2026-01-01', used: 12.5 },
        { accountId: a.id, meter: 'units', periodStart: '2026-02-01', used: 3 },
        { accountId: b.id, meter: 'credits', periodStart: '2026-01-01', used: 7 },
      ]);
      await store.saveMeterUsage([{ accountId: a.id, meter: 'units', periodStart: '2026-01-01', used: 40 }]);
      // A process writing an older, smaller figure late never takes the balance back.
      await store.saveMeterUsage([{ accountId: a.id, meter: 'units', periodStart: '2026-01-01', used: 30 }]);
      await store.saveMeterUsage([]);

      expect(await store.loadMeterUsage({ accountId: a.id, periodStarts: ['2026-01-01'] })).toEqual([
        { accountId: a.id, meter: 'units', periodStart: '2026-01-01', used: 40, returned: 0 },
      ]);
      expect((await store.loadMeterUsage({ accountId: a.id })).map((r) => r.used).sort((x, y) => x - y)).toEqual([3, 40]);
      expect(await store.loadMeterUsage({ accountId: a.id, periodStarts: [] })).toEqual([]);
      const january = await store.loadMeterUsage({ periodStarts: ['2026-01-01'] });
      expect(january.filter((r) => r.accountId === a.id || r.accountId === b.id)).toHaveLength(2);
    });

    it('saves many balances at once', async () => {
      const a = account();
      const rows = Array.from({ length: 450 }, (_, i) => ({ accountId: a.id, meter: `m${i}`, periodStart: '2026-01-01', used: i }));
      await store.saveMeterUsage(rows);
      const loaded = await store.loadMeterUsage({ accountId: a.id });
      expect(loaded).toHaveLength(450);
      expect(loaded.reduce((sum, r) => sum + r.used, 0)).toBe((449 * 450) / 2);
    });

    it('replaces gauges', async () => {
      const a = account();
      await store.setGauge({ accountId: a.id, meter: 'keywords', value: 10, updatedAt: T0 });
      await store.setGauge({ accountId: a.id, meter: 'keywords', value: 4, updatedAt: T0 + 1 });
      await store.setGauge({ accountId: a.id, meter: 'rows', value: 2.5, updatedAt: T0 + 2 });
      const gauges = (await store.listGauges(a.id)).sort((x, y) => x.meter.localeCompare(y.meter));
      expect(gauges).toEqual([
        { accountId: a.id, meter: 'keywords', value: 4, updatedAt: T0 + 1 },
        { accountId: a.id, meter: 'rows', value: 2.5, updatedAt: T0 + 2 },
      ]);
    });

    it('keeps the later gauge level when an earlier one is written after it', async () => {
      // A gateway's report from T0 + 5, written at its next flush, after an operator set
      // the level at T0 + 9: the operator's stands. An equal time replaces.
      const a = account();
      await store.setGauge({ accountId: a.id, meter: 'keywords', value: 1420, updatedAt: T0 + 9 });
      await store.setGauge({ accountId: a.id, meter: 'keywords', value: 7, updatedAt: T0 + 5 });
      expect(await store.listGauges(a.id)).toEqual([{ accountId: a.id, meter: 'keywords', value: 1420, updatedAt: T0 + 9 }]);
      await store.setGauge({ accountId: a.id, meter: 'keywords', value: 1500, updatedAt: T0 + 9 });
      expect(await store.listGauges(a.id)).toEqual([{ accountId: a.id, meter: 'keywords', value: 1500, updatedAt: T0 + 9 }]);
    });

    it('takes a gauge level over a stored one stamped later than the writer\'s own time (a clock ahead)', async () => {
      // Set from a host whose clock ran a day ahead; a gateway's report from T0 + 5, written
      // at T0 + 6 by its clock, replaces it instead of waiting a day for its clock to catch up.
      const a = account();
      await store.setGauge({ accountId: a.id, meter: 'keywords', value: 1420, updatedAt: T0 + 86_400_000 });
      await store.setGauge({ accountId: a.id, meter: 'keywords', value: 7, updatedAt: T0 + 5 }, T0 + 6);
      expect(await store.listGauges(a.id)).toEqual([{ accountId: a.id, meter: 'keywords', value: 7, updatedAt: T0 + 5 }]);
      // A stored level later than the report but not past the writer's time stands.
      await store.setGauge({ accountId: a.id, meter: 'keywords', value: 9, updatedAt: T0 + 20 }, T0 + 30);
      await store.setGauge({ accountId: a.id, meter: 'keywords', value: 3, updatedAt: T0 + 10 }, T0 + 30);
      expect(await store.listGauges(a.id)).toEqual([{ accountId: a.id, meter: 'keywords', value: 9, updatedAt: T0 + 20 }]);
    });

    it('adds daily usage to what is stored and lists a day range', async () => {
      const a = account();
      await store.addUsageDaily([
        { accountId: a.id, day: '2026-01-01', metric: 'requests', label: '2xx', value: 3 },
        { accountId: a.id, day: '2026-01-02', metric: 'units', label: 'credits', value: 1.5 },
        { accountId: a.id, day: '2026-01-05', metric: 'denials', label: 'rate_limited', value: 1 },
      ]);
      await store.addUsageDaily([
        { accountId: a.id, day: '2026-01-01', metric: 'requests', label: '2xx', value: 2 },
        { accountId: a.id, day: '2026-01-02', metric: 'units', label: 'credits', value: 1 },
      ]);
      // Concurrent writers (several processes flushing) add up too.
      await Promise.all(
        Array.from({ length: 10 }, () => store.addUsageDaily([{ accountId: a.id, day: '2026-01-01', metric: 'requests', label: '4xx', value: 1 }])),
      );

      const listed = (await store.listUsageDaily(a.id, '2026-01-01', '2026-01-02')).sort((x, y) => x.day.localeCompare(y.day) || x.label.localeCompare(y.label));
      expect(listed).toEqual([
        { accountId: a.id, day: '2026-01-01', metric: 'requests', label: '2xx', value: 5 },
        { accountId: a.id, day: '2026-01-01', metric: 'requests', label: '4xx', value: 10 },
        { accountId: a.id, day: '2026-01-02', metric: 'units', label: 'credits', value: 2.5 },
      ]);
      expect(await store.listUsageDaily(a.id, '2026-01-03', '2026-01-31')).toHaveLength(1);
    });

    it('keeps the requests each key had admitted, day by day, and its last use, as the usage recorder writes them', async () => {
      const a = account();
      await store.createAccount(a);
      const k1 = key(a.id);
      const k2 = key(a.id);
      await store.insertKey(k1);
      await store.insertKey(k2);
      const usage = new UsageRecorder();
      const day1 = T0 + 86_400_000 - 10; // 2026-01-01, 10 ms before midnight
      for (let i = 0; i < 3; i++) usage.touch(k1.id, a.id, day1);
      usage.touch(k2.id, a.id, day1 + 1);
      // Midnight passes between two writes: the key's later requests count on the next day.
      usage.touch(k1.id, a.id, day1 + 20);
      usage.touch(k1.id, a.id, day1 + 30);
      expect(usage.pendingKeyRequests(a.id, '2026-01-01', '2026-01-02').map(({ day, label, value }) => ({ day, label, value })).sort(byDayAndLabel)).toEqual(
        [
          { day: '2026-01-01', label: k1.id, value: 3 },
          { day: '2026-01-01', label: k2.id, value: 1 },
          { day: '2026-01-02', label: k1.id, value: 2 },
        ].sort(byDayAndLabel),
      );
      await usage.flush(store);
      expect(usage.pendingKeyRequests(a.id, '2026-01-01', '2026-01-02')).toEqual([]);
      // A second write adds to what is stored.
      usage.touch(k2.id, a.id, day1 + 40);
      await usage.flush(store);

      const listed = (await store.listUsageDaily(a.id, '2026-01-01', '2026-01-02')).sort(byDayAndLabel);
      expect(listed).toEqual(
        [
          { accountId: a.id, day: '2026-01-01', metric: 'key_requests', label: k1.id, value: 3 },
          { accountId: a.id, day: '2026-01-01', metric: 'key_requests', label: k2.id, value: 1 },
          { accountId: a.id, day: '2026-01-02', metric: 'key_requests', label: k1.id, value: 2 },
          { accountId: a.id, day: '2026-01-02', metric: 'key_requests', label: k2.id, value: 1 },
        ].sort(byDayAndLabel),
      );
      expect((await store.getKey(k1.id))?.lastUsedAt).toBe(day1 + 30);
      expect((await store.getKey(k2.id))?.lastUsedAt).toBe(day1 + 40);
    });

    it('writes a flush of daily usage or pending units whole or not at all, however many rows it has', async () => {
      // More rows than one statement takes, the last of them refused by the database (a
      // value that is not a number): what went before it must not stay written, or the
      // flush, tried again with every row, would count those twice.
      const a = account();
      const days = Array.from({ length: 450 }, (_, i) => ({ accountId: a.id, day: `2026-02-${String((i % 28) + 1).padStart(2, '0')}`, metric: 'requests' as const, label: `l${i}`, value: 1 }));
      const broken = [...days.slice(0, 449), { accountId: a.id, day: '2026-02-28', metric: 'requests' as const, label: 'refused', value: null as unknown as number }];
      await expect(store.addUsageDaily(broken)).rejects.toThrow();
      expect(await store.listUsageDaily(a.id, '2026-02-01', '2026-02-28')).toEqual([]);
      await store.addUsageDaily(days);
      expect(await store.listUsageDaily(a.id, '2026-02-01', '2026-02-28')).toHaveLength(450);

      const accountId = `acc_whole_${Math.random().toString(36).slice(2)}`;
      const units = Array.from({ length: 450 }, () => ({ accountId, meter: 'credits', periodStart: '2026-02-01', units: 1 }));
      await expect(store.savePendingUnits([...units.slice(0, 449), { accountId, meter: 'credits', periodStart: '2026-02-01', units: null as unknown as number }])).rejects.toThrow();
      const left: number[] = [];
      left.push(...(await store.readPendingUnits(100_000)).filter((r) => r.accountId === accountId).map((r) => r.units));
      expect(left).toEqual([]);
    });

    // PostgreSQL refuses text with a NUL in any statement, a lookup as much as a write;
    // anyone can send one (GET /v1/keys/%00, an email typed into the sign-in form).
    it('finds nothing by text with a NUL (U+0000) in it, without asking the database', async () => {
      const a = account();
      await store.createAccount(a);
      const k = key(a.id);
      await store.insertKey(k);
      const m = member(a.id, { inviteHash: unique('inv') });
      await store.createMember(m);
      const nul = (text: string) => `${text}\u0000`;

      expect(await store.getAccount(nul(a.id))).toBeUndefined();
      expect(await store.listAccounts({ ids: [nul(a.id)] })).toEqual([]);
      expect((await store.listAccounts({ ids: [nul(a.id), a.id] })).map((found) => found.id)).toEqual([a.id]);
      expect(await store.updateAccount(nul(a.id), { name: 'Renamed' })).toBeUndefined();
      expect(await store.deleteAccount(nul(a.id))).toBe(false);
      expect(await store.getKey(nul(k.id))).toBeUndefined();
      expect(await store.getKey('\u0000')).toBeUndefined();
      expect(await store.listKeys({ accountId: nul(a.id) })).toEqual([]);
      expect(await store.listKeys({ accountId: a.id, after: { createdAt: T0 - 1, id: '\u0000' } })).toEqual([]);
      expect(await store.listAccounts({ after: { createdAt: T0 - 1, id: '\u0000' } })).toEqual([]);
      expect(await store.listAudit({ after: { createdAt: T0 + 1, id: '\u0000' } })).toEqual([]);
      expect((await store.listKeys({ accountIds: [nul(a.id), a.id] })).map((found) => found.id)).toEqual([k.id]);
      expect(await store.updateKey(nul(k.id), { revokedAt: T0 })).toBeUndefined();
      await store.touchKeys(new Map([[nul(k.id), T0 + 1]]));
      expect(await store.getMember(nul(m.id))).toBeUndefined();
      expect(await store.findMemberByEmail(nul(m.email))).toBeUndefined();
      expect(await store.findMemberByInvite(nul(m.inviteHash as string))).toBeUndefined();
      expect(await store.listMembers({ accountId: nul(a.id) })).toEqual([]);
      expect(await store.updateMember(nul(m.id), { role: 'operator' })).toBeUndefined();
      expect(await store.countMemberFailure(nul(m.id))).toBe(0);
      expect(await store.deleteMember(nul(m.id))).toBe(false);
      expect(await store.listSignInFailures('a\u0000@b.c', ['203.0.113.7', '*'])).toEqual([]);
      expect(await store.listSignInFailures(m.email, ['\u0000'])).toEqual([]);
      await store.deleteSignInFailures('a\u0000@b.c');
      expect(await store.getSession('\u0000')).toBeUndefined();
      await store.deleteSession('\u0000');
      await store.deleteSessionsOf(nul(m.id));
      expect(await store.listAudit({ accountId: nul(a.id) })).toEqual([]);
      expect(await store.loadMeterUsage({ accountId: nul(a.id) })).toEqual([]);
      expect(await store.listGauges(nul(a.id))).toEqual([]);
      expect(await store.listUsageDaily(nul(a.id), '2026-01-01', '2026-01-31')).toEqual([]);
      expect(await store.getSetting('\u0000')).toBeUndefined();
      expect(await store.deleteSetting('\u0000')).toBe(false);
      // Issuing keys of such an account, or inviting such an address, finds no account or member.
      expect(await store.issuingKeysOf(nul(a.id), (locked) => locked.getAccount(nul(a.id)))).toBeUndefined();
      expect(await store.invitingMember(nul(m.email), (locked) => locked.findMemberByEmail(nul(m.email)))).toBeUndefined();

      // What the lookups did not change.
      expect(await store.getAccount(a.id)).toEqual(a);
      expect(await store.getKey(k.id)).toEqual(k);
      expect(await store.getMember(m.id)).toEqual(m);
    });

    it('refuses to write text with a NUL (U+0000) in it, writing nothing; JSON columns keep one as sent', async () => {
      const refused = (table: string, column: string) => ({ name: 'UnstorableTextError', table, column });
      const a = account({ name: 'Acme\u0000' });
      await expect(store.createAccount(a)).rejects.toMatchObject(refused('accounts', 'name'));
      expect(await store.getAccount(a.id)).toBeUndefined();
      const b = account();
      await store.createAccount(b);
      await expect(store.updateAccount(b.id, { planId: 'pro\u0000' })).rejects.toMatchObject(refused('accounts', 'plan_id'));
      expect(await store.getAccount(b.id)).toEqual(b);

      const k = key(b.id, { name: 'ci\u0000' });
      await expect(store.insertKey(k)).rejects.toMatchObject(refused('api_keys', 'name'));
      expect(await store.getKey(k.id)).toBeUndefined();
      const stored = key(b.id, { scopes: ['read\u0000'] });
      await store.insertKey(stored);
      expect(await store.getKey(stored.id)).toEqual(stored);
      await expect(store.updateKey(stored.id, { name: 'ci\u0000' })).rejects.toMatchObject(refused('api_keys', 'name'));

      const m = member(b.id, { email: 'a\u0000@example.com' });
      await expect(store.createMember(m)).rejects.toMatchObject(refused('members', 'email'));
      expect(await store.getMember(m.id)).toBeUndefined();
      await expect(store.countSignInFailure('a\u0000@b.c', '*', T0, T0)).rejects.toMatchObject(refused('sign_in_failures', 'email'));
      await expect(store.putSignInFailure({ emailDigest: 'a@b.c', source: '\u0000', failures: 1, lockedUntil: null, updatedAt: T0 })).rejects.toMatchObject(refused('sign_in_failures', 'source'));

      await expect(store.appendAudit({ id: unique('aud'), at: T0, actor: 'cli\u0000', actorAddress: null, action: 'act', accountId: b.id, keyId: null, detail: {} })).rejects.toMatchObject(refused('audit_log', 'actor'));
      const entry = { id: unique('aud'), at: T0, actor: 'cli', actorAddress: null, action: 'act', accountId: b.id, keyId: null, detail: { email: 'a\u0000@b.c' } };
      await store.appendAudit(entry);
      expect(await store.listAudit({ accountId: b.id })).toEqual([entry]);

      await expect(store.addUsageDaily([{ accountId: b.id, day: '2026-01-01', metric: 'denials', label: 'x\u0000', value: 1 }])).rejects.toMatchObject(refused('usage_daily', 'label'));
      expect(await store.listUsageDaily(b.id, '2026-01-01', '2026-01-01')).toEqual([]);
      // More rows than one statement takes: the first ones are not written either.
      const balances = Array.from({ length: 250 }, (_, i) => ({ accountId: b.id, meter: i === 249 ? 'credits\u0000' : `m${i}`, periodStart: '2026-01-01', used: 1 }));
      await expect(store.saveMeterUsage(balances)).rejects.toMatchObject(refused('meter_usage', 'meter'));
      await expect(store.savePendingUnits([{ accountId: b.id, meter: 'credits\u0000', periodStart: '2026-01-01', units: 1 }])).rejects.toMatchObject(refused('pending_units', 'meter'));
      await expect(store.setGauge({ accountId: b.id, meter: 'seats\u0000', value: 1, updatedAt: T0 })).rejects.toMatchObject(refused('gauges', 'meter'));
      expect(await store.loadMeterUsage({ accountId: b.id })).toEqual([]);
      expect(await store.listGauges(b.id)).toEqual([]);
      await expect(store.saveLimitState([{ kind: 'block', id: `k:\u0000`, state: '{}', expiresAt: T0 + 60_000 }], T0)).rejects.toMatchObject(refused('limit_state', 'id'));
      await expect(store.putSetting('\u0000', 'x')).rejects.toMatchObject(refused('keygate_settings', 'name'));
    });
  });
}
