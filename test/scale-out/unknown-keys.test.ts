/**
 * auth.unknownKeys on Redis counters: two `keygate serve` processes on one PostgreSQL
 * database and one private redis-server count an address's unknown keys together. The
 * address is blocked after `limit` unknown keys in all (not per process), both refuse it,
 * a valid key cached in either still works from it, the admin API of either lists the
 * block and lifts it in both; how soon the other process refuses before a lookup is
 * measured; a lift the second missed (it reaches Redis through a TCP proxy the test
 * cuts) is made up for when it listens again; a block the second began alone while cut
 * off is handed to Redis once it answers, and so refused and listed by the first; Redis's
 * keys for it all expire; with
 * Redis away each process counts alone, valid keys are served, its admin API's list says
 * it holds this process's blocks alone, a lift of a block it holds says it reached this
 * process alone, and a lift of a block the process does not hold answers 503.
 *
 * Clients are told apart by X-Forwarded-For (loopback is a trusted proxy), each test its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { configSchema, type ConfigInput } from '../../src/config/schema.js';
import { createKeyFormat } from '../../src/keys/format.js';
import { UNKNOWN_KEY } from '../../src/counters/redis/scripts.js';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from '../support/services.js';
import { startDemoUpstream } from '../support/keygate.js';
import { runCli } from '../support/cli.js';
import { monitorRedis } from '../support/redis-monitor.js';
import { tempDir } from '../support/temp.js';
import { createTestDatabase, eventually, redisUrlWithPrefix, testRedisPrefix, type TestDatabase } from '../backends/isolation.js';
import { provisionKey, startGateway, startRedisServer, startTcpProxy, writeProfile, type GatewayProcess, type RedisServer, type TcpProxy } from './cluster.js';

const enabled = (await serviceAvailable('PostgreSQL', POSTGRES_URL)) && (await serviceAvailable('Redis', REDIS_URL));

const LIMIT = 4;

describe.skipIf(!enabled)('auth.unknownKeys shared by two processes on Redis counters', () => {
  const dir = tempDir('keygate-unknown-keys-shared');
  const prefix = testRedisPrefix('unknown-keys');
  const secrets: string[] = [];
  let database: TestDatabase;
  let redis: RedisServer;
  let upstream: { url: string; close(): Promise<void> };
  let profileFile: string;
  /** The second process's way to Redis (the first's is direct). */
  let proxy: TcpProxy;
  const gateways: GatewayProcess[] = [];

  const profile = (redisUrl = redis.url): ConfigInput => ({
    name: 'unknown-keys-shared',
    upstream: { url: upstream.url },
    store: database.url,
    counters: redisUrlWithPrefix(prefix, redisUrl),
    counterFailure: 'open',
    keyCacheTtl: '60s',
    trustedProxies: ['127.0.0.1'],
    auth: { unknownKeys: { limit: LIMIT, window: '1m', block: '10m' } },
    listen: { host: '127.0.0.1', port: 0 },
    admin: { listen: { host: '127.0.0.1', port: 0 } },
    dashboard: { enabled: false },
    errors: { envelope: 'jsonapi' },
    plans: { open: {} },
    routes: [{ path: '/v1/projects' }],
  });
  /** A key of the profile's format that was never issued. */
  const madeUp = () => createKeyFormat(configSchema.parse(profile()).keys).generate('live');

  const [first, second] = [() => gateways[0] as GatewayProcess, () => gateways[1] as GatewayProcess];
  const call = async (gateway: GatewayProcess, secret: string, client: string) => {
    const response = await fetch(`${gateway.gatewayUrl}/v1/projects`, { headers: { authorization: `Bearer ${secret}`, 'x-forwarded-for': client } });
    return { status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.text() };
  };
  /** The admin API's list: where it comes from (Redis, or this process's copies alone) and the blocks. */
  const listOf = async (gateway: GatewayProcess) => (await (await gateway.admin('/v1/address-blocks')).json()) as { from: string; blocks: { address: string; unknownKeys: number }[] };
  const blocksOf = async (gateway: GatewayProcess) => (await listOf(gateway)).blocks;
  const unknownLookups = async (gateway: GatewayProcess) => {
    const text = await (await gateway.admin('/metrics')).text();
    const line = text.split('\n').find((l) => l.startsWith('keygate_key_store_lookups_total{result="unknown"}'));
    return Number(line?.split(' ')[1] ?? 0);
  };
  const key = async (name: string) => {
    const issued = await provisionKey(first(), 'open', name);
    secrets.push(issued.secret);
    return issued.secret;
  };

  beforeAll(async () => {
    database = await createTestDatabase('unknown_keys_shared');
    redis = await startRedisServer();
    upstream = await startDemoUpstream();
    profileFile = writeProfile(dir, 'unknown-keys-shared', profile());
    expect((await runCli(['migrate', '--config', profileFile])).code).toBe(0);
    proxy = await startTcpProxy(redis.port);
    gateways.push(await startGateway(profileFile));
    gateways.push(await startGateway(writeProfile(dir, 'unknown-keys-shared-proxied', profile(`redis://127.0.0.1:${proxy.port}`))));
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    for (const g of gateways) for (const secret of secrets) expect(g.output.join('\n')).not.toContain(secret);
    await upstream?.close();
    await proxy?.cut();
    await redis?.kill();
    await database?.drop();
  });

  it('blocks an address after `limit` unknown keys in all, sent alternately to both; both refuse it, a cached valid key works in both, and a lift through one lifts it in both', async () => {
    const client = '203.0.113.10';
    const valid = await key('cached');
    // Cached in both processes before the block.
    for (const gateway of gateways) expect((await call(gateway, valid, client)).status).toBe(200);

    for (let i = 0; i < LIMIT; i++) expect((await call(gateways[i % 2] as GatewayProcess, madeUp(), client)).status).toBe(401);
    // Per process that would be 2 each; together it is the limit: both refuse now.
    for (const gateway of [first(), second()]) {
      const refused = await call(gateway, madeUp(), client);
      expect(refused.status).toBe(429);
      expect(JSON.parse(refused.body)).toMatchObject({ errors: [{ code: 'too_many_failures' }] });
      expect(Number(refused.retryAfter)).toBeGreaterThan(590);
    }
    // The valid key, cached, is judged as usual from the blocked address, in both, and a
    // valid key not cached yet (from another address) is found in the store: neither asks
    // Redis anything (watched with MONITOR, between two markers it must see).
    const fresh = await key('fresh');
    const monitor = await monitorRedis(redis.url);
    const seen = () => monitor.seen.map((command) => command.args);
    try {
      const startMarker = `${prefix}monitor-start`;
      const marker = new Redis(redis.url);
      await marker.get(startMarker);
      marker.disconnect();
      expect(await eventually(() => seen().some((args) => args.includes(startMarker)))).toBe(true);
      const from = seen().length;
      for (const gateway of gateways) expect((await call(gateway, valid, client)).status).toBe(200);
      for (const gateway of gateways) expect((await call(gateway, fresh, '203.0.113.11')).status).toBe(200);
      // An unknown key from yet another address: its count is the end marker.
      expect((await call(first(), madeUp(), '203.0.113.12')).status).toBe(401);
      expect(await eventually(() => seen().some((args) => args.includes('203.0.113.12')))).toBe(true);
      const during = seen().slice(from).filter((args) => !args.includes('203.0.113.12'));
      expect(during.filter((args) => args.includes(UNKNOWN_KEY.sha) || args.some((arg) => arg.includes(client) || arg.includes('203.0.113.11')))).toEqual([]);
    } finally {
      monitor.close();
    }
    // Either admin API lists the one shared block.
    for (const gateway of gateways) expect(await listOf(gateway)).toMatchObject({ from: 'shared', blocks: [expect.objectContaining({ address: client, unknownKeys: LIMIT })] });
    // One block, begun (and logged) by the process whose request reached the limit.
    const warned = gateways.map((g) => g.output.filter((line) => line.includes('client address blocked')).length);
    expect(warned.reduce((a, b) => a + b)).toBe(1);

    const lifted = await second().admin(`/v1/address-blocks/${client}`, { method: 'DELETE' });
    expect(lifted.status).toBe(200);
    // Lifted in Redis, so in every process, and said so.
    expect(await lifted.json()).toMatchObject({ address: client, unknownKeys: LIMIT, from: 'shared' });
    for (const gateway of gateways) expect(await blocksOf(gateway)).toEqual([]);
    // The first process drops its copy on the Redis message (a refusal there is not counted, so asking again is harmless).
    expect(await eventually(async () => (await call(first(), madeUp(), client)).status === 401)).toBe(true);
    expect((await call(second(), madeUp(), client)).status).toBe(401);
    // No block now: 404, and the count since the lift stays.
    expect((await second().admin(`/v1/address-blocks/${client}`, { method: 'DELETE' })).status).toBe(404);
    // Counted afresh, in all: two counted above, two more reach the limit again.
    expect((await call(first(), madeUp(), client)).status).toBe(401);
    expect((await call(second(), madeUp(), client)).status).toBe(401);
    expect((await call(first(), madeUp(), client)).status).toBe(429);
    expect((await call(second(), madeUp(), client)).status).toBe(429);
  });

  it('the other process refuses a blocked address before its store lookup once the Redis message arrives (measured)', async () => {
    const client = '203.0.113.20';
    for (let i = 0; i < LIMIT - 1; i++) expect((await call(first(), madeUp(), client)).status).toBe(401);
    let lookups = await unknownLookups(second());
    // The key that begins the block, then at once the other process, until it refuses without a lookup.
    expect((await call(first(), madeUp(), client)).status).toBe(401);
    const blockedAt = performance.now();
    let learnedAfterMs: number | undefined;
    let attempts = 0;
    const learned = await eventually(async () => {
      attempts += 1;
      const answer = await call(second(), madeUp(), client);
      const answeredAfterMs = performance.now() - blockedAt;
      expect(answer.status).toBe(429);
      const now = await unknownLookups(second());
      if (now !== lookups) {
        lookups = now;
        return false;
      }
      learnedAfterMs = answeredAfterMs;
      return true;
    });
    expect(learned).toBe(true);
    // The message's trip through Redis: here the first request sent after the block's answer (a loopback round trip) was refused so.
    console.log(`unknown-keys: the second process refused before a lookup ${learnedAfterMs?.toFixed(1)} ms after the first answered the key that began the block (attempt ${attempts})`);
  });

  it("refuses a block whose message it never heard, from Redis's answer after the lookup, and before the lookup from then on", async () => {
    const client = '203.0.113.40';
    // A block as another process's script leaves it, its message lost.
    const writer = new Redis(redis.url);
    try {
      const now = Date.now();
      await writer.hset(`${prefix}ukb:${client}`, { unknownKeys: LIMIT, startedAt: now, endsAt: now + 600_000 });
      await writer.pexpire(`${prefix}ukb:${client}`, 660_000);
    } finally {
      writer.disconnect();
    }
    const before = await unknownLookups(second());
    const refused = await call(second(), madeUp(), client);
    expect(refused.status).toBe(429);
    expect(Number(refused.retryAfter)).toBeGreaterThan(590);
    expect(await unknownLookups(second())).toBe(before + 1);
    expect((await call(second(), madeUp(), client)).status).toBe(429);
    expect(await unknownLookups(second())).toBe(before + 1);
  });

  it('a lift the second process missed (its subscription was down) is made up for when it listens again: the lifted address is served there, a block still in force is refused before any lookup', async () => {
    const [lifted, kept] = ['203.0.113.50', '203.0.113.51'];
    for (const client of [lifted, kept]) for (let i = 0; i < LIMIT; i++) expect((await call(first(), madeUp(), client)).status).toBe(401);
    /** The second refuses `client` from its copy: 429, and no store lookup. */
    const refusedBeforeLookup = async (client: string) => {
      const before = await unknownLookups(second());
      return (await call(second(), madeUp(), client)).status === 429 && (await unknownLookups(second())) === before;
    };
    for (const client of [lifted, kept]) expect(await eventually(() => refusedBeforeLookup(client))).toBe(true);
    const mark = second().output.length;
    await proxy.cut();
    try {
      expect(await second().waitForLog(/Redis is unreachable/, mark)).toBe(true);
      // Lifted through the first while the second hears nothing: the message never reaches it.
      expect((await first().admin(`/v1/address-blocks/${lifted}`, { method: 'DELETE' })).status).toBe(200);
    } finally {
      await proxy.restore();
    }
    // Listening again, it reads the blocks in force from Redis: the lifted address is counted (401) again.
    expect(await eventually(async () => (await call(second(), madeUp(), lifted)).status === 401, 10_000)).toBe(true);
    expect(await refusedBeforeLookup(kept)).toBe(true);
  });

  it('a block the second process began alone while cut off from Redis is handed to Redis once it answers: the first refuses the address before any lookup, and its admin API lists it (shared)', async () => {
    const client = '203.0.113.60';
    const mark = second().output.length;
    await proxy.cut();
    try {
      expect(await second().waitForLog(/Redis is unreachable/, mark)).toBe(true);
      for (let i = 0; i < LIMIT; i++) expect((await call(second(), madeUp(), client)).status).toBe(401);
      expect((await call(second(), madeUp(), client)).status).toBe(429);
      // Redis never heard of it: the first neither lists nor refuses it (nothing is counted here: a list only reads).
      expect((await listOf(first())).blocks.filter((block) => block.address === client)).toEqual([]);
    } finally {
      await proxy.restore();
    }
    // Answering again, the second hands its block to Redis: every process's list shows it.
    const listedByFirst = async () => {
      const listed = await listOf(first());
      return listed.from === 'shared' && listed.blocks.some((block) => block.address === client && block.unknownKeys === LIMIT);
    };
    expect(await eventually(listedByFirst, 10_000)).toBe(true);
    // And the first refuses it from its copy (the block's message), before any lookup.
    const refusedBeforeLookup = async () => {
      const before = await unknownLookups(first());
      return (await call(first(), madeUp(), client)).status === 429 && (await unknownLookups(first())) === before;
    };
    expect(await eventually(refusedBeforeLookup)).toBe(true);
    expect(await second().waitForLog(/counted for all processes again/, mark)).toBe(true);
  });

  it("keeps Redis bounded: every key it holds for unknown keys expires (by the window or the block), and a flood of addresses holds fewer than `limit` times each", async () => {
    for (let i = 0; i < 50; i++) expect((await call(gateways[i % 2] as GatewayProcess, madeUp(), `198.51.100.${i}`)).status).toBe(401);
    const reader = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await reader.connect();
    try {
      const keys = await reader.keys(`${prefix}uk*`);
      expect(keys.length).toBeGreaterThan(50);
      for (const name of keys) {
        const ttl = await reader.pttl(name);
        expect(ttl, name).toBeGreaterThan(0);
        // Lists: the window (1 m) plus slack; blocks and the set: the block (10 m) plus slack.
        expect(ttl, name).toBeLessThanOrEqual(11 * 60_000);
        if ((await reader.type(name)) === 'list') expect(await reader.llen(name)).toBeLessThan(LIMIT);
      }
    } finally {
      reader.disconnect();
    }
  });

  it('with Redis away, each process counts on its own (said once in its log), serves valid keys, and answers a lift of a block it does not hold 503 (its own block: 200)', async () => {
    const client = '203.0.113.30';
    const cached = await key('cached-before-outage');
    for (const gateway of gateways) expect((await call(gateway, cached, client)).status).toBe(200);
    const fresh = await key('fresh-in-outage');
    await redis.kill();
    try {
      for (let i = 0; i < LIMIT; i++) expect((await call(first(), madeUp(), client)).status).toBe(401);
      expect((await call(first(), madeUp(), client)).status).toBe(429);
      // The second process counted none of them.
      expect((await call(second(), madeUp(), client)).status).toBe(401);
      // Valid keys: cached, from the blocked address too; looked up for the first time,
      // from the address where it is not blocked (the second process) and from another.
      for (const gateway of gateways) expect((await call(gateway, cached, client)).status).toBe(200);
      expect((await call(second(), fresh, client)).status).toBe(200);
      expect((await call(first(), fresh, '203.0.113.31')).status).toBe(200);
      // The process's log reaches its stdout a moment after the answers (written from a queue, never waited for).
      const onItsOwn = () => first().output.filter((line) => line.includes('unknown keys (auth.unknownKeys) are counted by each process on its own'));
      expect(await eventually(() => onItsOwn().length > 0 && first().output.some((line) => line.includes('client address blocked')))).toBe(true);
      expect(onItsOwn()).toHaveLength(1);
      // The admin API answers for this process meanwhile, and says so.
      const [ownList, otherList] = [await listOf(first()), await listOf(second())];
      expect([ownList.from, otherList.from]).toEqual(['this-process-redis-away', 'this-process-redis-away']);
      expect(ownList.blocks.filter((block) => block.address === client)).toEqual([expect.objectContaining({ unknownKeys: LIMIT })]);
      expect(otherList.blocks.filter((block) => block.address === client)).toEqual([]);
      // A lift: the second holds no block of the address, and the shared one cannot be
      // reached: 503 in problem details, as the OpenAPI document says, and nothing audited.
      const refused = await second().admin(`/v1/address-blocks/${client}`, { method: 'DELETE' });
      expect({ status: refused.status, retryAfter: refused.headers.get('retry-after'), type: refused.headers.get('content-type'), body: await refused.json() }).toEqual({
        status: 503,
        retryAfter: '5',
        type: 'application/problem+json; charset=utf-8',
        body: { type: 'about:blank', title: 'Service Unavailable', status: 503, detail: 'counters backend unavailable: Redis is not reachable; try again once it is back.' },
      });
      const documented = (await (await fetch(`${second().adminUrl}/openapi.json`)).json()) as { paths: Record<string, Record<string, { responses: Record<string, object> }>> };
      expect(documented.paths['/v1/address-blocks/{address}']?.delete?.responses['503']).toMatchObject({ headers: { 'Retry-After': expect.anything() }, content: { 'application/problem+json': expect.anything() } });
      const unblocked = ((await (await second().admin('/v1/audit')).json()) as { action: string; detail?: { address?: string } }[]).filter((event) => event.action === 'address.unblocked' && event.detail?.address === client);
      expect(unblocked).toEqual([]);
      // The first lifts the block it began on its own: 200, in this process only, and it
      // says so (as does its audit entry), not a lift in every process.
      const ownLifted = await first().admin(`/v1/address-blocks/${client}`, { method: 'DELETE' });
      expect([ownLifted.status, await ownLifted.json()]).toEqual([200, expect.objectContaining({ address: client, unknownKeys: LIMIT, from: 'this-process-redis-away' })]);
      expect((await call(first(), madeUp(), client)).status).toBe(401);
      const audited = ((await (await first().admin('/v1/audit')).json()) as { action: string; detail?: { address?: string; from?: string } }[]).filter((event) => event.action === 'address.unblocked' && event.detail?.address === client);
      expect(audited.map((event) => event.detail?.from)).toEqual(['this-process-redis-away']);
    } finally {
      await redis.start();
    }
  });
});
