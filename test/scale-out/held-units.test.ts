/**
 * keygate_counters_held_units, scraped from a real `keygate serve` on PostgreSQL and
 * Redis (fail-open) whose Redis is reached through a TCP proxy the test cuts (the shared
 * Redis server is never touched): what the process holds for Redis while it cannot reach
 * it, by state, and all of it back to 0 once Redis has taken it, with no unit lost.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from '../support/services.js';
import { tempDir } from '../support/temp.js';
import { createTestDatabase, deleteRedisKeys, eventually, redisUrlWithPrefix, testRedisPrefix, type TestDatabase } from '../backends/isolation.js';
import { openPostgresStore } from '../../src/store/postgres/postgres-database.js';
import { provisionKey, startGateway, startTcpProxy, writeProfile, type GatewayProcess, type TcpProxy } from './cluster.js';

const enabled = (await serviceAvailable('PostgreSQL', POSTGRES_URL)) && (await serviceAvailable('Redis', REDIS_URL));

/** An upstream answering 10 records, at once, or with `?id=…` only once the test releases it. */
async function heldUpstream() {
  const waiting = new Map<string, ServerResponse>();
  const answer = (response: ServerResponse) => response.writeHead(200, { 'content-type': 'application/json', 'x-records': '10' }).end('{"data":[]}');
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const id = new URL(request.url ?? '/', 'http://upstream').searchParams.get('id');
    if (id === null) answer(response);
    else waiting.set(id, response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    held: (id: string) => waiting.has(id),
    release(id: string) {
      const response = waiting.get(id);
      waiting.delete(id);
      if (response) answer(response);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const response of waiting.values()) response.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

describe.skipIf(!enabled)('units held for Redis while it is unreachable (keygate_counters_held_units)', () => {
  const dir = tempDir('keygate-held-units');
  const prefix = testRedisPrefix('held-units');
  let database: TestDatabase;
  let proxy: TcpProxy;
  let upstream: Awaited<ReturnType<typeof heldUpstream>>;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    database = await createTestDatabase('held_units');
    const store = openPostgresStore(database.url);
    await store.migrate();
    await store.close();
    upstream = await heldUpstream();
    proxy = await startTcpProxy(Number(new URL(REDIS_URL).port || 6379));
    const viaProxy = new URL(REDIS_URL);
    viaProxy.port = String(proxy.port);
    gateway = await startGateway(
      writeProfile(dir, 'held-units', {
        name: 'held-units',
        upstream: { url: upstream.url },
        store: database.url,
        counters: redisUrlWithPrefix(prefix, viaProxy.toString()),
        counterFailure: 'open',
        listen: { host: '127.0.0.1', port: 0 },
        admin: { listen: { host: '127.0.0.1', port: 0 } },
        dashboard: { enabled: false },
        errors: { envelope: 'message' },
        plans: { metered: { meters: { credits: { limit: 10_000 } } } },
        routes: [
          // Reserves `limit` credits, charges the records answered (10).
          { method: 'GET', path: '/v1/records', cost: { meter: 'credits', perRecord: 1, reserveFromQuery: 'limit', records: { header: 'x-records' } } },
          // Charged 7 at admission.
          { method: 'GET', path: '/v1/projects', cost: { meter: 'credits', perRequest: 7 } },
        ],
      }),
    );
  });

  beforeEach(() => {
    onTestFailed(() => console.error(gateway.output.filter((line) => !line.includes('"msg":"request"')).slice(-15).join('\n')));
  });

  afterAll(async () => {
    await gateway?.stop();
    await upstream?.close();
    await proxy?.cut();
    await deleteRedisKeys(prefix);
    await database?.drop();
  });

  /** The gauge's series as /metrics shows them now. */
  async function held(): Promise<Record<string, number>> {
    const text = await (await gateway.admin('/metrics')).text();
    return Object.fromEntries([...text.matchAll(/^keygate_counters_held_units\{state="([a-z_]+)"\} (\S+)$/gm)].map((m) => [m[1], Number(m[2])]));
  }

  /** Scrapes until the gauge shows `expected` (a settle lands just after its answer is sent); answers the last scrape. */
  async function heldWhen(expected: Record<string, number>): Promise<Record<string, number>> {
    let last: Record<string, number> = {};
    await eventually(async () => JSON.stringify((last = await held())) === JSON.stringify(expected), 15_000, 100);
    return last;
  }

  async function call(path: string, secret: string): Promise<number> {
    const response = await gateway.call(path, secret);
    await response.text();
    return response.status;
  }

  it('shows what the process holds for Redis, by state, while Redis is cut, and 0 again once Redis has taken it all', async () => {
    const { secret, accountId } = await provisionKey(gateway, 'metered');
    // Every state from 0, with Redis answering.
    expect(await held()).toEqual({ in_flight: 0, undelivered: 0, unreleased: 0 });

    // Admitted by Redis (25 credits reserved there); its answer waits upstream while Redis is cut.
    const reservedInRedis = gateway.call('/v1/records?limit=25&id=before-cut', secret);
    expect(await eventually(() => upstream.held('before-cut'))).toBe(true);
    const mark = gateway.output.length;
    await proxy.cut();
    expect(await gateway.waitForLog(/Redis is unreachable/, mark)).toBe(true);
    expect(await held()).toEqual({ in_flight: 0, undelivered: 0, unreleased: 0 });
    upstream.release('before-cut');
    expect((await reservedInRedis).status).toBe(200);
    // Its settle could not reach Redis: 10 credits charged are held, and its 25 reserved there wait to be released.
    expect(await heldWhen({ in_flight: 0, undelivered: 10, unreleased: 25 })).toEqual({ in_flight: 0, undelivered: 10, unreleased: 25 });

    // Admitted without Redis (fail-open): 7 each, held once answered; one still upstream is in flight.
    expect(await call('/v1/projects', secret)).toBe(200);
    expect(await call('/v1/projects', secret)).toBe(200);
    const inFlight = gateway.call('/v1/projects?id=during-cut', secret);
    expect(await eventually(() => upstream.held('during-cut'))).toBe(true);
    expect(await heldWhen({ in_flight: 7, undelivered: 24, unreleased: 25 })).toEqual({ in_flight: 7, undelivered: 24, unreleased: 25 });
    upstream.release('during-cut');
    expect((await inFlight).status).toBe(200);
    expect(await heldWhen({ in_flight: 0, undelivered: 31, unreleased: 25 })).toEqual({ in_flight: 0, undelivered: 31, unreleased: 25 });

    // Redis back: everything delivered and released, nothing held, no unit lost.
    const back = gateway.output.length;
    await proxy.restore();
    expect(await gateway.waitForLog(/units committed while Redis was unreachable are now recorded/, back, 15_000)).toBe(true);
    expect(await heldWhen({ in_flight: 0, undelivered: 0, unreleased: 0 })).toEqual({ in_flight: 0, undelivered: 0, unreleased: 0 });
    const usage = (await (await gateway.admin(`/v1/accounts/${accountId}/usage`)).json()) as { meters: { credits: { usage: number } } };
    expect(usage.meters.credits.usage).toBe(31);
  });
});
