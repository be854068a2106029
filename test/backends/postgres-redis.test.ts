/**
 * The shared backend suites on the scale-out backends (a fresh PostgreSQL database and a
 * Redis key prefix of their own), then what only a shared backend can show: several
 * processes sharing limits and balances, broadcasts reaching another process, balances
 * rebuilt from PostgreSQL after Redis lost them, one Redis command per admission, and
 * what happens when Redis cannot be reached.
 */
import { randomBytes } from 'node:crypto';
import { connect as connectTcp, createServer, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { setImmediate } from 'node:timers/promises';
import { startRedisServer, startTcpProxy } from '../scale-out/cluster.js';
import { refusedUrl } from '../support/refused.js';
import { monitorRedis } from '../support/redis-monitor.js';
import { describeStore } from './store.suite.js';
import { describeCounters } from './counters.suite.js';
import { createTestDatabase, deleteRedisKeys, eventually, redisUrlWithPrefix, testRedisPrefix, type TestDatabase } from './isolation.js';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from '../support/services.js';
import { openPostgresStore } from '../../src/store/postgres/postgres-database.js';
import { openRedisCounters, type RedisCounters } from '../../src/counters/redis/redis-counters.js';
import { CountersUnavailableError, type AddressBlockEvent, type Admission, type CacheEvent, type ChargeSpec } from '../../src/counters/counters.js';
import type { Store } from '../../src/store/store.js';
import type { AdmitRequest } from '../../src/counters/counters.js';
import { createLog } from '../../src/log.js';
import { DeadlineError } from '../../src/deadline.js';

const enabled = (await serviceAvailable('PostgreSQL', POSTGRES_URL)) && (await serviceAvailable('Redis', REDIS_URL));
const quiet = createLog({ level: 'silent' });
const T0 = 1_767_225_600_000;
const PERIOD = '2026-01-01';
const unique = (prefix: string) => `${prefix}_${randomBytes(6).toString('hex')}`;

/** A migrated store on a database of its own (`isolation`: its transactions' default), dropped afterwards. */
async function postgresStore(label: string, isolation?: 'repeatable read') {
  const database = await createTestDatabase(label, isolation);
  const store = openPostgresStore(database.url);
  await store.migrate();
  return {
    store,
    teardown: async () => {
      await store.close();
      await database.drop();
    },
  };
}

describeStore('PostgreSQL', { open: () => postgresStore('store_suite') }, enabled);
// The same with every transaction repeatable read unless it says otherwise, as a
// database's owner may have set it: keygate's own transactions must not depend on the default.
describeStore('PostgreSQL, default_transaction_isolation repeatable read', { open: () => postgresStore('store_suite_rr', 'repeatable read') }, enabled);

describeCounters(
  'Redis',
  {
    async open() {
      const database = await createTestDatabase('counters_suite');
      const store = openPostgresStore(database.url);
      await store.migrate();
      const prefix = testRedisPrefix('counters-suite');
      const counters = await openRedisCounters({ url: redisUrlWithPrefix(prefix), failure: 'closed', store, log: quiet, clock: Date.now });
      return {
        counters,
        teardown: async () => {
          await counters.close();
          await store.close();
          await database.drop();
          await deleteRedisKeys(prefix);
        },
      };
    },
  },
  enabled,
);

describe.skipIf(!enabled)('Redis counters shared by several processes', () => {
  const prefix = testRedisPrefix('shared');
  let database: TestDatabase;
  let store: Store;
  let first: RedisCounters;
  let second: RedisCounters;

  const open = (failure: 'closed' | 'open' = 'closed', url = redisUrlWithPrefix(prefix)) => openRedisCounters({ url, failure, store, log: quiet, clock: Date.now });
  const credits = (accountId: string, amount: number, limit: number): ChargeSpec => ({ accountId, meter: 'credits', periodStart: PERIOD, amount, limit, overage: false });
  const spend = async (counters: RedisCounters, admission: Admission, units: number) => {
    if (!admission.ok || !admission.reservation) throw new Error('expected an admission with a reservation');
    await counters.settle(admission.reservation, units);
  };

  beforeAll(async () => {
    database = await createTestDatabase('shared');
    store = openPostgresStore(database.url);
    await store.migrate();
    first = await open();
    second = await open();
  });
  afterAll(async () => {
    await first?.close();
    await second?.close();
    await store?.close();
    await database?.drop();
    await deleteRedisKeys(prefix);
  });

  it('admits exactly the limit across two processes', async () => {
    const w = { id: `k:${unique('key')}:plan:60000:10`, name: '10-per-1m', limit: 10, windowMs: 60_000 };
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? first : second).admit({ now: T0, windows: [w] })),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(10);
  });

  it('never spends past a balance across two processes', async () => {
    const accountId = unique('acc');
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const process = i % 2 === 0 ? first : second;
        return { process, admission: await process.admit({ now: T0, windows: [], charge: credits(accountId, 100, 1000) }) };
      }),
    );
    const admitted = results.filter((r) => r.admission.ok);
    expect(admitted).toHaveLength(10);
    // Each process settles what it admitted, as a gateway does.
    await Promise.all(admitted.map((r) => spend(r.process, r.admission, 100)));
    expect(await first.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 1000, reserved: 0 });
    expect(await second.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 1000, reserved: 0 });
  });

  it('delivers a broadcast to every process', async () => {
    const heardBySecond: CacheEvent[] = [];
    second.onBroadcast((event) => heardBySecond.push(event));
    const hash = randomBytes(32).toString('hex');
    await first.broadcast({ type: 'key', hash });
    expect(await eventually(() => heardBySecond.some((e) => e.type === 'key' && e.hash === hash))).toBe(true);
  });

  it('takes address blocks a process began alone into Redis: the other process hears of them and lists them, a longer block Redis holds stays, an ended one is skipped, and each key expires', async () => {
    const now = Date.now();
    const heard: AddressBlockEvent[] = [];
    second.addressBlocks.onChange((event) => heard.push(event));
    const policy = { limit: 2, window: 60_000, block: 900_000 };
    // A longer block Redis holds already (begun through the other process).
    await second.addressBlocks.unknownKey('192.0.2.71', now, policy);
    expect(await second.addressBlocks.unknownKey('192.0.2.71', now, policy)).toMatchObject({ kind: 'started' });
    const longer = { address: '192.0.2.71', unknownKeys: 2, startedAt: now, endsAt: now + 900_000 };
    const handed = [
      { address: '192.0.2.70', unknownKeys: 4, startedAt: now - 1_000, endsAt: now + 600_000 },
      { address: '192.0.2.71', unknownKeys: 4, startedAt: now - 1_000, endsAt: now + 600_000 },
      { address: '192.0.2.72', unknownKeys: 4, startedAt: now - 700_000, endsAt: now - 1 },
    ];
    expect(await first.addressBlocks.share(handed, now)).toEqual([handed[0], longer]);
    const blocksHeard = () => heard.flatMap((event) => (event.type === 'blocked' ? [event.block] : []));
    expect(await eventually(() => blocksHeard().some((block) => block.address === '192.0.2.70'))).toBe(true);
    // Announced as a block begun in Redis; the longer one kept and the ended one are not announced.
    expect(blocksHeard()).toEqual([longer, handed[0]]);
    const listed = (await second.addressBlocks.inForce(now)).filter((block) => block.address.startsWith('192.0.2.7'));
    expect(listed.sort((a, b) => a.address.localeCompare(b.address))).toEqual([handed[0], longer]);
    // Refused by Redis from then on, not counted.
    expect(await second.addressBlocks.unknownKey('192.0.2.70', now + 1, policy)).toEqual({ kind: 'blocked', block: handed[0] });
    const raw = new Redis(REDIS_URL);
    try {
      const ttl = await raw.pttl(`${prefix}ukb:192.0.2.70`);
      expect(ttl).toBeGreaterThan(600_000 - 60_000);
      expect(ttl).toBeLessThanOrEqual(600_000 + 60_000);
      expect(await raw.pttl(`${prefix}ukblocks:all`)).toBeGreaterThan(0);
      expect(await raw.exists(`${prefix}ukb:192.0.2.72`)).toBe(0);
    } finally {
      raw.disconnect();
    }
  });

  it('carries out a lift asked for after a hand-over of address blocks after it, also where Redis has never run the hand-over (as after a restart): the block stays lifted', async () => {
    // A Redis of its own, fresh: it holds no script until one is sent.
    const server = await startRedisServer();
    const counters = await open('closed', redisUrlWithPrefix(prefix, server.url));
    try {
      const now = Date.now();
      // An operator lifted a block here before (Redis holds the lift's script), none the hand-over's.
      expect(await counters.addressBlocks.lift('192.0.2.80', now)).toBeUndefined();
      const block = { address: '192.0.2.81', unknownKeys: 4, startedAt: now - 1_000, endsAt: now + 600_000 };
      // The hand-over is sent, then the operator lifts the block (SharedUnknownKeyLimit.lift, while it is on its way).
      const handed = counters.addressBlocks.share([block], now);
      const lifted = counters.addressBlocks.lift(block.address, now);
      expect(await handed).toEqual([block]);
      expect(await lifted).toEqual(block);
      expect(await counters.addressBlocks.inForce(now)).toEqual([]);
    } finally {
      await counters.close();
      await server.kill();
    }
  });

  it('rebuilds a balance Redis lost from the store; only units not yet flushed are gone', async () => {
    const accountId = unique('acc');
    for (let i = 0; i < 3; i += 1) await spend(first, await first.admit({ now: T0, windows: [], charge: credits(accountId, 100, 1000) }), 100);
    // The runtime's flusher: absolute balances into the store.
    await store.saveMeterUsage((await first.drainMeterChanges()).filter((r) => r.accountId === accountId));
    // 100 more, committed after the last flush.
    await spend(first, await first.admit({ now: T0, windows: [], charge: credits(accountId, 100, 1000) }), 100);
    expect((await first.meterBalance(accountId, 'credits', PERIOD)).used).toBe(400);

    // Redis loses everything under this prefix (a restart without persistence).
    expect(await deleteRedisKeys(prefix)).toBeGreaterThan(0);

    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? first : second).admit({ now: T0 + 1, windows: [], charge: credits(accountId, 100, 1000) })),
    );
    // Rebuilt from the stored 300: room for 7 more. The unflushed 100 is the loss bound at work.
    expect(results.filter((r) => r.ok)).toHaveLength(7);
    expect(await second.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 300, reserved: 700 });
  });

  it('settles a reservation made before Redis lost its data onto the rebuilt balance', async () => {
    const accountId = unique('acc');
    await store.saveMeterUsage([{ accountId, meter: 'credits', periodStart: PERIOD, used: 250 }]);
    const admission = await first.admit({ now: T0, windows: [], charge: credits(accountId, 100, 1000) });
    await deleteRedisKeys(prefix);
    await spend(first, admission, 100);
    expect(await first.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 350, reserved: 0 });
    expect(await first.drainMeterChanges()).toContainEqual({ accountId, meter: 'credits', periodStart: PERIOD, used: 350, returned: 0 });
  });

  it('judges the admissions of concurrent requests together, at the latest of their times', async () => {
    const w = { id: `k:${unique('key')}:plan:1000:2`, name: '2-per-1s', limit: 2, windowMs: 1_000 };
    expect(await first.admit({ now: T0, windows: [w] })).toMatchObject({ ok: true });
    expect(await first.admit({ now: T0 + 1, windows: [w] })).toMatchObject({ ok: true });
    // Sent in the same turn, these leave for Redis together at T0 + 1001, when both earlier
    // admissions have left the window: both fit (one by one, the first would not have).
    const together = await Promise.all([first.admit({ now: T0 + 999, windows: [w] }), first.admit({ now: T0 + 1_001, windows: [w] })]);
    expect(together).toMatchObject([
      { ok: true, windows: [{ remaining: 1, resetMs: 1_000 }] },
      { ok: true, windows: [{ remaining: 0, resetMs: 1_000 }] },
    ]);
    // ...and they are recorded at that time: the window is full until T0 + 2001.
    expect(await first.admit({ now: T0 + 2_000, windows: [w] })).toMatchObject({ ok: false, reason: 'rate_limited', retryAfterMs: 1 });
    expect(await first.admit({ now: T0 + 2_001, windows: [w] })).toMatchObject({ ok: true });
  });

  it('carries out an admission and a settle asked for in the same turn, which leave together (one EVALSHA each, in one pipeline)', async () => {
    const accountId = unique('acc');
    const w = { id: `k:${unique('key')}:plan:60000:5`, name: '5-per-1m', limit: 5, windowMs: 60_000 };
    const earlier = await first.admit({ now: T0, windows: [w], charge: credits(accountId, 10, 1000) });
    if (!earlier.ok || !earlier.reservation) throw new Error('expected an admission with a reservation');
    const [second, settled] = await Promise.all([first.admit({ now: T0 + 1, windows: [w], charge: credits(accountId, 10, 1000) }), first.settle(earlier.reservation, 7)]);
    expect(second).toMatchObject({ ok: true, windows: [{ name: '5-per-1m', remaining: 3 }] });
    expect(settled).toBe(7);
    expect(await first.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 7, reserved: 10 });
  });

  it("keeps every key under ioredis's keyPrefix when the Redis URL names one, the scripts' keys too: windows count and balances are seeded and charged as without it", async () => {
    const ioredisPrefix = testRedisPrefix('ioredis-key-prefix');
    const url = new URL(redisUrlWithPrefix(prefix));
    url.searchParams.set('keyPrefix', ioredisPrefix);
    const counters = await open('closed', url.toString());
    try {
      const accountId = unique('acc');
      const w = { id: `k:${unique('key')}:plan:60000:2`, name: '2-per-1m', limit: 2, windowMs: 60_000 };
      const admissions = [];
      for (let i = 0; i < 3; i += 1) admissions.push(await counters.admit({ now: T0 + i, windows: [w], charge: credits(accountId, 10, 1000) }));
      expect(admissions.map((a) => a.ok)).toEqual([true, true, false]);
      expect(admissions[2]).toMatchObject({ ok: false, reason: 'rate_limited' });
      await spend(counters, admissions[0] as Admission, 7);
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 7, reserved: 10 });
      const redis = new Redis(REDIS_URL);
      try {
        const under = await redis.keys(`${ioredisPrefix}${prefix}*${accountId}*`);
        expect(under.length).toBeGreaterThan(0);
        expect(await redis.keys(`${prefix}*${accountId}*`)).toEqual([]);
      } finally {
        redis.disconnect();
      }
    } finally {
      await counters.close();
      await deleteRedisKeys(ioredisPrefix);
    }
  });

  it("lists and hands over address blocks under ioredis's keyPrefix when the Redis URL names one: the scripts read the block hashes they wrote (the trim: the test after)", async () => {
    const ioredisPrefix = testRedisPrefix('ioredis-key-prefix-blocks');
    const url = new URL(redisUrlWithPrefix(prefix));
    url.searchParams.set('keyPrefix', ioredisPrefix);
    const counters = await open('closed', url.toString());
    try {
      const now = Date.now();
      const policy = { limit: 1, window: 60_000, block: 600_000 };
      const begun = { address: '192.0.2.90', unknownKeys: 1, startedAt: now, endsAt: now + 600_000 };
      expect(await counters.addressBlocks.unknownKey(begun.address, now, policy)).toEqual({ kind: 'started', block: begun });
      const handed = { address: '192.0.2.91', unknownKeys: 4, startedAt: now - 1_000, endsAt: now + 300_000 };
      expect(await counters.addressBlocks.share([handed], now)).toEqual([handed]);
      const listed = await counters.addressBlocks.inForce(now);
      expect(listed.sort((a, b) => a.address.localeCompare(b.address))).toEqual([begun, handed]);
      const raw = new Redis(REDIS_URL);
      try {
        expect(await raw.keys(`${prefix}ukb:*`)).toEqual([]);
        expect((await raw.keys(`${ioredisPrefix}${prefix}ukb:*`)).sort()).toEqual([`${ioredisPrefix}${prefix}ukb:192.0.2.90`, `${ioredisPrefix}${prefix}ukb:192.0.2.91`]);
      } finally {
        raw.disconnect();
      }
    } finally {
      await counters.close();
      await deleteRedisKeys(ioredisPrefix);
    }
  });

  it("drops a block trimmed past the most Redis holds under ioredis's keyPrefix: the address it named is counted afresh, not still refused", async () => {
    const ioredisPrefix = testRedisPrefix('ioredis-key-prefix-trim');
    const url = new URL(redisUrlWithPrefix(prefix));
    url.searchParams.set('keyPrefix', ioredisPrefix);
    const counters = await openRedisCounters({ url: url.toString(), failure: 'closed', store, log: quiet, clock: Date.now, maxAddressesBlocked: 1 });
    try {
      const now = Date.now();
      const policy = { limit: 1, window: 60_000, block: 600_000 };
      expect((await counters.addressBlocks.unknownKey('192.0.2.92', now, policy)).kind).toBe('started');
      // A second block, ending later: past the one block Redis holds, the first goes.
      expect((await counters.addressBlocks.unknownKey('192.0.2.93', now + 1, policy)).kind).toBe('started');
      expect((await counters.addressBlocks.inForce(now + 2)).map((block) => block.address)).toEqual(['192.0.2.93']);
      expect(await counters.addressBlocks.unknownKey('192.0.2.92', now + 2, { ...policy, limit: 2 })).toEqual({ kind: 'counted', count: 1 });
      const raw = new Redis(REDIS_URL);
      try {
        expect(await raw.keys(`${ioredisPrefix}${prefix}ukb:*`)).toEqual([`${ioredisPrefix}${prefix}ukb:192.0.2.93`]);
      } finally {
        raw.disconnect();
      }
    } finally {
      await counters.close();
      await deleteRedisKeys(ioredisPrefix);
    }
  });

  it("does not count a settle twice whose answer was lost when the Redis URL names ioredis's keyPrefix: the journal it reads is the one the script wrote", async () => {
    const ioredisPrefix = testRedisPrefix('ioredis-key-prefix-journal');
    const proxy = await startTcpProxy(Number(new URL(REDIS_URL).port || 6379));
    const url = new URL(redisUrlWithPrefix(prefix, `redis://127.0.0.1:${proxy.port}`));
    url.searchParams.set('keyPrefix', ioredisPrefix);
    const lines: string[] = [];
    const log = createLog({ level: 'info', destination: { write: (line: string) => void lines.push(line) } });
    const counters = await openRedisCounters({ url: url.toString(), failure: 'closed', store, log, clock: Date.now });
    const redis = new Redis(REDIS_URL);
    try {
      const accountId = unique('acc');
      const admission = await counters.admit({ now: T0, windows: [], charge: credits(accountId, 10, 1000) });
      if (!admission.ok || !admission.reservation) throw new Error('expected an admission with a reservation');
      const meterKeys = await redis.keys(`${ioredisPrefix}${prefix}m:*${accountId}*`);
      expect(meterKeys).toHaveLength(1);
      // Redis carries the settle out (7 used), and its answer never comes back.
      proxy.muteAnswers();
      const settled = counters.settle(admission.reservation, 7);
      expect(await eventually(async () => (await redis.hget(meterKeys[0] as string, 'used')) === '7')).toBe(true);
      await proxy.cut();
      expect(await eventually(() => !counters.isReachable())).toBe(true);
      await settled;
      await proxy.restore();
      expect(await eventually(() => counters.isReachable())).toBe(true);
      // The next write-back reads the journal: Redis carried the settle out, so it is not sent again.
      await counters.drainMeterChanges();
      expect(lines.filter((line) => line.includes('settles whose answer Redis did not send'))).toEqual([expect.stringContaining('"carriedOut":1,"sentAgain":0')]);
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 7, reserved: 0 });
    } finally {
      redis.disconnect();
      await counters.close();
      await proxy.cut();
      await deleteRedisKeys(ioredisPrefix);
    }
  });

  it('asks Redis once per admission: one EVALSHA for the block, every window and the reservation', async () => {
    const accountId = unique('acc');
    const keyId = unique('key');
    const request = (now: number): AdmitRequest => ({
      now,
      windows: [
        { id: `k:${keyId}:plan:1000:100`, name: '100-per-1s', limit: 100, windowMs: 1_000 },
        { id: `a:${accountId}:plan:3600000:1000`, name: '1000-per-1h', limit: 1_000, windowMs: 3_600_000 },
      ],
      block: { id: `k:${keyId}`, policy: { after: 3, within: 60_000, duration: 60_000, factor: 2, max: 3_600_000, forgetAfter: 86_400_000, scope: 'key' } },
      charge: credits(accountId, 1, 1_000_000),
    });
    // Warm: the script is loaded and the meter seeded.
    expect(await first.admit(request(T0))).toMatchObject({ ok: true });

    const monitor = await monitorRedis(REDIS_URL);
    const admissions = 20;
    for (let i = 1; i <= admissions; i += 1) expect(await first.admit(request(T0 + i))).toMatchObject({ ok: true });
    // MONITOR's lines come after the answers: wait for them (then a little, for any extra).
    await eventually(() => monitor.seen.filter((c) => c.source !== 'lua' && c.args.some((a) => a.includes(accountId))).length >= admissions);
    await new Promise((resolve) => setTimeout(resolve, 100));
    monitor.close();
    const seen = monitor.seen.map(({ source, args }) => ({ source, command: String(args[0]).toLowerCase(), args }));

    const ours = seen.find((c) => c.source !== 'lua' && c.args.some((a) => a.includes(accountId)))?.source;
    expect(ours).toBeDefined();
    const fromUs = seen.filter((c) => c.source === ours);
    expect(fromUs).toHaveLength(admissions);
    expect(new Set(fromUs.map((c) => c.command))).toEqual(new Set(['evalsha']));
    console.info(`[figure] Redis commands (round trips) per admission with 2 windows, a block and a reservation: ${fromUs.length / admissions}`);
  });

  it('sends the admissions asked for while a batch is on its way as one next batch', async () => {
    // A Redis of its own, so that holding its writes and counting its commands touches no other test.
    const server = await startRedisServer();
    const counters = await open('closed', redisUrlWithPrefix(prefix, server.url));
    const admin = new Redis(server.url);
    try {
      const w = { id: `k:${unique('key')}:plan:60000:100`, name: '100-per-1m', limit: 100, windowMs: 60_000 };
      expect(await counters.admit({ now: T0, windows: [w] })).toMatchObject({ ok: true }); // the script is loaded
      await admin.config('RESETSTAT');
      // Redis holds writes for 0.3 s: the first admission's batch is on its way all that time.
      await admin.call('CLIENT', 'PAUSE', '300', 'WRITE');
      const answers = [counters.admit({ now: T0, windows: [w] })];
      for (let i = 0; i < 19; i += 1) {
        await setImmediate(); // each in a turn of the event loop of its own
        answers.push(counters.admit({ now: T0, windows: [w] }));
      }
      const admitted = await Promise.all(answers);
      expect(admitted.map((a) => a.ok && a.windows[0]?.remaining)).toEqual(Array.from({ length: 20 }, (_, i) => 98 - i));
      expect(/cmdstat_evalsha:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1]).toBe('2');
    } finally {
      admin.disconnect();
      await counters.close();
      await server.kill();
    }
  });

  it('gives up reading blocks for an operator after the admission deadline, not the command timeout, while Redis stalls', async () => {
    const proxy = await startTcpProxy(Number(new URL(REDIS_URL).port || 6379));
    const counters = await open('closed', redisUrlWithPrefix(prefix, `redis://127.0.0.1:${proxy.port}`));
    try {
      expect(await counters.blocksInForce([`k:${unique('key')}`], T0)).toEqual(new Map());
      proxy.stall();
      const refused = await counters.blocksInForce([`k:${unique('key')}`], T0).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(CountersUnavailableError);
      expect((refused as Error).cause).toBeInstanceOf(DeadlineError);
    } finally {
      proxy.resume();
      await counters.close();
      await proxy.cut();
    }
  });

  it('caps a settle Redis could not take at once when it is delivered: a plan without overage stays at its limit', async () => {
    const proxy = await startTcpProxy(Number(new URL(REDIS_URL).port || 6379));
    const counters = await open('closed', redisUrlWithPrefix(prefix, `redis://127.0.0.1:${proxy.port}`));
    try {
      const accountId = unique('acc');
      // admit: untilZero, a flat cost of 100 against 250: the third request is the one that reaches zero.
      const flat: ChargeSpec = { ...credits(accountId, 100, 250), untilZero: true, final: true };
      for (let i = 0; i < 2; i += 1) expect(await counters.admit({ now: T0 + i, windows: [], charge: flat })).toMatchObject({ ok: true });
      const last = await counters.admit({ now: T0 + 2, windows: [], charge: flat });
      if (!last.ok || !last.reservation) throw new Error('expected a reservation');
      expect(last.reservation).toMatchObject({ final: false, cap: 250 });
      // Redis goes away while that request is answered; its 2xx settles for 100.
      await proxy.cut();
      expect(await eventually(() => !counters.isReachable())).toBe(true);
      await counters.settle(last.reservation, 100);
      await proxy.restore();
      expect(await eventually(() => counters.isReachable())).toBe(true);
      // The next write-back delivers the held units: 50 of them fit.
      await counters.drainMeterChanges();
      expect((await counters.meterBalance(accountId, 'credits', PERIOD)).used).toBe(250);
    } finally {
      await counters.close();
      await proxy.cut();
    }
  });

  it('leaves the balances it changed and could not write to the store, when it stops cut off from Redis, for the next process that reaches Redis to write', async () => {
    const proxy = await startTcpProxy(Number(new URL(REDIS_URL).port || 6379));
    const cut = await open('closed', redisUrlWithPrefix(prefix, `redis://127.0.0.1:${proxy.port}`));
    const accountId = unique('acc');
    try {
      // Charged in Redis; Redis goes away before the next write-back reads the balance.
      for (let i = 0; i < 3; i += 1) await spend(cut, await cut.admit({ now: T0 + i, windows: [], charge: credits(accountId, 100, 1000) }), 100);
      await proxy.cut();
      expect(await eventually(() => !cut.isReachable())).toBe(true);
      // The runtime's last write-back as it stops, then the stop.
      expect(await cut.drainMeterChanges()).toEqual([]);
    } finally {
      await cut.close();
      await proxy.cut();
    }
    expect(await store.loadMeterUsage({ accountId })).toEqual([]);

    // Redis holds the 300; a process that reaches it writes them to the store, though it charged nothing.
    const next = await open();
    try {
      const rows = (await next.drainMeterChanges()).filter((row) => row.accountId === accountId);
      expect(rows).toEqual([{ accountId, meter: 'credits', periodStart: PERIOD, used: 300, returned: 0 }]);
      expect((await next.meterBalance(accountId, 'credits', PERIOD)).used).toBe(300);
    } finally {
      await next.close();
    }
  });

  describe('when Redis cannot be reached', () => {
    let closed: string;
    beforeAll(async () => {
      closed = await refusedUrl('redis');
    });
    const unreachable = () => redisUrlWithPrefix(prefix, closed);

    it("says why when Redis refuses the connection (a wrong password), not only that it closed", async () => {
      const lines: string[] = [];
      const log = createLog({ level: 'warn', destination: { write: (line: string) => void lines.push(line) } });
      const wrong = new URL(redisUrlWithPrefix(prefix));
      wrong.username = 'nobody';
      wrong.password = 'not-the-password';
      const counters = await openRedisCounters({ url: wrong.toString(), failure: 'closed', store, log, clock: Date.now });
      try {
        await expect.poll(() => lines.length).toBeGreaterThan(0);
        const warning = JSON.parse(lines[0] as string) as { msg: string; err: string };
        // In words, with what to fix: not "unreachable".
        expect(warning.msg).toMatch(/^Redis refuses the connection \(WRONGPASS .*\): requests with a rate limit, block policy or cost are refused .*; check the user and password in the profile's counters, and that Redis's ACL lets that user in: docs\/scale-out.md#a-redis-user-for-keygate$/);
        expect(warning.err).toMatch(/^Redis refused the connection: WRONGPASS/);
        expect(lines.join('\n')).not.toContain('not-the-password');
      } finally {
        await counters.close();
      }
    });

    it('fails closed: admissions are refused as unavailable, at once', async () => {
      const counters = await open('closed', unreachable());
      try {
        const w = { id: `k:${unique('key')}:plan:60000:3`, name: '3-per-1m', limit: 3, windowMs: 60_000 };
        await expect(counters.admit({ now: T0, windows: [w] })).rejects.toBeInstanceOf(CountersUnavailableError);
        // Balances still answer, from the store.
        const accountId = unique('acc');
        await store.saveMeterUsage([{ accountId, meter: 'credits', periodStart: PERIOD, used: 42 }]);
        expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 42, reserved: 0 });
        // The sender still hears its own invalidation; the failure is reported.
        const heard: CacheEvent[] = [];
        counters.onBroadcast((event) => heard.push(event));
        await expect(counters.broadcast({ type: 'all' })).rejects.toBeInstanceOf(CountersUnavailableError);
        expect(heard).toEqual([{ type: 'all' }]);
      } finally {
        await counters.close();
      }
    });

    it('fails open: admissions are limited by this process alone', async () => {
      const counters = await open('open', unreachable());
      try {
        const w = { id: `k:${unique('key')}:plan:60000:3`, name: '3-per-1m', limit: 3, windowMs: 60_000 };
        const results = [];
        for (let i = 0; i < 10; i += 1) results.push(await counters.admit({ now: T0 + i, windows: [w] }));
        expect(results.map((r) => (r.ok ? 'ok' : r.reason))).toEqual(['ok', 'ok', 'ok', ...Array(7).fill('rate_limited')]);

        const accountId = unique('acc');
        const spent = await counters.admit({ now: T0, windows: [], charge: credits(accountId, 600, 1000) });
        expect(spent).toMatchObject({ ok: true });
        await spend(counters, spent, 600);
        expect(await counters.admit({ now: T0, windows: [], charge: credits(accountId, 600, 1000) })).toMatchObject({ ok: false, reason: 'insufficient_funds', used: 600 });
      } finally {
        await counters.close();
      }
    });

    it('keeps the units of a process that stops during the outage in the store; the next process that reaches Redis adds them, once', async () => {
      const accountId = unique('acc');
      const cut = await open('open', unreachable());
      const spent = await cut.admit({ now: T0, windows: [], charge: credits(accountId, 600, 1000) });
      await spend(cut, spent, 250);
      await cut.close();

      const connected = await open('open');
      const another = await open('open');
      try {
        // Both reach Redis and look: the units are added by one of them only, and come back
        // as that process's usage to write to the store, like any other.
        const drain = async () => (await Promise.all([connected.drainMeterChanges(), another.drainMeterChanges()])).flat().filter((row) => row.accountId === accountId);
        expect(await drain()).toEqual([{ accountId, meter: 'credits', periodStart: PERIOD, used: 250, returned: 0 }]);
        expect(await connected.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 250, reserved: 0 });
        expect(await drain()).toEqual([]);
        expect(await another.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 250, reserved: 0 });
      } finally {
        await connected.close();
        await another.close();
      }
    });
  });
});

describe.skipIf(!enabled)('Redis counters: blocks written back to PostgreSQL and put back', () => {
  it('writes the blocks its admissions changed or it lifted; puts back those Redis lost, and raises, never lowers, one Redis holds', async () => {
    const { store, teardown } = await postgresStore('blocks_back');
    const prefix = testRedisPrefix('blocks-back');
    let now = T0;
    const counters = await openRedisCounters({ url: redisUrlWithPrefix(prefix), failure: 'closed', store, log: quiet, clock: () => now });
    const raw = new Redis(REDIS_URL);
    const held = (id: string) => raw.hgetall(`${prefix}b:${id}`);
    try {
      expect(await counters.restoreLimits([])).toBe(0);
      const policy = { after: 1, within: 60_000, duration: 600_000, factor: 2, max: 3_600_000, forgetAfter: 86_400_000, scope: 'key' as const };
      // A window shorter than the block: the block alone decides Retry-After.
      const admit = (id: string) => counters.admit({ now, windows: [{ id: `${id}:1s`, name: '1-per-1s', limit: 1, windowMs: 1_000 }], block: { id, policy } });
      for (const id of ['k:a', 'k:b', 'k:c']) {
        expect((await admit(id)).ok).toBe(true);
        expect(await admit(id)).toMatchObject({ ok: false, reason: 'blocked', retryAfterMs: 600_000 });
      }
      const rows = await counters.drainLimitChanges();
      expect(rows.map((row) => [row.kind, row.id, JSON.parse(row.state)])).toEqual(
        ['k:a', 'k:b', 'k:c'].map((id) => ['block', id, { violations: [], blockedUntil: T0 + 600_000, level: 1, lastBlockEnd: T0 + 600_000 }]),
      );
      // Kept as long as its escalation matters (forgetAfter after it ends), read from its key's time to live.
      for (const row of rows) expect(T0 + 600_000 + 86_400_000 - row.expiresAt).toSatisfy((ms: number) => ms >= 0 && ms < 5_000);
      // Nothing changed since: nothing to write.
      expect(await counters.drainLimitChanges()).toEqual([]);
      // c's block, as the store has it, is the second in a row (20 minutes).
      const cStored = { violations: [], blockedUntil: T0 + 1_200_000, level: 2, lastBlockEnd: T0 + 1_200_000 };
      await store.saveLimitState([...rows.filter((row) => row.id !== 'k:c'), { kind: 'block', id: 'k:c', state: JSON.stringify(cStored), expiresAt: T0 + 1_200_000 + 86_400_000 }], now);

      // Redis loses its data. Then, before the blocks are put back, b gets a later block
      // of its own, and c a first one again (its escalation was lost).
      const aWas = await held('k:a');
      await deleteRedisKeys(prefix);
      now += 60_000;
      await raw.hset(`${prefix}b:k:b`, { violations: '', level: '3', until: String(now + 2_400_000), lastEnd: String(now + 2_400_000) });
      await raw.hset(`${prefix}b:k:c`, { violations: '', level: '1', until: String(now + 600_000), lastEnd: String(now + 600_000) });
      expect(await counters.drainLimitChanges()).toEqual([]);
      expect(await held('k:a')).toEqual(aWas);
      expect(await held('k:b')).toEqual({ violations: '', level: '3', until: String(now + 2_400_000), lastEnd: String(now + 2_400_000) });
      expect(await held('k:c')).toEqual({ violations: '', level: '2', until: String(T0 + 1_200_000), lastEnd: String(T0 + 1_200_000) });
      expect(await raw.pttl(`${prefix}b:k:a`)).toBeGreaterThan(86_400_000);
      expect(await admit('k:a')).toMatchObject({ ok: false, reason: 'blocked', retryAfterMs: 540_000 });
      // Redis has them now: a start-up does not put them back again.
      expect(await counters.restoreLimits(await store.loadLimitState(now, 'block'))).toBe(0);

      // A lift is written as a row already expired.
      expect(await counters.liftBlocks(['k:a'], now)).toBe(1);
      expect(await counters.drainLimitChanges()).toEqual([{ kind: 'block', id: 'k:a', state: '{}', expiresAt: 0 }]);
    } finally {
      raw.disconnect();
      await counters.close();
      await teardown();
      await deleteRedisKeys(prefix);
    }
  });
});

describe.skipIf(!enabled)('PostgreSQL store when its connection breaks', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase('broken');
    const store = openPostgresStore(database.url);
    await store.migrate();
    await store.close();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('fails the query in flight and does not crash the process', async () => {
    // A proxy that can hold PostgreSQL's answers back, then cut every connection.
    const sockets = new Set<Socket>();
    let holding = false;
    const proxy = createServer((client) => {
      const server = connectTcp({ host: '127.0.0.1', port: Number(new URL(database.url).port || 5432) });
      for (const socket of [client, server]) {
        sockets.add(socket);
        socket.on('error', () => undefined);
      }
      client.pipe(server);
      server.on('data', (chunk: Buffer) => {
        if (!holding) client.write(chunk);
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const viaProxy = new URL(database.url);
    viaProxy.port = String((proxy.address() as AddressInfo).port);
    const store = openPostgresStore(viaProxy.toString());
    const crashes: unknown[] = [];
    const onCrash = (error: unknown) => crashes.push(error);
    process.on('uncaughtException', onCrash);
    try {
      expect(await store.findKeyByHash('0'.repeat(64))).toBeUndefined();
      holding = true;
      const inFlight = store.findKeyByHash('1'.repeat(64));
      await new Promise((resolve) => setTimeout(resolve, 100));
      for (const socket of sockets) socket.destroy();
      await expect(inFlight).rejects.toThrow();
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(crashes).toEqual([]);
    } finally {
      process.off('uncaughtException', onCrash);
      await store.close().catch(() => undefined);
      await new Promise((resolve) => proxy.close(resolve));
    }
  });
});
