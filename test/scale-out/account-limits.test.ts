/**
 * One account's own limits on the scale-out backends: two `keygate serve` processes on one
 * PostgreSQL database and one Redis (a key prefix of its own). A change made through one
 * process's admin API, or with the CLI, holds in both, and both count the account's own
 * window together.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from '../support/services.js';
import { startDemoUpstream } from '../support/keygate.js';
import { runCli } from '../support/cli.js';
import { tempDir } from '../support/temp.js';
import { createTestDatabase, deleteRedisKeys, eventually, redisUrlWithPrefix, testRedisPrefix, type TestDatabase } from '../backends/isolation.js';
import { provisionKey, startGateway, writeProfile, type GatewayProcess } from './cluster.js';

const enabled = (await serviceAvailable('PostgreSQL', POSTGRES_URL)) && (await serviceAvailable('Redis', REDIS_URL));

describe.skipIf(!enabled)("an account's own limits across two processes sharing PostgreSQL and Redis", () => {
  const dir = tempDir('keygate-account-limits');
  const prefix = testRedisPrefix('account-limits');
  let database: TestDatabase;
  let upstream: { url: string; close(): Promise<void> };
  let profileFile: string;
  let gateways: GatewayProcess[] = [];

  const profile = (): ConfigInput => ({
    name: 'account-limits',
    upstream: { url: upstream.url },
    store: database.url,
    counters: redisUrlWithPrefix(prefix),
    counterFailure: 'closed',
    // Long, so that only the change's message can explain a changed limit.
    keyCacheTtl: '60s',
    listen: { host: '127.0.0.1', port: 0 },
    admin: { listen: { host: '127.0.0.1', port: 0 } },
    dashboard: { enabled: false },
    errors: { envelope: 'jsonapi' },
    plans: {
      team: { rateLimits: [{ limit: 4, window: '1h', scope: 'account' }], meters: { credits: { limit: 1000 } } },
    },
    routes: [{ method: 'GET', path: '/v1/rankings', cost: { meter: 'credits', perRequest: 100 } }, { path: '/v1/projects' }],
  });

  beforeAll(async () => {
    database = await createTestDatabase('account_limits');
    upstream = await startDemoUpstream();
    profileFile = writeProfile(dir, 'account-limits', profile());
    const migrated = await runCli(['migrate', '--config', profileFile]);
    expect(migrated.code).toBe(0);
    // One after the other, each kept as it starts: one that fails to start leaves none running.
    for (let i = 0; i < 2; i++) gateways.push(await startGateway(profileFile));
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await upstream?.close();
    await database?.drop();
    await deleteRedisKeys(prefix);
  });

  const [first, second] = [() => gateways[0] as GatewayProcess, () => gateways[1] as GatewayProcess];
  const call = async (gateway: GatewayProcess, secret: string, path = '/v1/projects') => {
    const response = await gateway.call(path, secret);
    return { status: response.status, policy: response.headers.get('ratelimit-policy'), body: await response.text() };
  };

  it('a window raised through one process holds in both, counted together; the CLI gives the plan\'s back to both', async () => {
    const raised = await provisionKey(first(), 'team', 'Raised');
    const neighbour = await provisionKey(first(), 'team', 'Neighbour');
    const patched = await first().admin(`/v1/accounts/${raised.accountId}`, { method: 'PATCH', body: { limits: { rateLimits: [{ limit: 7, window: '1h', scope: 'account' }] } } });
    expect(patched.status).toBe(200);

    // The first process judged the change itself; the second hears of it on Redis. Until
    // then its answers say the plan's 4 (and count in the plan's window, not the account's own).
    const ownPolicy = '"7-per-1h";q=7;w=3600';
    let admittedUnderOwn = 0;
    expect(
      await eventually(async () => {
        const answer = await call(second(), raised.secret);
        if (answer.policy === ownPolicy && answer.status === 200) admittedUnderOwn += 1;
        return answer.policy === ownPolicy;
      }),
    ).toBe(true);
    // The rest of the 7, alternating between the processes, then refused by both, in the profile's envelope.
    const statuses: number[] = [];
    for (let i = 0; i < 7 - admittedUnderOwn + 2; i++) {
      const answer = await call(i % 2 === 0 ? first() : second(), raised.secret);
      expect(answer.policy).toBe(ownPolicy);
      statuses.push(answer.status);
    }
    expect(statuses).toEqual([...Array(7 - admittedUnderOwn).fill(200), 429, 429]);
    const refused = await call(first(), raised.secret);
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.body)).toMatchObject({ errors: [{ status: 429 }] });

    // Another account on the plan: its 4.
    const plain = [];
    for (let i = 0; i < 5; i++) plain.push(await call(i % 2 === 0 ? second() : first(), neighbour.secret));
    expect(plain.map((a) => a.status)).toEqual([200, 200, 200, 200, 429]);
    expect(plain.every((a) => a.policy === '"4-per-1h";q=4;w=3600')).toBe(true);

    // The CLI, a third process, clears it: both go back to the plan's window.
    const cleared = await runCli(['accounts', 'update', raised.accountId, '--rate-limit', 'plan', '--json', '--config', profileFile]);
    expect(cleared.code).toBe(0);
    expect(JSON.parse(cleared.stdout)).toMatchObject({ limits: { rateLimits: null }, effectiveLimits: { rateLimits: [{ limit: 4, window: '1h', scope: 'account' }] } });
    for (const gateway of [first(), second()]) {
      expect(await eventually(async () => (await call(gateway, raised.secret)).policy === '"4-per-1h";q=4;w=3600')).toBe(true);
    }
  });

  it('a lowered meter limit refuses at it in both processes', async () => {
    const trial = await provisionKey(first(), 'team', 'Trial');
    const patched = await second().admin(`/v1/accounts/${trial.accountId}`, { method: 'PATCH', body: { limits: { meters: { credits: 200 } } } });
    expect(patched.status).toBe(200);
    expect(await eventually(async () => {
      const usage = (await (await first().admin(`/v1/accounts/${trial.accountId}/usage`)).json()) as { meters: { credits: { limit: number } } };
      return usage.meters.credits.limit === 200;
    })).toBe(true);
    // The second process made the change; the first must have heard of it before its first request (the key was never cached there).
    expect((await call(first(), trial.secret, '/v1/rankings')).status).toBe(200);
    expect((await call(second(), trial.secret, '/v1/rankings')).status).toBe(200);
    const refused = await call(first(), trial.secret, '/v1/rankings');
    expect(refused.status).toBe(402);
    expect((await call(second(), trial.secret, '/v1/rankings')).status).toBe(402);
  });
});
