/**
 * The hand-over of address blocks (auth.unknownKeys) a process began alone while Redis was
 * away, against a private redis-server reached through a TCP proxy the test cuts: when
 * Redis answers the hand-over with an error (here NOPERM, from an ACL that refuses EVAL,
 * the command the hand-over is sent as), Redis is reachable, so the log names that error
 * once, not "Redis is unreachable"; the blocks stay this process's own, and are handed
 * over at a later recheck once Redis takes them. Past the most blocks Redis holds, what
 * the hand-over answers and announces is what Redis holds (a cap of 150 here). A count
 * Redis answers with an error (OOM) is made by the process alone, and said as such: once,
 * though Redis still answers lists meanwhile, and once more when it takes counts again.
 *
 * Not OOM: past maxmemory Redis still runs the hand-over's script, whose first write (a
 * DEL) is never refused for memory, and a script that has written is let go on.
 */
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { openRedisCounters, type RedisCounters } from '../../src/counters/redis/redis-counters.js';
import * as scripts from '../../src/counters/redis/scripts.js';
import { RECHECK_MS, SharedUnknownKeyLimit } from '../../src/auth/shared-unknown-key-limit.js';
import { UnknownKeyLimit } from '../../src/auth/unknown-key-limit.js';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-database.js';
import type { SqlStore } from '../../src/store/sql-store.js';
import { createLog } from '../../src/log.js';
import { eventually, redisUrlWithPrefix } from '../backends/isolation.js';
import { tempDir } from '../support/temp.js';
import { logLines } from '../support/log-lines.js';
import { startRedisServer, startTcpProxy, type RedisServer, type TcpProxy } from './cluster.js';

const POLICY = { limit: 3, window: 60_000, block: 600_000 };
const ADDRESS = '203.0.113.70';

describe('address blocks handed to Redis once it answers again', () => {
  const dir = tempDir('address-block-hand-over');
  let server: RedisServer;
  let proxy: TcpProxy;
  let raw: Redis;
  let store: SqlStore;
  let counters: RedisCounters;
  let logged = '';
  const log = createLog({ level: 'info', destination: { write: (line: string) => void (logged += line) } });

  beforeAll(async () => {
    server = await startRedisServer();
    proxy = await startTcpProxy(server.port);
    raw = new Redis(server.url);
    // Every script keygate runs by its SHA is there already: only the hand-over's EVAL is refused below.
    for (const script of Object.values(scripts)) if (script instanceof scripts.Script) await raw.script('LOAD', script.source);
    store = openSqliteStore(path.join(dir, 'keygate.db'));
    await store.migrate();
    counters = await openRedisCounters({ url: `redis://127.0.0.1:${proxy.port}`, failure: 'open', store, log, clock: Date.now });
  });
  // Whatever a test left (one that fails half-way): the next gets a Redis that takes EVAL, without a memory cap.
  afterEach(async () => {
    await raw.acl('SETUSER', 'default', '+eval');
    await raw.config('SET', 'maxmemory', '0');
  });
  afterAll(async () => {
    await counters?.close();
    await store?.close();
    raw?.disconnect();
    await proxy?.cut();
    await server?.kill();
  });

  /** EVAL commands Redis refused (its ACL), from INFO commandstats. */
  const evalsRefused = async () => Number(/cmdstat_eval:.*rejected_calls=(\d+)/.exec(await raw.info('commandstats'))?.[1] ?? 0);
  /** This feature's warnings (the counters say their own outage apart). */
  const warnings = () => logLines(logged).filter((line) => line.level === 40 && line.msg.includes('auth.unknownKeys'));

  it('an error reply to the hand-over is said once as such (Redis is not away), the blocks stay this process\'s own, and a later recheck hands them over', async () => {
    let now = Date.now();
    const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), counters.addressBlocks!, log, () => now);
    await proxy.cut();
    expect(await eventually(() => !counters.isReachable())).toBe(true);
    for (let i = 0; i < POLICY.limit; i++) await limit.fail(ADDRESS, now, POLICY);
    expect(limit.blockedFor(ADDRESS, now)).toBe(POLICY.block);

    await raw.acl('SETUSER', 'default', '-eval');
    await proxy.restore();
    // Back: the recheck's read answers, and the hand-over that follows is refused.
    expect(await eventually(() => warnings().length >= 2)).toBe(true);
    expect(await evalsRefused()).toBeGreaterThan(0);
    const refusedLine = "Redis answered with an error the hand-over of the address blocks (auth.unknownKeys) this process began while it was away: they stay this process's own (refused here alone) and are handed over again at the next recheck";
    expect(warnings().map(({ msg, err, blocks }) => ({ msg, err, blocks }))).toEqual([
      { msg: 'Redis is unreachable: unknown keys (auth.unknownKeys) are counted by each process on its own until it answers', err: expect.any(String), blocks: undefined },
      { msg: refusedLine, err: expect.stringMatching(/^NOPERM /), blocks: 1 },
    ]);
    // Still this process's own: refused here, listed with what Redis holds (nothing).
    expect(limit.blockedFor(ADDRESS, now)).toBe(POLICY.block);
    expect(await limit.blocksInForce(now)).toEqual({ from: 'shared', blocks: [{ address: ADDRESS, unknownKeys: POLICY.limit, startedAt: now, endsAt: now + POLICY.block }] });
    expect(await counters.addressBlocks!.inForce(now)).toEqual([]);

    // The next recheck (a refusal once RECHECK_MS passed) tries again: refused again, not said again.
    const refused = await evalsRefused();
    now += RECHECK_MS;
    expect(limit.blockedFor(ADDRESS, now)).toBeGreaterThan(0);
    expect(await eventually(async () => (await evalsRefused()) > refused)).toBe(true);
    await limit.blocksInForce(now);
    expect(warnings()).toHaveLength(2);

    // Taken at the recheck after the ACL lets EVAL through: Redis holds it, said once.
    await raw.acl('SETUSER', 'default', '+eval');
    now += RECHECK_MS;
    expect(limit.blockedFor(ADDRESS, now)).toBeGreaterThan(0);
    const held = { address: ADDRESS, unknownKeys: POLICY.limit, startedAt: now - 2 * RECHECK_MS, endsAt: now - 2 * RECHECK_MS + POLICY.block };
    expect(await eventually(async () => (await counters.addressBlocks!.inForce(now)).length === 1)).toBe(true);
    expect(await counters.addressBlocks!.inForce(now)).toEqual([held]);
    const infos = logLines(logged).filter((line) => line.level === 30).map((line) => line.msg);
    expect(infos.filter((msg) => msg.startsWith('Redis took the address blocks'))).toHaveLength(1);
    expect(infos.filter((msg) => msg.includes('counted for all processes again'))).toHaveLength(1);
    expect(warnings()).toHaveLength(2);
  });

  it('past the most blocks Redis holds, answers and announces just the blocks it holds (those ending last), over several scripts too', async () => {
    const cap = 150;
    const prefix = 'capped:';
    const capped = await openRedisCounters({ url: redisUrlWithPrefix(prefix, server.url), failure: 'open', store, log, clock: Date.now, maxAddressesBlocked: cap });
    const listener = new Redis(server.url);
    try {
      const announced: string[] = [];
      const marker = JSON.stringify({ type: 'test-marker' });
      let markerHeard = false;
      listener.on('message', (_channel: string, message: string) => {
        if (message === marker) markerHeard = true;
        else if ((JSON.parse(message) as { type: string }).type === 'address_blocked') announced.push((JSON.parse(message) as { address: string }).address);
      });
      await listener.subscribe(`${prefix}cache`);
      const now = Date.now();
      // 250 blocks, the one ending first first: more than a script takes (200), more than Redis holds.
      const given = Array.from({ length: 250 }, (_, i) => ({ address: `198.51.100.${i}`, unknownKeys: 3, startedAt: now - 1_000, endsAt: now + 60_000 + i }));
      const endingLast = given.slice(-cap);
      const byAddress = (blocks: { address: string }[]) => blocks.map((block) => block.address).sort();

      const answered = await capped.addressBlocks!.share(given, now);
      expect(byAddress(answered)).toEqual(byAddress(endingLast));
      expect(byAddress(await capped.addressBlocks!.inForce(now))).toEqual(byAddress(endingLast));
      // Announced: those Redis holds, no other (the marker comes after every announcement on the channel).
      await raw.publish(`${prefix}cache`, marker);
      expect(await eventually(() => markerHeard)).toBe(true);
      expect(announced.sort()).toEqual(byAddress(endingLast));
    } finally {
      listener.disconnect();
      await capped.close();
    }
  });

  it('a count Redis answers with an error (OOM past maxmemory) is made here, said as such once, and the block it began is handed over once Redis takes counts again', async () => {
    const prefix = 'refused:';
    let said = '';
    const ownLog = createLog({ level: 'info', destination: { write: (line: string) => void (said += line) } });
    const refusing = await openRedisCounters({ url: redisUrlWithPrefix(prefix, server.url), failure: 'open', store, log: ownLog, clock: Date.now });
    try {
      const now = Date.now();
      const limit = new SharedUnknownKeyLimit(new UnknownKeyLimit(), refusing.addressBlocks!, ownLog, () => now);
      await raw.config('SET', 'maxmemory', '1');
      try {
        for (let i = 0; i < POLICY.limit - 1; i++) expect(await limit.fail('203.0.113.80', now, POLICY)).toBeUndefined();
        expect(await limit.fail('203.0.113.80', now, POLICY)).toMatchObject({ address: '203.0.113.80', unknownKeys: POLICY.limit });
        // Past maxmemory Redis still answers a list (its script writes nothing it refuses for memory): counts stay refused, and neither is said again.
        expect((await limit.blocksInForce(now)).from).toBe('shared');
        expect(await limit.fail('203.0.113.82', now, POLICY)).toBeUndefined();
        expect(logLines(said).filter((line) => line.msg.includes('counted for all processes again'))).toEqual([]);
      } finally {
        await raw.config('SET', 'maxmemory', '0');
      }
      expect(limit.blockedFor('203.0.113.80', now)).toBe(POLICY.block);
      const warned = () => logLines(said).filter((line) => line.level === 40);
      expect(warned().map(({ msg, err }) => ({ msg, err }))).toEqual([
        { msg: 'Redis answers with an error: unknown keys (auth.unknownKeys) are counted by each process on its own until Redis takes counts again', err: expect.stringMatching(/^OOM /) },
      ]);
      // Taken again: counted in Redis, said once, and the block begun here goes to Redis.
      expect(await limit.fail('203.0.113.81', now, POLICY)).toBeUndefined();
      expect(await eventually(async () => (await refusing.addressBlocks!.inForce(now)).some((block) => block.address === '203.0.113.80'))).toBe(true);
      expect(logLines(said).filter((line) => line.msg.includes('counted for all processes again'))).toHaveLength(1);
      expect(warned()).toHaveLength(1);
    } finally {
      await refusing.close();
    }
  });
});
