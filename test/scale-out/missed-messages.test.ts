/**
 * Two `keygate serve` processes on one PostgreSQL database and one Redis, each reaching
 * Redis through a TCP proxy of its own, and a keyCacheTtl of 60 s: a revocation whose
 * Redis message a process cannot hear still reaches it within a few seconds, through the
 * store's change marks (src/keys/change-marks.ts). Three ways to miss the message: the
 * process making the change cannot reach Redis (admin API), the CLI making it cannot
 * (a profile naming a Redis that is not there), and the process holding the key has lost
 * its own subscription.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ConfigInput } from '../../src/config/schema.js';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from '../support/services.js';
import { runCli } from '../support/cli.js';
import { tempDir } from '../support/temp.js';
import { createTestDatabase, deleteRedisKeys, eventually, redisUrlWithPrefix, testRedisPrefix, type TestDatabase } from '../backends/isolation.js';
import { provisionKey, startGateway, startTcpProxy, writeProfile, type GatewayProcess, type TcpProxy } from './cluster.js';

const enabled = (await serviceAvailable('PostgreSQL', POSTGRES_URL)) && (await serviceAvailable('Redis', REDIS_URL));

/**
 * Well within the profile's 60 s keyCacheTtl: the marks are read every second. Measured
 * here: 0.5 to 1.5 s.
 */
const DEADLINE_MS = 5_000;

describe.skipIf(!enabled)('a revocation a process did not hear of on Redis', () => {
  const dir = tempDir('keygate-missed-messages');
  const prefix = testRedisPrefix('missed');
  let database: TestDatabase;
  let upstream: Server;
  let proxies: TcpProxy[] = [];
  let maker: GatewayProcess;
  let holder: GatewayProcess;

  const profile = (redisPort: number): ConfigInput => {
    const redis = new URL(REDIS_URL);
    redis.port = String(redisPort);
    return {
      name: 'missed',
      upstream: { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` },
      store: database.url,
      counters: redisUrlWithPrefix(prefix, redis.toString()),
      counterFailure: 'closed',
      // Long, so that only a mark in the store can explain a refusal within seconds.
      keyCacheTtl: '60s',
      listen: { host: '127.0.0.1', port: 0 },
      admin: { listen: { host: '127.0.0.1', port: 0 } },
      dashboard: { enabled: false },
      errors: { envelope: 'message' },
      plans: { open: {} },
    };
  };

  /** A key the holder has served (so its cache has it), and when it is refused there after `revoke`: ms, or null if not within DEADLINE_MS. */
  async function refusedAfter(revoke: (keyId: string) => Promise<void>): Promise<{ before: number; afterMs: number | null }> {
    const { keyId, secret } = await provisionKey(maker, 'open');
    const before = (await holder.call('/v1/data', secret)).status;
    await revoke(keyId);
    const started = performance.now();
    const refused = await eventually(async () => (await holder.call('/v1/data', secret)).status === 401, DEADLINE_MS, 100);
    return { before, afterMs: refused ? Math.round(performance.now() - started) : null };
  }

  /** keygate_key_cache_drops_total of a process, by cause. */
  async function drops(gateway: GatewayProcess): Promise<Record<string, number>> {
    const text = await (await gateway.admin('/metrics')).text();
    return Object.fromEntries([...text.matchAll(/^keygate_key_cache_drops_total\{cause="([a-z_]+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
  }

  beforeAll(async () => {
    database = await createTestDatabase('missed_messages');
    upstream = createServer((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{"data":[]}'));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const redisPort = Number(new URL(REDIS_URL).port || 6379);
    proxies = [await startTcpProxy(redisPort), await startTcpProxy(redisPort)];
    const makerFile = writeProfile(dir, 'maker', profile((proxies[0] as TcpProxy).port));
    const migrated = await runCli(['migrate', '--config', makerFile]);
    expect(migrated.code).toBe(0);
    [maker, holder] = await Promise.all([startGateway(makerFile), startGateway(writeProfile(dir, 'holder', profile((proxies[1] as TcpProxy).port)))]);
  });

  beforeEach(() => {
    onTestFailed(() => {
      for (const [name, gateway] of [['maker', maker], ['holder', holder]] as const) console.error(`${name}:\n${gateway.output.filter((line) => !line.includes('"msg":"request"')).slice(-10).join('\n')}`);
    });
  });

  afterAll(async () => {
    await Promise.all([maker?.stop(), holder?.stop()]);
    for (const proxy of proxies) await proxy.cut();
    await new Promise((resolve) => upstream?.close(resolve));
    await database?.drop();
    await deleteRedisKeys(prefix);
  });

  it('reaches a process that cached the key when the admin API revoking it cannot reach Redis', async () => {
    const mark = maker.output.length;
    const dropsBefore = await drops(holder);
    await (proxies[0] as TcpProxy).cut();
    try {
      expect(await maker.waitForLog(/Redis is unreachable/, mark)).toBe(true);
      let warning: string | null = null;
      const outcome = await refusedAfter(async (keyId) => {
        const revoked = await maker.admin(`/v1/keys/${keyId}/revoke`, { method: 'POST' });
        expect(revoked.status).toBe(200);
        warning = revoked.headers.get('keygate-warning');
      });
      expect(warning).toBe('saved and in effect in this process; Redis is unreachable, so the other keygate processes learn of it from the store, within about a second, rather than at once');
      expect(outcome.before).toBe(200);
      expect(outcome.afterMs).not.toBeNull();
      expect(await holder.waitForLog(/a key or account changed where Redis could not carry the message: the key cache is dropped/)).toBe(true);
      // What /metrics shows of it: a drop by the store's mark, none by a message.
      const dropsAfter = await drops(holder);
      expect(dropsAfter.store_mark).toBeGreaterThan(dropsBefore.store_mark as number);
      expect(dropsAfter.message).toBe(dropsBefore.message);
    } finally {
      await (proxies[0] as TcpProxy).restore();
    }
    expect(await maker.waitForLog(/Redis answers again/, mark, 10_000)).toBe(true);
  });

  it('reaches it when `keygate keys revoke` cannot reach Redis', async () => {
    // The operator's profile names a Redis that is not there (nothing listens on port 1).
    const cliFile = writeProfile(dir, 'cli', profile(1));
    const outcome = await refusedAfter(async (keyId) => {
      const revoked = await runCli(['--config', cliFile, 'keys', 'revoke', keyId]);
      expect(revoked.code).toBe(0);
      expect(revoked.stderr).toMatch(/^warning: the change is saved, but Redis did not carry its message: running keygate processes learn of it from the store instead, within about a second \(cause: .*, change: key\)\n$/);
    });
    expect(outcome).toMatchObject({ before: 200 });
    expect(outcome.afterMs).not.toBeNull();
  });

  it('reaches a process whose own subscription is down, though the message went out on Redis', async () => {
    const { keyId, secret } = await provisionKey(maker, 'open');
    expect((await holder.call('/v1/data', secret)).status).toBe(200);
    const mark = holder.output.length;
    await (proxies[1] as TcpProxy).cut();
    try {
      expect(await holder.waitForLog(/Redis is unreachable/, mark)).toBe(true);
      // Still served from its cache: a plan with nothing to count does not need Redis.
      expect((await holder.call('/v1/data', secret)).status).toBe(200);
      const revoked = await maker.admin(`/v1/keys/${keyId}/revoke`, { method: 'POST' });
      expect([revoked.status, revoked.headers.get('keygate-warning')]).toEqual([200, null]);
      expect(await eventually(async () => (await holder.call('/v1/data', secret)).status === 401, DEADLINE_MS, 100)).toBe(true);
      expect(await holder.waitForLog(/a key or account changed while this process heard no messages from Redis: the key cache is dropped/, mark)).toBe(true);
    } finally {
      await (proxies[1] as TcpProxy).restore();
    }
    // Its subscription back, the messages it may have missed are made up for by dropping everything.
    expect(await eventually(async () => ((await drops(holder)).resubscribed as number) > 0, 10_000, 100)).toBe(true);
  });
});
