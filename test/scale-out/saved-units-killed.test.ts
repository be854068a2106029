/**
 * Units a process saved in PostgreSQL (pending_units) because Redis was unreachable when
 * it stopped, on their way back to Redis, with the process taking them killed (SIGKILL)
 * at the dangerous moments, and two processes taking them at once: the account's usage
 * ends exactly the units sent, not less (before, the rows were deleted first and held in
 * the taker's memory: a kill before Redis had them lost them), not more (a row Redis took
 * is never added again, by the next process or by two at once).
 *
 * The moments are reached without any hook in keygate: the test locks pending_units in
 * PostgreSQL (the taker's read, or its removal, waits), and holds the bytes the taker
 * sends to Redis in a proxy (its script never reaches Redis). Real PostgreSQL (a database
 * of its own), real Redis (a prefix of its own), real `keygate serve` processes.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import pg from 'pg';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ConfigInput } from '../../src/config/schema.js';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from '../support/services.js';
import { runCli } from '../support/cli.js';
import { tempDir } from '../support/temp.js';
import { createTestDatabase, deleteRedisKeys, eventually, redisUrlWithPrefix, testRedisPrefix, type TestDatabase } from '../backends/isolation.js';
import { provisionKey, spawnGateway, startGateway, startTcpProxy, writeProfile, type GatewayProcess, type SpawnedGateway, type TcpProxy } from './cluster.js';

const enabled = (await serviceAvailable('PostgreSQL', POSTGRES_URL)) && (await serviceAvailable('Redis', REDIS_URL));
const dir = tempDir('keygate-saved-units-killed');

const ADDED = 'adding to Redis units saved in the store by processes that stopped while it was unreachable';
const TAKEN_ALREADY = 'removing from the store units saved there that Redis had taken already';

describe.skipIf(!enabled)('units saved in the store during a Redis outage, taken back by processes that are killed or race', () => {
  const prefix = testRedisPrefix('saved-units-killed');
  let database: TestDatabase;
  let db: pg.Client;
  let redis: Redis;
  let proxy: TcpProxy;
  let upstream: ReturnType<typeof createServer>;
  /** Redis directly, or through the proxy that can hold what a process sends. */
  let direct: string;
  let proxied: string;
  const gateways: GatewayProcess[] = [];
  const spawned: SpawnedGateway[] = [];

  beforeAll(async () => {
    database = await createTestDatabase('saved_units_killed');
    upstream = createServer((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{"data":[]}'));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    proxy = await startTcpProxy(Number(new URL(REDIS_URL).port || 6379));
    const profile = (counters: string): ConfigInput => ({
      name: 'saved-units-killed',
      upstream: { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` },
      store: database.url,
      counters,
      listen: { host: '127.0.0.1', port: 0 },
      admin: { listen: { host: '127.0.0.1', port: 0 } },
      dashboard: { enabled: false },
      errors: { envelope: 'message' },
      plans: { metered: { meters: { units: { limit: 1_000 } } } },
      routes: [{ method: 'GET', path: '/v1/charged', cost: { meter: 'units', perRequest: 1 } }],
    });
    direct = writeProfile(dir, 'direct', profile(redisUrlWithPrefix(prefix)));
    proxied = writeProfile(dir, 'proxied', profile(redisUrlWithPrefix(prefix, `redis://127.0.0.1:${proxy.port}`)));
    expect((await runCli(['migrate', '--config', direct])).code).toBe(0);
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
    redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
  });

  beforeEach(() => {
    onTestFailed(() => {
      for (const { output } of spawned) console.error(`--- spawned\n${output.filter((line) => !line.includes('"msg":"request"')).slice(-15).join('\n')}`);
    });
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    for (const { child } of spawned) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await db?.end();
    redis?.disconnect();
    await proxy?.cut();
    await new Promise((resolve) => upstream?.close(resolve));
    await database?.drop();
    await deleteRedisKeys(prefix);
  });

  function spawn(profile: string): SpawnedGateway {
    const gateway = spawnGateway(profile);
    // Killed before serving, some of them: that is not the test's failure.
    gateway.serving.catch(() => undefined);
    spawned.push(gateway);
    return gateway;
  }

  async function kill(gateway: SpawnedGateway): Promise<void> {
    const exited = new Promise((resolve) => gateway.child.once('exit', resolve));
    gateway.child.kill('SIGKILL');
    await exited;
  }

  /** An account that used 3 units (in Redis and PostgreSQL), with no process running; answers it and its meter's period. */
  async function accountWithUsage(name: string): Promise<{ accountId: string; periodStart: string }> {
    const gateway = await startGateway(direct);
    const { accountId, secret } = await provisionKey(gateway, 'metered', name);
    for (let i = 0; i < 3; i++) expect((await gateway.call('/v1/charged', secret)).status).toBe(200);
    await gateway.stop();
    const { rows } = await db.query<{ period_start: string; used: string }>("SELECT period_start, used FROM meter_usage WHERE account_id = $1 AND meter = 'units'", [accountId]);
    expect(rows.map((row) => Number(row.used))).toEqual([3]);
    return { accountId, periodStart: rows[0]?.period_start ?? '' };
  }

  /** As a process that stopped while Redis was unreachable leaves them (RedisCounters.close). */
  async function saveUnits(accountId: string, periodStart: string, units: number[]): Promise<string[]> {
    const ids = units.map(() => randomUUID());
    for (const [i, id] of ids.entries()) {
      await db.query('INSERT INTO pending_units (id, account_id, meter, period_start, units, saved_at) VALUES ($1, $2, $3, $4, $5, $6)', [id, accountId, 'units', periodStart, units[i], Date.now()]);
    }
    return ids;
  }

  async function savedRows(accountId: string): Promise<number> {
    const { rows } = await db.query<{ count: string }>('SELECT count(*) FROM pending_units WHERE account_id = $1', [accountId]);
    return Number(rows[0]?.count);
  }

  async function storedUsed(accountId: string): Promise<number> {
    const { rows } = await db.query<{ used: string }>("SELECT used FROM meter_usage WHERE account_id = $1 AND meter = 'units'", [accountId]);
    return Number(rows[0]?.used ?? 0);
  }

  async function usage(gateway: GatewayProcess, accountId: string): Promise<number> {
    const body = (await (await gateway.admin(`/v1/accounts/${accountId}/usage`)).json()) as { meters: { units: { usage: number } } };
    return body.meters.units.usage;
  }

  /** The backends of other sessions waiting on a lock held for pending_units (the processes' statements on it). */
  async function waitingOnSavedUnits(count: number): Promise<number[]> {
    let pids: number[] = [];
    const seen = await eventually(
      async () => {
        const { rows } = await db.query<{ pid: number }>(
          "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE '%pending_units%' AND pid <> pg_backend_pid()",
        );
        pids = rows.map((row) => row.pid);
        return pids.length >= count;
      },
      60_000,
      50,
    );
    expect(seen).toBe(true);
    return pids;
  }

  /** A locker of its own: the test's other queries (on `db`) go on while it holds the lock. */
  async function lockSavedUnits(mode: 'ACCESS EXCLUSIVE' | 'EXCLUSIVE'): Promise<pg.Client> {
    const locker = new pg.Client({ connectionString: database.url });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query(`LOCK TABLE pending_units IN ${mode} MODE`);
    return locker;
  }

  it('a process killed after reading the saved rows, before Redis took their units, leaves them in the store: the next process adds them, once', async () => {
    const { accountId, periodStart } = await accountWithUsage('killed before Redis took them');
    await saveUnits(accountId, periodStart, [5, 4, -2]);

    // A starts and takes the saved units before it serves: its read of them waits on the lock.
    const locker = await lockSavedUnits('ACCESS EXCLUSIVE');
    const a = spawn(proxied);
    try {
      await waitingOnSavedUnits(1);
      // What A sends Redis from now on is held by the proxy, never carried out: A has the rows, Redis not.
      proxy.stall();
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    // A sends the units on their way (its script names the account's meter), and is killed.
    expect(await eventually(() => proxy.heldFromClients().includes(accountId), 30_000, 20)).toBe(true);
    await kill(a);
    await proxy.cut();

    // B, started after, adds them: 3 + 5 + 4 - 2.
    const b = await startGateway(direct);
    gateways.push(b);
    expect({ usage: await usage(b, accountId), stored: await storedUsed(accountId), saved: await savedRows(accountId) }).toEqual({ usage: 10, stored: 10, saved: 0 });
    expect(b.output.filter((line) => line.includes(ADDED))).toEqual([expect.stringContaining(`${ADDED}: 9 charged, 2 given back, for 1 account`)]);
    await b.stop();
  });

  it('a process killed after Redis took the units, before the store removed the rows, leaves them to the next two, which start at once and add them no more (and a fresh row once)', async () => {
    await Promise.all(gateways.splice(0).map((g) => g.stop()));
    const { accountId, periodStart } = await accountWithUsage('killed after Redis took them');
    const ids = await saveUnits(accountId, periodStart, [5, 4, -2]);

    // B reads the rows and Redis adds their units; its removal of them (a DELETE) waits on the lock.
    let locker = await lockSavedUnits('EXCLUSIVE');
    const b = spawn(direct);
    try {
      const waiting = await waitingOnSavedUnits(1);
      // B killed, and its unfinished transaction with it (the server would otherwise carry it out once the lock goes).
      await kill(b);
      for (const pid of waiting) await db.query('SELECT pg_terminate_backend($1)', [pid]);
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    // Redis has them (each row marked added), the store still has the rows, and its balance as before.
    const marks = await Promise.all(ids.map((id) => redis.exists(`${prefix}added:${id}`)));
    expect({ marks, saved: await savedRows(accountId), stored: await storedUsed(accountId) }).toEqual({ marks: [1, 1, 1], saved: 3, stored: 3 });

    // A row saved since, not yet added; then C and D start at once, both reading every row
    // in the same moment (held until both wait on the lock).
    await saveUnits(accountId, periodStart, [6]);
    locker = await lockSavedUnits('ACCESS EXCLUSIVE');
    const [c, d] = [spawn(direct), spawn(direct)];
    try {
      await waitingOnSavedUnits(2);
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    const both = await Promise.all([c.serving, d.serving]);
    gateways.push(...both);

    // 3 + 5 + 4 - 2 + 6: each row once.
    expect({ c: await usage(both[0], accountId), d: await usage(both[1], accountId), stored: await storedUsed(accountId), saved: await savedRows(accountId) }).toEqual({ c: 16, d: 16, stored: 16, saved: 0 });
    // The fresh row added by one of them; the rows Redis had taken, by neither.
    const added = [...c.output, ...d.output].filter((line) => line.includes(ADDED));
    expect(added).toHaveLength(1);
    expect(added[0]).toContain(`${ADDED}: 6 charged, for 1 account`);
    expect([...c.output, ...d.output].some((line) => line.includes(TAKEN_ALREADY))).toBe(true);
  });
});
