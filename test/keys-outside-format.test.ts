/**
 * Keys issued before `keys.prefix` changed are refused as malformed_key, before any lookup,
 * while `keys list` shows them active. keygate serve says so as it starts: one warning with
 * how many, a few hints and the way back (keys.imported), on a real SQLite file. Nothing is
 * said while the prefix is the same, or while keys.imported takes the old one. The look
 * reads every key in use, so it runs once the listeners are up: the start does not wait
 * for it, and the warning comes after the "keygate is serving" line. It reads a slice of
 * keys at a time (rowids on SQLite, ids on PostgreSQL), and a stop ends it between two
 * slices, saying nothing: a stop right after start does not wait for every key.
 */
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../src/store/sqlite/sqlite-database.js';
import { openPostgresStore } from '../src/store/postgres/postgres-database.js';
import { KeyScanStoppedError } from '../src/store/sql-store.js';
import type { KeyRecord, Store } from '../src/store/store.js';
import { createTestDatabase, type TestDatabase } from './backends/isolation.js';
import { POSTGRES_URL, serviceAvailable } from './support/services.js';
import { startKeygate, type TestKeygate } from './support/keygate.js';
import { startTestUpstream, type TestUpstream } from './support/upstream.js';
import { tempDir } from './support/temp.js';
import { logLines } from './support/log-lines.js';
import { keyRecord, T0 } from './support/key-records.js';

const OLD = { live: 'kg_live_', test: 'kg_test_' };
const NEW = { live: 'sk_live_', test: 'sk_test_' };

describe('keys in use that the key format no longer takes', () => {
  const dirs = {
    late: tempDir('keys-outside-format-late'),
    slices: tempDir('keys-outside-format-slices'),
    stopping: tempDir('keys-outside-format-stopping'),
    failing: tempDir('keys-outside-format-failing'),
    changed: tempDir('keys-outside-format'),
    same: tempDir('keys-outside-format-same'),
    imported: tempDir('keys-outside-format-imported'),
  };
  let upstream: TestUpstream | undefined;
  let kg: TestKeygate | undefined;

  afterEach(async () => {
    await kg?.close();
    kg = undefined;
    await upstream?.close();
    upstream = undefined;
  });

  /** Starts on `dir`'s database with these keys.*, and answers its start's warnings about such keys (once it has looked). */
  const startWith = async (dir: string, keys: Record<string, unknown>) => {
    upstream ??= await startTestUpstream();
    kg = await startKeygate({ upstream: { url: upstream.url }, keys }, { dir });
    await kg.runtime.warnOfKeysOutsideFormat();
    return logLines(kg.logs.text).filter((line) => /another key format/.test(line.msg));
  };

  /** A database with two live keys and one revoked, all of the old prefix; answers the live keys' secrets. */
  const issueUnderOldPrefix = async (dir: string) => {
    await startWith(dir, { prefix: OLD });
    const running = kg!;
    const accountId = ((await (await running.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'Acme' }) })).json()) as { id: string }).id;
    const issue = async (name: string) => (await (await running.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId, name }) })).json()) as { id: string; secret: string };
    const first = await issue('first');
    const second = await issue('second');
    const revoked = await issue('revoked');
    expect((await running.admin(`/v1/keys/${revoked.id}/revoke`, { method: 'POST' })).status).toBeLessThan(300);
    await running.close();
    kg = undefined;
    return [first.secret, second.secret];
  };

  it('warns once at start, naming how many, their hints and keys.imported, when keys.prefix changed', async () => {
    const dir = dirs.changed;
    const [first, second] = await issueUnderOldPrefix(dir);
    const warnings = await startWith(dir, { prefix: NEW });
    expect(warnings).toHaveLength(1);
    const [warning] = warnings;
    expect(warning).toMatchObject({ level: 40, keys: 2, hints: [`kg_live_…${first!.slice(-4)}`, `kg_live_…${second!.slice(-4)}`] });
    expect(warning!.msg).toContain('2 keys in use were issued under another key format');
    expect(warning!.msg).toContain('keys.imported');
    expect(warning!.msg).toContain('docs/authentication.md#key-formats');
    // What the warning is about, and no secret in the log.
    const refused = await kg!.call('/v1/data', { headers: { authorization: `Bearer ${first}` } });
    expect(refused.status).toBe(401);
    expect(kg!.logs.text).not.toContain(first!.slice(8));
  });

  it('says nothing while keys.prefix is the same, and warns once it changed', async () => {
    const dir = dirs.same;
    await issueUnderOldPrefix(dir);
    expect(await startWith(dir, { prefix: OLD })).toEqual([]);
    await kg!.close();
    kg = undefined;
    expect(await startWith(dir, { prefix: NEW })).toMatchObject([{ keys: 2 }]);
  });

  it('stops warning once keys.imported takes the old prefix, and the old keys work again', async () => {
    const dir = dirs.imported;
    const [first] = await issueUnderOldPrefix(dir);
    expect(await startWith(dir, { prefix: NEW })).toMatchObject([{ keys: 2 }]);
    await kg!.close();
    kg = undefined;
    expect(await startWith(dir, { prefix: NEW, imported: { prefix: OLD, alphabet: 'base62', length: 30 } })).toEqual([]);
    expect((await kg!.call('/v1/data', { headers: { authorization: `Bearer ${first}` } })).status).toBe(200);
  });

  it('serves before the look has answered, and warns after the line that says it is serving', async () => {
    const dir = dirs.late;
    const [first] = await issueUnderOldPrefix(dir);
    const real = openSqliteStore(path.join(dir, 'keygate.db'));
    // The same database, but the look answers only when the test lets it: a store with a million keys, say.
    let letAnswer = () => {};
    const answered = new Promise<void>((resolve) => (letAnswer = resolve));
    const store = new Proxy(real, {
      get: (target, name: keyof Store) =>
        name === 'keysOfOtherHints'
          ? (...args: Parameters<Store['keysOfOtherHints']>) => answered.then(() => target.keysOfOtherHints(...args))
          : typeof target[name] === 'function'
            ? (target[name] as (...args: unknown[]) => unknown).bind(target)
            : target[name],
    });
    upstream ??= await startTestUpstream();
    kg = await startKeygate({ upstream: { url: upstream.url }, keys: { prefix: NEW } }, { dir, store });
    expect((await kg.call('/v1/data', { headers: { authorization: `Bearer ${first}` } })).status).toBe(401);
    expect(kg.logs.text).not.toContain('another key format');
    letAnswer();
    await kg.runtime.warnOfKeysOutsideFormat();
    const messages = logLines(kg.logs.text).map((line) => line.msg);
    const serving = messages.findIndex((msg) => msg.startsWith('keygate is serving'));
    const warned = messages.findIndex((msg) => msg.includes('2 keys in use were issued under another key format'));
    expect(serving).toBeGreaterThanOrEqual(0);
    expect(warned).toBeGreaterThan(serving);
    await kg.close();
    kg = undefined;
    await real.close().catch(() => undefined);
  });

  it('finds the same keys on SQLite whether it reads them all at once or a few at a time', async () => {
    const dir = dirs.slices;
    await issueUnderOldPrefix(dir);
    // Two more, issued under the new prefix: inside the format, between the old ones by rowid.
    await startWith(dir, { prefix: NEW });
    const accountId = ((await (await kg!.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'Beta' }) })).json()) as { id: string }).id;
    for (const name of ['third', 'fourth']) expect((await kg!.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId, name }) })).status).toBe(201);
    await kg!.close();
    kg = undefined;
    const file = path.join(dir, 'keygate.db');
    const at = Date.now();
    const answers = [];
    for (const keyScanRows of [1, 2, 3, 10_000]) {
      const store = openSqliteStore(file, { keyScanRows });
      answers.push(await store.keysOfOtherHints(['sk_live_…', 'sk_test_…'], at, 3));
      answers.push(await store.keysOfOtherHints(['kg_live_…', 'kg_test_…'], at, 1));
      await store.close();
    }
    expect(answers[0]).toMatchObject({ count: 2, hints: [expect.stringMatching(/^kg_live_…/), expect.stringMatching(/^kg_live_…/)] });
    expect(answers[1]).toMatchObject({ count: 2, hints: [expect.stringMatching(/^sk_live_…/)] });
    for (let i = 2; i < answers.length; i++) expect(answers[i]).toEqual(answers[i % 2]);
  });

  it('stops its look when keygate stops, between two slices, and says nothing of it', async () => {
    const dir = dirs.stopping;
    // Two keys in use and one revoked: three slices of one row.
    await issueUnderOldPrefix(dir);
    const file = path.join(dir, 'keygate.db');
    const real = openSqliteStore(file);
    const look = openSqliteStore(file, { keyScanRows: 1 });
    // The look starts only when the test lets it (a store with a million keys: still at it when the stop comes).
    let letLook = () => {};
    const held = new Promise<void>((resolve) => (letLook = resolve));
    let asked = 0;
    const store = new Proxy(real, {
      get: (target, name: keyof Store) =>
        name === 'keysOfOtherHints'
          ? (starts: readonly string[], at: number, sample: number, stopped?: () => boolean) =>
              held.then(() => look.keysOfOtherHints(starts, at, sample, stopped && (() => (asked++, stopped()))))
          : typeof target[name] === 'function'
            ? (target[name] as (...args: unknown[]) => unknown).bind(target)
            : target[name],
    });
    upstream ??= await startTestUpstream();
    const stopping = await startKeygate({ upstream: { url: upstream.url }, keys: { prefix: NEW } }, { dir, store });
    await stopping.close();
    letLook();
    await stopping.runtime.warnOfKeysOutsideFormat();
    // One slice read, then asked whether to go on: no.
    expect(asked).toBe(1);
    expect(logLines(stopping.logs.text).filter((line) => /another key format|could not look/.test(line.msg))).toEqual([]);
    // Not stopped, the same look reads every slice and finds both keys.
    expect(await look.keysOfOtherHints(['sk_live_…', 'sk_test_…'], Date.now(), 3, () => false)).toMatchObject({ count: 2 });
    await look.close();
    await real.close().catch(() => undefined);
  });

  it('starts and serves when the store cannot say, and says it could not look', async () => {
    const [first] = await issueUnderOldPrefix(dirs.failing);
    const real = openSqliteStore(path.join(dirs.failing, 'keygate.db'));
    // The same database, but the one question fails (a store that lacks a function, say).
    const store = new Proxy(real, {
      get: (target, name: keyof Store) =>
        name === 'keysOfOtherHints' ? () => Promise.reject(new Error('no such function: substr')) : typeof target[name] === 'function' ? (target[name] as (...args: unknown[]) => unknown).bind(target) : target[name],
    });
    upstream ??= await startTestUpstream();
    kg = await startKeygate({ upstream: { url: upstream.url }, keys: { prefix: OLD } }, { dir: dirs.failing, store });
    await kg.runtime.warnOfKeysOutsideFormat();
    const lines = logLines(kg.logs.text);
    expect(lines.filter((line) => /could not look for keys in use/.test(line.msg))).toMatchObject([{ level: 40, err: { message: 'no such function: substr' } }]);
    expect((await kg.call('/v1/data', { headers: { authorization: `Bearer ${first}` } })).status).toBe(200);
    await kg.close();
    kg = undefined;
    await real.close().catch(() => undefined);
  });
});

const postgres = await serviceAvailable('PostgreSQL', POSTGRES_URL);

describe.skipIf(!postgres)('keys in use that the key format no longer takes, on PostgreSQL', () => {
  const at = T0 + 1_000;
  const OTHER_FORMAT = ['sk_live_…', 'sk_test_…'];
  let database: TestDatabase;

  const key = (id: string, overrides: Partial<KeyRecord>): KeyRecord => keyRecord({ id, hint: `kg_live_…${id.slice(-4)}`, name: id, scopes: [], ...overrides });

  beforeAll(async () => {
    database = await createTestDatabase('keys_outside_format');
    const store = openPostgresStore(database.url);
    await store.migrate();
    // Outside the format: two made in the same millisecond (told apart by id, in byte order: `C` before `b`), three later, one revoked.
    for (const record of [
      key('key_b_0001', {}),
      key('key_C_0002', {}),
      key('key_a_0003', { createdAt: T0 + 1 }),
      key('key_d_0004', { createdAt: T0 + 2, mode: 'test', hint: 'kg_test_…0004' }),
      key('key_e_0005', { createdAt: T0 + 3 }),
      key('key_f_0006', { createdAt: T0 - 1, revokedAt: T0 }),
      // Inside it.
      key('key_g_0007', { createdAt: T0 - 2, hint: 'sk_live_…0007' }),
      key('key_h_0008', { createdAt: T0 - 3, hint: 'sk_test_…0008', mode: 'test' }),
    ])
      await store.insertKey(record);
    await store.close();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('finds the same keys whether it reads them all at once or a few at a time', async () => {
    const answers = [];
    for (const keyScanRows of [1, 2, 3, 10_000]) {
      const store = openPostgresStore(database.url, { keyScanRows });
      answers.push(await store.keysOfOtherHints(OTHER_FORMAT, at, 3));
      answers.push(await store.keysOfOtherHints(['kg_live_…', 'kg_test_…'], at, 1));
      await store.close();
    }
    expect(answers[0]).toEqual({ count: 5, hints: ['kg_live_…0002', 'kg_live_…0001', 'kg_live_…0003'] });
    expect(answers[1]).toEqual({ count: 2, hints: ['sk_test_…0008'] });
    for (let i = 2; i < answers.length; i++) expect(answers[i]).toEqual(answers[i % 2]);
  });

  it('a stop ends the look between two slices: the slices read so far, no answer', async () => {
    const store = openPostgresStore(database.url, { keyScanRows: 2 });
    try {
      let asked = 0;
      await expect(store.keysOfOtherHints(OTHER_FORMAT, at, 3, () => ++asked === 2)).rejects.toBeInstanceOf(KeyScanStoppedError);
      // Asked after the first slice (go on) and after the second (stop): two read, of the five that eight keys two at a time make (the last one empty).
      expect(asked).toBe(2);
      let slices = 1;
      expect(await store.keysOfOtherHints(OTHER_FORMAT, at, 3, () => (slices++, false))).toMatchObject({ count: 5 });
      expect(slices).toBe(5);
    } finally {
      await store.close();
    }
  });
});
