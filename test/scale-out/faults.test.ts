/**
 * Faults, with real `keygate serve` processes: Redis goes away and comes back under a
 * fail-closed profile (503 in the API's envelope) and a fail-open one (per-process
 * limits, usage kept), and PostgreSQL becomes unreachable (keys in use keep working,
 * new keys get a 503). No process may crash, and each recovers by itself.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import pg from 'pg';
import { Redis } from 'ioredis';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfigInput } from '../../src/config/schema.js';
import { openPostgresStore } from '../../src/store/postgres/postgres-database.js';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from '../support/services.js';
import { startDemoUpstream } from '../support/keygate.js';
import { tempDir } from '../support/temp.js';
import { createTestDatabase, deleteRedisKeys, eventually, redisUrlWithPrefix, testRedisPrefix, type TestDatabase } from '../backends/isolation.js';
import {
  provisionKey,
  startGateway,
  startRedisServer,
  startTcpProxy,
  writeProfile,
  type GatewayProcess,
  type RedisServer,
  type TcpProxy,
} from './cluster.js';

const enabled = (await serviceAvailable('PostgreSQL', POSTGRES_URL)) && (await serviceAvailable('Redis', REDIS_URL));

const UNAVAILABLE = { message: 'Service temporarily unavailable. Try again shortly.' };
const RATE_LIMITED = { message: 'Too many requests. Slow down.' };

describe.skipIf(!enabled)('faults', () => {
  const dir = tempDir('keygate-faults');
  const prefix = testRedisPrefix('faults');
  const secrets: string[] = [];
  let database: TestDatabase;
  let redis: RedisServer;
  let proxy: TcpProxy;
  let upstream: { url: string; close(): Promise<void> };
  const gateways: GatewayProcess[] = [];
  let closed: GatewayProcess;
  let open1: GatewayProcess;
  let open2: GatewayProcess;
  let behindProxy: GatewayProcess;

  const profile = (overrides: Partial<ConfigInput>): ConfigInput => ({
    name: 'faults',
    upstream: { url: upstream.url },
    store: database.url,
    counters: redisUrlWithPrefix(prefix, redis.url),
    listen: { host: '127.0.0.1', port: 0 },
    admin: { listen: { host: '127.0.0.1', port: 0 } },
    dashboard: { enabled: false },
    errors: { envelope: 'message' },
    plans: {
      open: {},
      limited: { rateLimits: [{ limit: 5, window: '1h' }] },
      metered: { meters: { credits: { limit: 1000 } } },
    },
    routes: [{ method: 'GET', path: '/v1/rankings', cost: { meter: 'credits', perRequest: 100 } }, { path: '/v1/projects' }],
    ...overrides,
  });

  async function key(gateway: GatewayProcess, planId: string) {
    const issued = await provisionKey(gateway, planId);
    secrets.push(issued.secret);
    return issued;
  }

  async function statusAndBody(gateway: GatewayProcess, path: string, secret: string): Promise<{ status: number; body: unknown }> {
    const response = await gateway.call(path, secret);
    // A 503 says when to ask again.
    if (response.status === 503) expect(response.headers.get('retry-after')).toBe('5');
    return { status: response.status, body: await response.json() };
  }

  async function storedUsage(accountId: string): Promise<number> {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const result = await client.query<{ used: number }>('select used from meter_usage where account_id = $1', [accountId]);
      return result.rows.reduce((sum, row) => sum + Number(row.used), 0);
    } finally {
      await client.end();
    }
  }

  beforeAll(async () => {
    database = await createTestDatabase('faults');
    const store = openPostgresStore(database.url);
    await store.migrate();
    await store.close();
    redis = await startRedisServer();
    upstream = await startDemoUpstream();
    proxy = await startTcpProxy(Number(new URL(POSTGRES_URL).port || 5432));

    const viaProxy = new URL(database.url);
    viaProxy.port = String(proxy.port);
    const started = await Promise.all([
      startGateway(writeProfile(dir, 'closed', profile({ counterFailure: 'closed' }))),
      startGateway(writeProfile(dir, 'open', profile({ counterFailure: 'open' }))),
      startGateway(writeProfile(dir, 'open', profile({ counterFailure: 'open' }))),
      // Its store is reached through the proxy; its counters on the shared Redis.
      startGateway(
        writeProfile(dir, 'proxied', profile({ store: viaProxy.toString(), counters: redisUrlWithPrefix(prefix), keyCacheTtl: '1s', dashboard: { enabled: true, listen: { host: '127.0.0.1', port: 0 } } })),
      ),
    ]);
    gateways.push(...started);
    [closed, open1, open2, behindProxy] = started as [GatewayProcess, GatewayProcess, GatewayProcess, GatewayProcess];
  });

  beforeEach(() => {
    // What the processes said is the first thing to read when a fault test fails.
    onTestFailed(() => {
      for (const g of gateways) console.error(`--- ${g.gatewayUrl}\n${g.output.filter((line) => !line.includes('"msg":"request"')).slice(-15).join('\n')}`);
    });
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    for (const g of gateways) for (const secret of secrets) expect(g.output.join('\n')).not.toContain(secret);
    await upstream?.close();
    await redis?.kill();
    await proxy?.cut();
    await database?.drop();
    await deleteRedisKeys(prefix);
  });

  it('fails closed while Redis is down: 503 in the API\'s envelope, no crash, and recovers when Redis returns', async () => {
    const { secret } = await key(closed, 'limited');
    const unlimited = await key(closed, 'open');
    expect((await closed.call('/v1/projects', secret)).status).toBe(200);

    await redis.kill();
    expect(await eventually(async () => (await closed.call('/v1/projects', secret)).status === 503)).toBe(true);
    expect(await statusAndBody(closed, '/v1/projects', secret)).toEqual({ status: 503, body: UNAVAILABLE });
    // A plan with nothing to count does not need Redis.
    expect((await closed.call('/v1/projects', unlimited.secret)).status).toBe(200);
    expect(closed.alive()).toBe(true);
    // Alive, and says why it refuses: a load balancer reading /health/ready takes it out.
    const down = await closed.admin('/health');
    expect({ status: down.status, body: await down.json() }).toMatchObject({ status: 200, body: { status: 'unavailable', store: 'ok', counters: 'unreachable' } });
    expect((await closed.admin('/health/ready')).status).toBe(503);
    expect(await (await closed.admin('/metrics')).text()).toContain('keygate_backend_up{backend="counters"} 0');

    await redis.start();
    expect(await eventually(async () => (await closed.call('/v1/projects', secret)).status === 200, 10_000)).toBe(true);
    expect(closed.alive()).toBe(true);
    expect((await closed.admin('/health/ready')).status).toBe(200);
  });

  it('fails open while Redis is down: each process limits on its own, keeps the usage, and shares limits again when Redis returns', async () => {
    const outage = await key(open1, 'limited');
    const after = await key(open1, 'limited');
    const metered = await key(open1, 'metered');
    // Both processes are on Redis again after the previous outage.
    for (const g of [open1, open2]) expect(await g.waitForLog(/Redis answers again/)).toBe(true);

    const mark = [open1.output.length, open2.output.length] as const;
    await redis.kill();
    expect(await open1.waitForLog(/Redis is unreachable: admitting on per-process limits/, mark[0])).toBe(true);
    expect(await open2.waitForLog(/Redis is unreachable: admitting on per-process limits/, mark[1])).toBe(true);

    for (const g of [open1, open2]) {
      const statuses: number[] = [];
      for (let i = 0; i < 8; i += 1) statuses.push((await g.call('/v1/projects', outage.secret)).status);
      // Five per process: the limit holds in each, not across them.
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    }
    expect(await statusAndBody(open1, '/v1/projects', outage.secret)).toEqual({ status: 429, body: RATE_LIMITED });
    for (let i = 0; i < 3; i += 1) expect((await open1.call('/v1/rankings?limit=3', metered.secret)).status).toBe(200);
    expect(open1.alive() && open2.alive()).toBe(true);
    // Serving on its own limits: degraded, still ready.
    const degraded = await open1.admin('/health/ready');
    expect({ status: degraded.status, body: await degraded.json() }).toMatchObject({ status: 200, body: { status: 'degraded', counters: 'unreachable' } });

    const back = [open1.output.length, open2.output.length] as const;
    await redis.start();
    expect(await open1.waitForLog(/Redis answers again/, back[0])).toBe(true);
    expect(await open2.waitForLog(/Redis answers again/, back[1])).toBe(true);

    // Shared again: five in all across both processes.
    const statuses = [];
    for (let i = 0; i < 10; i += 1) statuses.push((await (i % 2 === 0 ? open1 : open2).call('/v1/projects', after.secret)).status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(5);

    // The 300 credits spent during the outage reach Redis and then PostgreSQL.
    expect(await eventually(async () => (await storedUsage(metered.accountId)) === 300, 10_000, 200)).toBe(true);
    const usage = (await (await open2.admin(`/v1/accounts/${metered.accountId}/usage`)).json()) as { meters: { credits: { usage: number } } };
    expect(usage.meters.credits.usage).toBe(300);
  });

  it('fails open from the store\'s balance: a process that never charged a meter does not start it from nothing', async () => {
    const metered = await key(open1, 'metered');
    // 900 of 1,000 credits spent through one process, and written to PostgreSQL.
    for (let i = 0; i < 9; i += 1) expect((await open1.call('/v1/rankings', metered.secret)).status).toBe(200);
    expect(await eventually(async () => (await storedUsage(metered.accountId)) === 900, 10_000, 200)).toBe(true);
    // The other process knows the key, but has never charged its meter.
    expect((await open2.call('/v1/projects', metered.secret)).status).toBe(200);

    const mark = open2.output.length;
    await redis.kill();
    expect(await open2.waitForLog(/Redis is unreachable: admitting on per-process limits/, mark)).toBe(true);
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 3; i += 1) statuses.push((await open2.call('/v1/rankings', metered.secret)).status);
      expect(statuses).toEqual([200, 402, 402]);
      // Its own answers count what it charged on top of the store's balance.
      const usage = (await (await open2.admin(`/v1/accounts/${metered.accountId}/usage`)).json()) as { meters: { credits: { usage: number } } };
      expect(usage.meters.credits.usage).toBe(1_000);
    } finally {
      const back = [open1.output.length, open2.output.length] as const;
      await redis.start();
      expect(await open1.waitForLog(/Redis answers again/, back[0])).toBe(true);
      expect(await open2.waitForLog(/Redis answers again/, back[1])).toBe(true);
    }
    expect(await eventually(async () => (await storedUsage(metered.accountId)) === 1_000, 10_000, 200)).toBe(true);
  });

  it('answers on the deadline when Redis is slow (a 503, not a wait), and releases what the late answer reserved', async () => {
    const { secret } = await key(closed, 'metered');
    expect((await closed.call('/v1/rankings', secret)).status).toBe(200); // 100 of 1000 credits used

    const client = new Redis(redis.url);
    try {
      // Redis holds every write for 2.5 s: the admission waits for it no longer than its deadline (1 s).
      await client.call('CLIENT', 'PAUSE', '2500', 'WRITE');
      const started = performance.now();
      expect(await statusAndBody(closed, '/v1/rankings', secret)).toEqual({ status: 503, body: UNAVAILABLE });
      expect(performance.now() - started).toBeLessThan(2_400);
    } finally {
      client.disconnect();
    }
    expect(closed.alive()).toBe(true);

    // The paused admission was carried out once Redis went on, after its request had its
    // answer: its 100 credits must be given back, leaving 900 for 9 more requests.
    expect(await eventually(async () => (await closed.call('/v1/rankings', secret)).status === 200, 10_000)).toBe(true);
    const statuses: number[] = [];
    for (let i = 0; i < 9; i++) statuses.push((await closed.call('/v1/rankings', secret)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 402]);
  });

  it('says it is ready again only once it admits requests again, after Redis stalled', async () => {
    const { secret } = await key(closed, 'metered');
    expect((await closed.call('/v1/rankings', secret)).status).toBe(200);
    const client = new Redis(redis.url);
    try {
      await client.call('CLIENT', 'PAUSE', '1500', 'WRITE');
      expect((await closed.call('/v1/rankings', secret)).status).toBe(503);
      expect((await closed.admin('/health/ready')).status).toBe(503);
    } finally {
      client.disconnect();
    }
    // A load balancer puts the process back when /health/ready answers 200: the next
    // request must be admitted, not refused for a pause the readiness check did not see.
    expect(await eventually(async () => (await closed.admin('/health/ready')).status === 200, 10_000, 5)).toBe(true);
    expect((await closed.call('/v1/rankings', secret)).status).toBe(200);
  });

  it('neither forwards nor charges a request whose client hung up while it waited for Redis', async () => {
    const { secret } = await key(closed, 'metered');
    const client = new Redis(redis.url);
    try {
      // Redis holds the admission for 0.5 s (within its deadline); the client leaves after 0.15 s.
      await client.call('CLIENT', 'PAUSE', '500', 'WRITE');
      const socket = connect(Number(new URL(closed.gatewayUrl).port), '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(`GET /v1/rankings HTTP/1.1\r\nHost: keygate\r\nAuthorization: Bearer ${secret}\r\n\r\n`);
      await sleep(150);
      socket.destroy();
      // Redis goes on and admits it, after the client left.
      await sleep(700);
    } finally {
      client.disconnect();
    }
    expect(closed.alive()).toBe(true);
    // All 1000 credits are still there: 10 requests of 100, then a 402.
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) statuses.push((await closed.call('/v1/rankings', secret)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 402]);
  });

  it('keeps serving keys already in use while PostgreSQL is unreachable; new keys get a 503; recovers', async () => {
    const inUse = await key(behindProxy, 'open');
    const fresh = await key(behindProxy, 'open');
    expect((await behindProxy.call('/v1/projects', inUse.secret)).status).toBe(200);

    const logsBefore = behindProxy.output.length;
    await proxy.cut();
    // Past the 1 s cache TTL: the cached entry has expired and the store cannot be asked.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await statusAndBody(behindProxy, '/v1/projects', inUse.secret)).toMatchObject({ status: 200, body: { data: expect.any(Array) } });
    expect(await statusAndBody(behindProxy, '/v1/projects', fresh.secret)).toEqual({ status: 503, body: UNAVAILABLE });
    expect(behindProxy.alive()).toBe(true);
    // The operator is told why new keys are refused, once, never the key.
    expect(await behindProxy.waitForLog(/the store did not answer a key lookup: keys not in this process's key cache are refused \(service_unavailable, 503\)/, logsBefore, 5_000)).toBe(true);
    expect(behindProxy.output.slice(logsBefore).join('\n')).not.toContain(fresh.secret.slice(8));
    // The metrics show requests waiting on a store that does not answer.
    expect(await (await behindProxy.admin('/metrics')).text()).toMatch(/keygate_key_store_lookups_total\{result="failed"\} [1-9]/);
    const down = await behindProxy.admin('/health');
    expect({ status: down.status, body: await down.json() }).toMatchObject({ status: 200, body: { status: 'unavailable', store: 'unreachable' } });
    expect((await behindProxy.admin('/health/ready')).status).toBe(503);
    // The admin API says it is an outage to retry, not an error of keygate's.
    const read = await behindProxy.admin('/v1/accounts?limit=1');
    expect({ status: read.status, retryAfter: read.headers.get('retry-after'), body: await read.json() }).toMatchObject({
      status: 503,
      retryAfter: '5',
      body: { title: 'Service Unavailable', detail: 'The store (postgres) is not reachable; try again once it is back.' },
    });
    // A change may have been made in part: not to be sent again blindly.
    const change = await behindProxy.admin(`/v1/keys/${fresh.keyId}/revoke`, { method: 'POST' });
    expect({ status: change.status, retryAfter: change.headers.get('retry-after'), body: await change.json() }).toMatchObject({
      status: 503,
      retryAfter: null,
      body: { detail: 'The store (postgres) is not reachable; this change may or may not have been made: once it is back, check before sending it again.' },
    });
    // So does the dashboard, in a page: a signed-in member's next page (any session cookie
    // is looked up in the store)...
    const dashboardUrl = behindProxy.dashboardUrl as string;
    const page = await fetch(`${dashboardUrl}/keys`, { headers: { cookie: 'kg_session=a-session-only-the-store-knows' }, redirect: 'manual' });
    expect({ status: page.status, retryAfter: page.headers.get('retry-after'), type: page.headers.get('content-type') }).toEqual({
      status: 503,
      retryAfter: '5',
      type: 'text/html; charset=utf-8',
    });
    expect(await page.text()).toContain('It cannot reach its data right now. Try again in a moment.');
    // ... and a form (signing in: its page and token need no store, checking the password does).
    const form = await fetch(`${dashboardUrl}/sign-in`);
    expect(form.status).toBe(200);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1] ?? '';
    const formCookie = form.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ');
    const signIn = await fetch(`${dashboardUrl}/sign-in`, {
      method: 'POST',
      headers: { cookie: formCookie, 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
      body: new URLSearchParams({ _csrf: csrf, email: 'someone@example.com', password: 'a password' }).toString(),
      redirect: 'manual',
    });
    expect({ status: signIn.status, retryAfter: signIn.headers.get('retry-after') }).toEqual({ status: 503, retryAfter: null });
    expect(await signIn.text()).toContain('If this was a change, it may or may not have been made');

    await proxy.restore();
    expect(await eventually(async () => (await behindProxy.call('/v1/projects', fresh.secret)).status === 200, 10_000, 100)).toBe(true);
    expect(behindProxy.alive()).toBe(true);
    // The usage of the requests served meanwhile failed to be written, then was: both are said.
    expect(await behindProxy.waitForLog(/could not write usage to the store; will retry/, logsBefore, 10_000)).toBe(true);
    expect(await behindProxy.waitForLog(/usage written to the store again/, logsBefore, 10_000)).toBe(true);
  });

  it('answers a new key within its lookup deadline while PostgreSQL hangs (a 503, not the 10 s query timeout), and takes it once PostgreSQL answers', async () => {
    const fresh = await key(behindProxy, 'open');
    proxy.stall();
    try {
      const started = performance.now();
      expect(await statusAndBody(behindProxy, '/v1/projects', fresh.secret)).toEqual({ status: 503, body: UNAVAILABLE });
      // The deadline is 2 s; PostgreSQL's query timeout, 10 s.
      expect(performance.now() - started).toBeLessThan(8_000);
    } finally {
      proxy.resume();
    }
    expect(await eventually(async () => (await behindProxy.call('/v1/projects', fresh.secret)).status === 200, 10_000, 100)).toBe(true);
    expect(behindProxy.alive()).toBe(true);
  });
});
