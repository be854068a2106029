/**
 * A process that starts without its counters backend (a mistyped Redis URL, a Redis not
 * up yet) serves in the failure mode, and its start line says so: an operator who waits
 * for "keygate is serving" after a deploy sees a warning naming why it is not ready,
 * rather than the info line of a healthy start.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { openPostgresStore } from '../../src/store/postgres/postgres-database.js';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from '../support/services.js';
import { namedPort } from '../support/ports.js';
import { tempDir } from '../support/temp.js';
import { createTestDatabase, deleteRedisKeys, eventually, redisUrlWithPrefix, testRedisPrefix, type TestDatabase } from '../backends/isolation.js';
import { provisionKey, startGateway, startRedisServer, writeProfile, type GatewayProcess } from './cluster.js';

const enabled = (await serviceAvailable('PostgreSQL', POSTGRES_URL)) && (await serviceAvailable('Redis', REDIS_URL));

interface StartLine {
  level: number;
  msg: string;
  status?: string;
  reason?: string;
}

describe.skipIf(!enabled)('the start line of a process whose Redis is unreachable', () => {
  const dir = tempDir('keygate-start-unready');
  const prefix = testRedisPrefix('start-unready');
  let database: TestDatabase;
  let nothingThere: string;
  const gateways: GatewayProcess[] = [];

  const profile = (counters: string, counterFailure: 'open' | 'closed'): ConfigInput => ({
    name: 'start-unready',
    upstream: { url: 'http://127.0.0.1:9' },
    store: database.url,
    counters,
    counterFailure,
    listen: { host: '127.0.0.1', port: 0 },
    admin: { listen: { host: '127.0.0.1', port: 0 } },
    dashboard: { enabled: false },
    plans: { limited: { rateLimits: [{ limit: 5, window: '1s' }] } },
    routes: [{ path: '/v1/*' }],
  });

  async function start(name: string, counters: string, counterFailure: 'open' | 'closed'): Promise<{ gateway: GatewayProcess; line: StartLine }> {
    const gateway = await startGateway(writeProfile(dir, name, profile(counters, counterFailure)));
    gateways.push(gateway);
    const line = gateway.output.find((l) => l.includes('keygate is serving')) as string;
    return { gateway, line: JSON.parse(line) as StartLine };
  }

  beforeAll(async () => {
    database = await createTestDatabase('start_unready');
    const store = openPostgresStore(database.url);
    await store.migrate();
    await store.close();
    // A port nothing listens on: connections to it are refused, as with a mistyped port.
    nothingThere = redisUrlWithPrefix(prefix, `redis://127.0.0.1:${await namedPort()}/`);
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await database?.drop();
    await deleteRedisKeys(prefix);
  });

  it('counterFailure closed: a warning that it is not ready, with the reason /health/ready gives', async () => {
    const { gateway, line } = await start('closed', nothingThere, 'closed');
    const ready = await fetch(`${gateway.adminUrl}/health/ready`);
    const health = (await ready.json()) as { status: string; reason: string };
    expect(ready.status).toBe(503);
    expect(line).toMatchObject({ level: 40, status: 'unavailable', reason: health.reason });
    expect(line.msg).toBe(`keygate is serving, but not ready: ${health.reason}; /health/ready answers 503 until it is`);
    // The outage line says which requests it refuses: not all of them (one with nothing to count is served).
    const outage = gateway.output.map((l) => JSON.parse(l) as StartLine).find((l) => l.msg.startsWith('Redis is unreachable'));
    expect(outage?.msg).toBe('Redis is unreachable: requests with a rate limit, block policy or cost are refused (service_unavailable) until it answers (counterFailure: closed); requests with none are served');
  });

  it('counterFailure open: a warning that it serves degraded, on per-process limits', async () => {
    const { gateway, line } = await start('open', nothingThere, 'open');
    const ready = await fetch(`${gateway.adminUrl}/health/ready`);
    const health = (await ready.json()) as { status: string; reason: string };
    expect([ready.status, health.status]).toEqual([200, 'degraded']);
    expect(line).toMatchObject({ level: 40, status: 'degraded', reason: health.reason });
    expect(line.msg).toBe(`keygate is serving, but degraded: ${health.reason}`);
  });

  it('Redis refusing the connection (a wrong password): the start line and /health/ready say what it answered, not that it is not reachable', async () => {
    const wrong = new URL(redisUrlWithPrefix(prefix));
    wrong.username = 'keygate-no-such-user';
    wrong.password = 'not-the-password';
    const { gateway, line } = await start('refused', wrong.toString(), 'closed');
    const ready = await fetch(`${gateway.adminUrl}/health/ready`);
    const health = (await ready.json()) as { status: string; reason: string };
    expect([ready.status, health.status]).toEqual([503, 'unavailable']);
    expect(health.reason).toMatch(/^the counters backend \(redis\) refuses the connection: WRONGPASS .* \(counterFailure: closed\)$/);
    expect(line).toMatchObject({ level: 40, status: 'unavailable', reason: health.reason });
    expect(gateway.output.join('\n')).not.toContain('not-the-password');
  });

  it('Redis reachable: the info line, status ok', async () => {
    const { line } = await start('reachable', redisUrlWithPrefix(prefix), 'closed');
    expect(line).toMatchObject({ level: 30, msg: 'keygate is serving', status: 'ok' });
    expect(line.reason).toBeUndefined();
  });

  it('Redis answering PING but refusing keygate\'s keys to its user (an ACL): the start says so in keygate check\'s words, before any request meets it', async () => {
    // A Redis of the test's own, whose default user may touch only keys outside keygate's prefix.
    const redis = await startRedisServer(['--user', 'default', 'on', 'nopass', 'resetkeys', '~elsewhere:*', '&*', '+@all']);
    try {
      const url = `${redis.url}/0?prefix=kgstart:`;
      const { gateway, line } = await start('acl', url, 'closed');
      // What an operator had before: a start that says ok, and a readiness of 200.
      expect(line).toMatchObject({ level: 30, status: 'ok' });
      const said = `counters: Redis at ${url} answers PING, but refuses what keygate serve asks of it: NOPERM this user has no permissions to access one of the keys used as arguments (the user needs keys ~kgstart:*, the channel &kgstart:cache and the commands CLIENT SETNAME, DEL, EVAL, EVALSHA, EXEC, EXISTS, GET, HDEL, HGET, HINCRBYFLOAT, HMGET, HSET, HSETNX, LINDEX, LPOP, MULTI, PEXPIRE, PING, PTTL, PUBLISH, RPUSH, SADD, SELECT, SET, SREM, SRANDMEMBER, SUBSCRIBE, ZADD, ZCARD, ZRANGE, ZRANGEBYSCORE, ZREM, ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZSCORE, which +@all -@dangerous allows: docs/scale-out.md#a-redis-user-for-keygate); requests with a rate limit, block policy or cost will be refused (service_unavailable) from the first one on, and /health/ready answer 503 from then`;
      expect(await eventually(() => gateway.output.some((l) => l.includes('refuses what keygate serve asks')), 10_000, 100)).toBe(true);
      const warned = gateway.output.map((l) => JSON.parse(l) as StartLine & { counters?: string }).filter((l) => l.msg.includes('refuses what keygate serve asks'));
      expect(warned).toEqual([expect.objectContaining({ level: 40, msg: said, counters: url })]);
    } finally {
      await redis.kill();
    }
  });

  it('Redis refusing keygate\'s keys with counterFailure open: the start-up warning says requests are admitted on per-process limits, as they are, not refused', async () => {
    const redis = await startRedisServer(['--user', 'default', 'on', 'nopass', 'resetkeys', '~elsewhere:*', '&*', '+@all']);
    try {
      const url = `${redis.url}/0?prefix=kgstart:`;
      const { gateway } = await start('acl-open', url, 'open');
      expect(await eventually(() => gateway.output.some((l) => l.includes('refuses what keygate serve asks')), 10_000, 100)).toBe(true);
      const warned = gateway.output.map((l) => JSON.parse(l) as StartLine).filter((l) => l.msg.includes('refuses what keygate serve asks'));
      expect(warned.map((l) => l.msg.slice(l.msg.indexOf('); ') + 3))).toEqual([
        'requests with a rate limit, block policy or cost will be admitted on per-process limits (counterFailure: open) from the first one on, and /health/ready say "degraded" from then',
      ]);
      // As it says: a request with a rate limit is admitted (forwarded to an upstream that is not there: 502, not the counters' 503), and readiness is degraded, 200.
      const { secret } = await provisionKey(gateway, 'limited', 'acl-open');
      const answer = await gateway.call('/v1/rows', secret);
      expect(answer.status).toBe(502);
      const ready = await fetch(`${gateway.adminUrl}/health/ready`);
      expect([ready.status, ((await ready.json()) as { status: string }).status]).toEqual([200, 'degraded']);
    } finally {
      await redis.kill();
    }
  });
});
