/**
 * A block one process began alone (auth.unknownKeys) while Redis refused its counts (OOM
 * past maxmemory: Redis still answers, and its messages still come) is not shortened in
 * that process by a shorter block of the same address another process hands to Redis
 * meanwhile, and is the one it hands over once Redis takes counts again: every process
 * then refuses the address until the later end. Two counters on one key prefix of a
 * private redis-server (its maxmemory is set here) stand for two processes.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { openRedisCounters, type RedisCounters } from '../../src/counters/redis/redis-counters.js';
import { SharedUnknownKeyLimit } from '../../src/auth/shared-unknown-key-limit.js';
import { UnknownKeyLimit } from '../../src/auth/unknown-key-limit.js';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-database.js';
import type { SqlStore } from '../../src/store/sql-store.js';
import { createLog } from '../../src/log.js';
import { eventually, redisUrlWithPrefix } from '../backends/isolation.js';
import { tempDir } from '../support/temp.js';
import { startRedisServer, type RedisServer } from './cluster.js';

const POLICY = { limit: 3, window: 60_000, block: 600_000 };
const ADDRESS = '203.0.113.60';
const PREFIX = 'later-end:';

describe('a block a process began alone keeps its later end against a shorter one heard meanwhile', () => {
  const dir = tempDir('address-block-later-end');
  let server: RedisServer;
  let raw: Redis;
  let store: SqlStore;
  let first: RedisCounters;
  let second: RedisCounters;
  const log = createLog({ level: 'silent' });

  beforeAll(async () => {
    server = await startRedisServer();
    raw = new Redis(server.url);
    store = openSqliteStore(path.join(dir, 'keygate.db'));
    await store.migrate();
    const open = () => openRedisCounters({ url: redisUrlWithPrefix(PREFIX, server.url), failure: 'open', store, log, clock: Date.now });
    first = await open();
    second = await open();
  });
  afterAll(async () => {
    await first?.close();
    await second?.close();
    await store?.close();
    raw?.disconnect();
    await server?.kill();
  });

  it('refused here until its own end, handed over as such, and then refused by the other process until that end too', async () => {
    const now = Date.now();
    const here = new SharedUnknownKeyLimit(new UnknownKeyLimit(), first.addressBlocks!, log, () => now);
    const other = new SharedUnknownKeyLimit(new UnknownKeyLimit(), second.addressBlocks!, log, () => now);
    const own = { address: ADDRESS, unknownKeys: POLICY.limit, startedAt: now, endsAt: now + POLICY.block };
    const shorter = { address: ADDRESS, unknownKeys: POLICY.limit, startedAt: now - 1_000, endsAt: now + 300_000 };
    await raw.config('SET', 'maxmemory', '1');
    try {
      for (let i = 0; i < POLICY.limit - 1; i++) expect(await here.fail(ADDRESS, now, POLICY)).toBeUndefined();
      expect(await here.fail(ADDRESS, now, POLICY)).toMatchObject({ address: ADDRESS, endsAt: own.endsAt });
      // The other process hands over a shorter block it began alone (the hand-over's script runs past maxmemory): announced to both.
      expect(await second.addressBlocks!.share([shorter], now)).toEqual([shorter]);
      // A message published after it, on the same channel: once this one is heard, the announcement was too.
      const marker = { address: '203.0.113.61', unknownKeys: 1, startedAt: now, endsAt: now + 1_000 };
      await raw.publish(`${PREFIX}cache`, JSON.stringify({ type: 'address_blocked', ...marker }));
      expect(await eventually(() => here.blockedFor(marker.address, now) > 0)).toBe(true);
      expect(here.blockedFor(ADDRESS, now)).toBe(POLICY.block);
    } finally {
      await raw.config('SET', 'maxmemory', '0');
    }
    // Redis takes counts again: this process's own block is handed over, and Redis keeps it (it ends later).
    expect(await here.fail('203.0.113.62', now, POLICY)).toBeUndefined();
    expect(await eventually(async () => (await first.addressBlocks!.inForce(now)).some((block) => block.address === ADDRESS && block.endsAt === own.endsAt))).toBe(true);
    expect((await first.addressBlocks!.inForce(now)).filter((block) => block.address === ADDRESS)).toEqual([own]);
    expect(here.blockedFor(ADDRESS, now)).toBe(POLICY.block);
    // The hand-over's announcement reaches the other process, which refuses the address as long.
    expect(await eventually(() => other.blockedFor(ADDRESS, now) === POLICY.block)).toBe(true);
  });
});
