/**
 * A process stopped (SIGTERM) while PostgreSQL is unreachable, with Redis answering: the
 * balances it charged since its last write are in Redis alone. It says so (not that they
 * are lost: only the usage history it gathered is), and leaves them listed in Redis, so
 * that the next process that reaches both writes them to PostgreSQL, with no one charging
 * those meters again (before, PostgreSQL stayed behind until then, and a Redis that lost
 * its data meanwhile lost them).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import pg from 'pg';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ConfigInput } from '../../src/config/schema.js';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from '../support/services.js';
import { runCli } from '../support/cli.js';
import { tempDir } from '../support/temp.js';
import { createTestDatabase, deleteRedisKeys, eventually, redisUrlWithPrefix, testRedisPrefix, type TestDatabase } from '../backends/isolation.js';
import { provisionKey, startGateway, startTcpProxy, writeProfile, type GatewayProcess, type TcpProxy } from './cluster.js';

const enabled = (await serviceAvailable('PostgreSQL', POSTGRES_URL)) && (await serviceAvailable('Redis', REDIS_URL));

describe.skipIf(!enabled)('a stop while PostgreSQL is unreachable', () => {
  const dir = tempDir('keygate-stop-without-store');
  const prefix = testRedisPrefix('stop-without-store');
  let database: TestDatabase;
  let upstream: Server;
  let proxy: TcpProxy;
  let profileFile: string;
  const gateways: GatewayProcess[] = [];

  /** The store is reached through the proxy, so that it can be cut off from keygate alone. */
  const profile = (store: string): ConfigInput => ({
    name: 'stop-without-store',
    upstream: { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` },
    store,
    counters: redisUrlWithPrefix(prefix),
    listen: { host: '127.0.0.1', port: 0 },
    admin: { listen: { host: '127.0.0.1', port: 0 } },
    dashboard: { enabled: false },
    errors: { envelope: 'message' },
    plans: { metered: { meters: { units: { limit: 1_000 } } } },
    routes: [{ method: 'GET', path: '/v1/charged', cost: { meter: 'units', perRequest: 1 } }],
  });

  /** The balance PostgreSQL holds, read directly (not through the proxy). */
  async function storedUsed(accountId: string): Promise<number> {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ used: string }>("SELECT used FROM meter_usage WHERE account_id = $1 AND meter = 'units'", [accountId]);
      return Number(rows[0]?.used ?? 0);
    } finally {
      await client.end();
    }
  }

  /** The requests PostgreSQL's usage history holds for the account, read directly: written by their own flush, apart from the balance. */
  async function storedRequests(accountId: string): Promise<number> {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ total: string | null }>("SELECT SUM(value) AS total FROM usage_daily WHERE account_id = $1 AND metric = 'requests'", [accountId]);
      return Number(rows[0]?.total ?? 0);
    } finally {
      await client.end();
    }
  }

  beforeAll(async () => {
    database = await createTestDatabase('stop_without_store');
    upstream = createServer((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{"data":[]}'));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    proxy = await startTcpProxy(Number(new URL(POSTGRES_URL).port || 5432));
    const viaProxy = new URL(database.url);
    viaProxy.port = String(proxy.port);
    profileFile = writeProfile(dir, 'proxied', profile(viaProxy.toString()));
    expect((await runCli(['migrate', '--config', profileFile])).code).toBe(0);
  });

  beforeEach(() => {
    onTestFailed(() => {
      for (const g of gateways) console.error(`--- ${g.adminUrl}\n${g.output.filter((line) => !line.includes('"msg":"request"')).slice(-15).join('\n')}`);
    });
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await proxy?.cut();
    await new Promise((resolve) => upstream?.close(resolve));
    await database?.drop();
    await deleteRedisKeys(prefix);
  });

  it('says the balances are held in Redis and the usage history lost, and the next process to start writes those balances to PostgreSQL', async () => {
    const first = await startGateway(profileFile);
    gateways.push(first);
    const { accountId, secret } = await provisionKey(first, 'metered', 'stopped without store');
    for (let i = 0; i < 3; i++) expect((await first.call('/v1/charged', secret)).status).toBe(200);
    // Both written before the cut, the balance and the usage history (the log counts what the stop could not write of each).
    expect(await eventually(async () => (await storedUsed(accountId)) === 3 && (await storedRequests(accountId)) === 3, 10_000, 100)).toBe(true);

    await proxy.cut();
    // The key is cached and the balance is in Redis: charged without PostgreSQL.
    for (let i = 0; i < 4; i++) expect((await first.call('/v1/charged', secret)).status).toBe(200);
    const mark = first.output.length;
    await first.stop();
    const said = first.output
      .slice(mark)
      .map((line) => (line.startsWith('{') ? (JSON.parse(line) as { msg: string; meterBalancesNotWritten?: number; meterBalancesHeldInRedis?: boolean; lost?: Record<string, number> }) : undefined))
      .find((line) => line?.msg.startsWith('final usage flush failed'));
    expect(said).toMatchObject({ meterBalancesNotWritten: 1, meterBalancesHeldInRedis: true, lost: { requests: 4 } });
    expect(said?.msg).toContain('the usage history counted since the last write is lost');
    expect(said?.msg).toContain('the balances of 1 meter changed since are held in Redis and written to the store by the next keygate process that reaches both');
    expect(await storedUsed(accountId)).toBe(3);

    // PostgreSQL back, and no request for that account: the next process writes the balance.
    await proxy.restore();
    const next = await startGateway(profileFile);
    gateways.push(next);
    expect(await eventually(async () => (await storedUsed(accountId)) === 7, 10_000, 100)).toBe(true);
    expect(next.output.some((line) => line.includes('writing to the store balances that processes which stopped while the store was unreachable left in Redis'))).toBe(true);
  });
});
