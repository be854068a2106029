/**
 * A process stopped (SIGTERM) while PostgreSQL is unreachable, with Redis answering: the
 * balances it charged since its last write are in Redis alone. It says so (not that they
 * are lost: only the usage history it gathered is), and leaves them listed in Redis, so
 * that the next process that reaches both writes them to PostgreSQL, with no one charging
 * those meters again (before, PostgreSQL stayed behind until then, and a Redis that lost
 * its data meanwhile lost them): one that starts, or one running all along, at its next
 * write-back; and, if Redis refuses to hand the list over (NOPERM), at the first write-back
 * after it allows it, having said so once and tried again only every 10 seconds meanwhile.
 * A process killed after reading the list and before PostgreSQL took what it names leaves
 * it listed, and the next process writes those balances, once.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import pg from 'pg';
import { Redis } from 'ioredis';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ConfigInput } from '../../src/config/schema.js';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from '../support/services.js';
import { runCli } from '../support/cli.js';
import { tempDir } from '../support/temp.js';
import { createTestDatabase, deleteRedisKeys, eventually, redisUrlWithPrefix, testRedisPrefix, type TestDatabase } from '../backends/isolation.js';
import { monitorRedis } from '../support/redis-monitor.js';
import { provisionKey, startGateway, startRedisServer, startTcpProxy, writeProfile, type GatewayProcess, type RedisServer } from './cluster.js';

const enabled = (await serviceAvailable('PostgreSQL', POSTGRES_URL)) && (await serviceAvailable('Redis', REDIS_URL));
const dir = tempDir('keygate-stop-without-store');

/**
 * One PostgreSQL database, reached through a proxy that can be cut (`proxied`: the process
 * that stops without it) or directly (`direct`: one that reaches it throughout), one
 * Redis (`counters`), an upstream answering {"data":[]}.
 */
interface Stand {
  readonly database: TestDatabase;
  readonly proxied: string;
  readonly direct: string;
  /** Cuts the proxied processes off PostgreSQL. */
  cutStore(): Promise<void>;
  /** Lets them reach it again, if cut. */
  restoreStore(): Promise<void>;
  close(): Promise<void>;
}

async function openStand(name: string, counters: string): Promise<Stand> {
  const database = await createTestDatabase(name.replaceAll('-', '_'));
  const upstream = createServer((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{"data":[]}'));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const proxy = await startTcpProxy(Number(new URL(POSTGRES_URL).port || 5432));
  const profile = (store: string): ConfigInput => ({
    name,
    upstream: { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` },
    store,
    counters,
    listen: { host: '127.0.0.1', port: 0 },
    admin: { listen: { host: '127.0.0.1', port: 0 } },
    dashboard: { enabled: false },
    errors: { envelope: 'message' },
    plans: {
      metered: { meters: { units: { limit: 1_000 } } },
      // One request an hour; the first refusal blocks the key for 10 minutes.
      limited: { rateLimits: [{ limit: 1, window: '1h' }], block: { after: 1, within: '1h', duration: '10m' } },
    },
    routes: [{ method: 'GET', path: '/v1/charged', cost: { meter: 'units', perRequest: 1 } }, { path: '/v1/data' }],
  });
  const viaProxy = new URL(database.url);
  viaProxy.port = String(proxy.port);
  const proxied = writeProfile(dir, `${name}-proxied`, profile(viaProxy.toString()));
  const direct = writeProfile(dir, `${name}-direct`, profile(database.url));
  expect((await runCli(['migrate', '--config', direct])).code).toBe(0);
  let cut = false;
  return {
    database,
    proxied,
    direct,
    async cutStore() {
      cut = true;
      await proxy.cut();
    },
    async restoreStore() {
      if (!cut) return;
      cut = false;
      await proxy.restore();
    },
    async close() {
      await proxy.cut();
      await new Promise((resolve) => upstream.close(resolve));
      await database.drop();
    },
  };
}

/** The balance PostgreSQL holds, read directly (not through the proxy). */
async function storedUsed(database: TestDatabase, accountId: string): Promise<number> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    const { rows } = await client.query<{ used: string }>("SELECT used FROM meter_usage WHERE account_id = $1 AND meter = 'units'", [accountId]);
    return Number(rows[0]?.used ?? 0);
  } finally {
    await client.end();
  }
}

/** The rate-limit blocks PostgreSQL keeps in force (its copy of Redis's), read directly. */
async function storedBlocks(database: TestDatabase): Promise<string[]> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string }>("SELECT id FROM limit_state WHERE kind = 'block' AND expires_at > $1", [Date.now()]);
    return rows.map((row) => row.id);
  } finally {
    await client.end();
  }
}

/** The requests PostgreSQL's usage history holds for the account, read directly: written by their own flush, apart from the balance. */
async function storedRequests(database: TestDatabase, accountId: string): Promise<number> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    const { rows } = await client.query<{ total: string | null }>("SELECT SUM(value) AS total FROM usage_daily WHERE account_id = $1 AND metric = 'requests'", [accountId]);
    return Number(rows[0]?.total ?? 0);
  } finally {
    await client.end();
  }
}

type LogLine = { msg: string; meterBalancesNotWritten?: number; meterBalancesHeldInRedis?: boolean; blocksNotWritten?: number; blocksHeldInRedis?: boolean; lost?: Record<string, number> };

/** The line a process says as it stops without the store, among those after `mark`. */
function finalFlushLine(gateway: GatewayProcess, mark: number): LogLine | undefined {
  return gateway.output
    .slice(mark)
    .map((line) => (line.startsWith('{') ? (JSON.parse(line) as LogLine) : undefined))
    .find((line) => line?.msg.startsWith('final usage flush failed'));
}

/**
 * Through `gateway` (on the proxied profile): 3 requests charged and written to
 * PostgreSQL, PostgreSQL cut off, 4 more charged, the process stopped. Answers the account
 * and the line it said as it stopped. Redis holds 7 units, PostgreSQL 3 until a
 * process writes the balance.
 */
async function chargeAndStopWithoutStore(stand: Stand, gateway: GatewayProcess, name: string, beforeStop?: () => Promise<void>): Promise<{ accountId: string; said: LogLine | undefined }> {
  const { accountId, secret } = await provisionKey(gateway, 'metered', name);
  for (let i = 0; i < 3; i++) expect((await gateway.call('/v1/charged', secret)).status).toBe(200);
  // Both written before the cut, the balance and the usage history (the log counts what the stop could not write of each).
  expect(await eventually(async () => (await storedUsed(stand.database, accountId)) === 3 && (await storedRequests(stand.database, accountId)) === 3, 10_000, 100)).toBe(true);

  await stand.cutStore();
  // The key is cached and the balance is in Redis: charged without PostgreSQL.
  for (let i = 0; i < 4; i++) expect((await gateway.call('/v1/charged', secret)).status).toBe(200);
  await beforeStop?.();
  const mark = gateway.output.length;
  await gateway.stop();
  // Not checked here that PostgreSQL still holds 3: a process running beside it may have written the 7 already.
  return { accountId, said: finalFlushLine(gateway, mark) };
}

const HANDED_OVER_WRITTEN = 'writing to the store balances that processes which stopped while the store was unreachable left in Redis';

describe.skipIf(!enabled)('a stop while PostgreSQL is unreachable', () => {
  const prefix = testRedisPrefix('stop-without-store');
  let stand: Stand;
  const gateways: GatewayProcess[] = [];

  beforeAll(async () => {
    stand = await openStand('stop-without-store', redisUrlWithPrefix(prefix));
  });

  beforeEach(() => {
    onTestFailed(() => {
      for (const g of gateways) console.error(`--- ${g.adminUrl}\n${g.output.filter((line) => !line.includes('"msg":"request"')).slice(-15).join('\n')}`);
    });
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await stand?.close();
    await deleteRedisKeys(prefix);
  });

  it('says the balances are held in Redis and the usage history lost, and the next process to start writes those balances to PostgreSQL', async () => {
    const first = await startGateway(stand.proxied);
    gateways.push(first);
    const { accountId, said } = await chargeAndStopWithoutStore(stand, first, 'stopped without store');
    expect(said).toMatchObject({ meterBalancesNotWritten: 1, meterBalancesHeldInRedis: true, lost: { requests: 4 } });
    expect(said?.msg).toContain('the usage history counted since the last write is lost');
    expect(said?.msg).toContain('the balances of 1 meter changed since are held in Redis and written to the store by the next keygate process that reaches both');
    expect(await storedUsed(stand.database, accountId)).toBe(3);

    // PostgreSQL back, and no request for that account: the next process writes the balance.
    await stand.restoreStore();
    const next = await startGateway(stand.proxied);
    gateways.push(next);
    expect(await eventually(async () => (await storedUsed(stand.database, accountId)) === 7, 10_000, 100)).toBe(true);
    expect(next.output.some((line) => line.includes(HANDED_OVER_WRITTEN))).toBe(true);
  });

  it('a process running all along with PostgreSQL writes the balances of one that stopped without it, at its next write-back', async () => {
    // None of the first case's processes may take the list.
    await Promise.all(gateways.splice(0).map((g) => g.stop()));
    // B reaches PostgreSQL directly and has looked for handed-over balances as it started, before A stops.
    const b = await startGateway(stand.direct);
    const a = await startGateway(stand.proxied);
    gateways.push(a, b);
    const { accountId, said } = await chargeAndStopWithoutStore(stand, a, 'stopped beside a running one');
    expect(said).toMatchObject({ meterBalancesNotWritten: 1, meterBalancesHeldInRedis: true });
    expect(said?.msg).toContain('(as it starts, or a running one at its next write-back, within a second or so)');

    // No request for that account, no restart: B, running, writes the balance A charged
    // (before, B looked once a minute: not before a minute after it started).
    expect(await eventually(async () => (await storedUsed(stand.database, accountId)) === 7, 20_000, 100)).toBe(true);
    expect(b.output.some((line) => line.includes(HANDED_OVER_WRITTEN))).toBe(true);
    expect(b.alive()).toBe(true);
    expect(b.output.filter((line) => line.includes('keygate is serving'))).toHaveLength(1);
  });

  it('a block started in Redis while PostgreSQL was unreachable, by a process that then stopped, is written by a running one and survives Redis losing its data', async () => {
    await Promise.all(gateways.splice(0).map((g) => g.stop()));
    await stand.restoreStore();
    expect(await storedBlocks(stand.database)).toEqual([]);
    const b = await startGateway(stand.direct);
    const a = await startGateway(stand.proxied);
    gateways.push(a, b);
    const { secret } = await provisionKey(a, 'limited', 'blocked without store');
    expect((await a.call('/v1/data', secret)).status).toBe(200);

    // Cut off: the key (cached) is refused, and blocked, in Redis; PostgreSQL cannot get the block.
    await stand.cutStore();
    expect((await a.call('/v1/data', secret)).status).toBe(429);
    const refused = await a.call('/v1/data', secret);
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { message: string }).message).toContain('temporarily blocked');
    const mark = a.output.length;
    await a.stop();
    const said = finalFlushLine(a, mark);
    expect(said).toMatchObject({ blocksNotWritten: 1, blocksHeldInRedis: true });
    expect(said?.msg).toContain('the changes to 1 rate-limit block since are held in Redis and written to the store by the next keygate process that reaches both');

    // B, running all along, writes the block to PostgreSQL (before, no one did until the key was refused again).
    const written = await eventually(async () => (await storedBlocks(stand.database)).length === 1, 20_000, 100);
    // Redis loses its data: B puts the store's blocks back, and the key is still blocked
    // (its window starts empty: without the block it would be served).
    const beforeLoss = b.output.length;
    expect(await deleteRedisKeys(prefix)).toBeGreaterThan(0);
    expect(await b.waitForLog(/rate-limit blocks put back into Redis from the store/, beforeLoss, 20_000)).toBe(true);
    const after = await b.call('/v1/data', secret);
    expect({ written, status: after.status }).toEqual({ written: true, status: 429 });
    expect(((await after.json()) as { message: string }).message).toContain('temporarily blocked');
  });

  it('a process killed after reading the list, before PostgreSQL took the balances, leaves it listed: the next processes write them, once', async () => {
    await Promise.all(gateways.splice(0).map((g) => g.stop()));
    await stand.restoreStore();
    // B reaches PostgreSQL directly and writes the list at its next write-back after A stops.
    const b = await startGateway(stand.direct);
    const a = await startGateway(stand.proxied);
    gateways.push(a, b);
    // meter_usage locked (by the test, in a transaction left open) before A stops: B reads the
    // list and the balance, and its write of that balance waits on the lock.
    const locker = new pg.Client({ connectionString: stand.database.url });
    await locker.connect();
    try {
      const { accountId, said } = await chargeAndStopWithoutStore(stand, a, 'taker killed', async () => {
        await locker.query('BEGIN');
        await locker.query('LOCK TABLE meter_usage IN EXCLUSIVE MODE');
      });
      expect(said).toMatchObject({ meterBalancesNotWritten: 1, meterBalancesHeldInRedis: true });
      expect(await b.waitForLog(new RegExp(HANDED_OVER_WRITTEN), 0, 20_000)).toBe(true);
      let waiting: number[] = [];
      expect(
        await eventually(async () => {
          const { rows } = await locker.query<{ pid: number }>(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE '%meter_usage%' AND pid <> pg_backend_pid()",
          );
          waiting = rows.map((row) => row.pid);
          return waiting.length > 0;
        }, 20_000, 100),
      ).toBe(true);

      // B killed outright, its unfinished write with it (the server would otherwise carry
      // out the statement it was sent once the lock goes).
      const exited = new Promise((resolve) => b.child.once('exit', resolve));
      b.child.kill('SIGKILL');
      await exited;
      for (const pid of waiting) await locker.query('SELECT pg_terminate_backend($1)', [pid]);
      await locker.query('ROLLBACK');
      expect(await storedUsed(stand.database, accountId)).toBe(3);

      // Two processes start (each looks at start-up): the balance is written, as Redis holds it.
      const [c, d] = await Promise.all([startGateway(stand.direct), startGateway(stand.direct)]);
      gateways.push(c, d);
      expect(await eventually(async () => (await storedUsed(stand.database, accountId)) === 7, 20_000, 100)).toBe(true);
      // Taken off the list once written; written twice if both took it, never counted twice.
      const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
      await redis.connect();
      try {
        expect(await eventually(async () => (await redis.exists(`${prefix}unwritten:balances`)) === 0, 20_000, 100)).toBe(true);
      } finally {
        redis.disconnect();
      }
      const usage = (await (await c.admin(`/v1/accounts/${accountId}/usage`)).json()) as { meters: { units: { usage: number } } };
      expect({ stored: await storedUsed(stand.database, accountId), usage: usage.meters.units.usage }).toEqual({ stored: 7, usage: 7 });
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      await locker.end();
    }
  });
});

describe.skipIf(!enabled)('a hand-over list Redis refuses to give (NOPERM on SRANDMEMBER)', () => {
  const prefix = 'refused-hand-over:';
  let redis: RedisServer;
  let admin: Redis;
  let stand: Stand;
  const gateways: GatewayProcess[] = [];

  /** How many reads of the list (SRANDMEMBER) Redis refused (its ACL log counts them). */
  async function readsRefused(): Promise<number> {
    const entries = (await admin.call('ACL', 'LOG')) as unknown[][];
    let count = 0;
    for (const entry of entries) {
      const fields = new Map<string, unknown>();
      for (let i = 0; i + 1 < entry.length; i += 2) fields.set(String(entry[i]), entry[i + 1]);
      if (fields.get('object') === 'srandmember') count += Number(fields.get('count'));
    }
    return count;
  }

  beforeAll(async () => {
    // A private server (its ACL is changed): every command but SRANDMEMBER, until the test allows it.
    redis = await startRedisServer(['--user', 'default', 'on', 'nopass', '~*', '&*', '+@all', '-srandmember']);
    admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await admin.connect();
    stand = await openStand('refused-hand-over', `${redis.url}/0?prefix=${prefix}`);
  });

  beforeEach(() => {
    onTestFailed(() => {
      for (const g of gateways) console.error(`--- ${g.adminUrl}\n${g.output.filter((line) => !line.includes('"msg":"request"')).slice(-15).join('\n')}`);
    });
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    admin?.disconnect();
    await redis?.kill();
    await stand?.close();
  });

  it('is read again every 10 seconds, not at each write-back, warned of once, and written at the first try after Redis gives it', async () => {
    const a = await startGateway(stand.proxied);
    gateways.push(a);
    const { accountId, said } = await chargeAndStopWithoutStore(stand, a, 'refused hand-over');
    // SADD is allowed: the list is in Redis.
    expect(said).toMatchObject({ meterBalancesNotWritten: 1, meterBalancesHeldInRedis: true });

    // B starts with PostgreSQL: its look at start-up is refused, and so is the next one.
    const monitor = await monitorRedis(redis.url);
    const b = await startGateway(stand.direct);
    gateways.push(b);
    // Two looks, each refused (one SRANDMEMBER for the balances, one for the blocks).
    const twoLooks = await eventually(async () => (await readsRefused()) >= 4, 30_000, 100);
    // B's write-backs meanwhile (each asks whether Redis holds the store's blocks): between
    // the two looks, several went by without one (before, each write-back looked again,
    // and with it asked the store for saved units).
    const writeBacks = monitor.seen.filter(({ args }) => args[0]?.toUpperCase() === 'EXISTS' && args[1] === `${prefix}restored:blocks`).length;
    monitor.close();
    expect({ twoLooks, severalWriteBacks: writeBacks >= 5 }).toEqual({ twoLooks: true, severalWriteBacks: true });
    const warnings = b.output.filter((line) => line.includes('could not read from Redis the balances and blocks that processes which stopped while the store was unreachable left there to write'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('NOPERM');
    expect(await storedUsed(stand.database, accountId)).toBe(3);

    // Allowed: B's next try takes the list (before, not until a minute after its first try).
    await admin.call('ACL', 'SETUSER', 'default', '+srandmember');
    expect(await eventually(async () => (await storedUsed(stand.database, accountId)) === 7, 20_000, 100)).toBe(true);
    expect(b.output.some((line) => line.includes(HANDED_OVER_WRITTEN))).toBe(true);
  });
});
