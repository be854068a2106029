/**
 * Review of the scale-out backends (hR5), with real `keygate serve` processes on
 * PostgreSQL and Redis, driven over HTTP: a Redis that answers but refuses admissions
 * (OOM past maxmemory: a private redis-server, never the shared one) is said in the log,
 * once, and when it takes them again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ConfigInput } from '../src/config/schema.js';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from './support/services.js';
import { runCli } from './support/cli.js';
import { tempDir } from './support/temp.js';
import { createTestDatabase, eventually, type TestDatabase } from './backends/isolation.js';
import { provisionKey, startGateway, startRedisServer, writeProfile, type GatewayProcess, type RedisServer } from './scale-out/cluster.js';

const enabled = (await serviceAvailable('PostgreSQL', POSTGRES_URL)) && (await serviceAvailable('Redis', REDIS_URL));

async function statusAndBody(gateway: GatewayProcess, path: string, secret: string): Promise<{ status: number; body: string }> {
  const response = await gateway.call(path, secret);
  return { status: response.status, body: await response.text() };
}

describe.skipIf(!enabled)('hR5: a Redis that refuses writes (OOM past maxmemory)', () => {
  const dir = tempDir('keygate-review-hr5-oom');
  let database: TestDatabase;
  let upstream: Server;
  let redis: RedisServer;
  const gateways: Record<'closed' | 'open', GatewayProcess | undefined> = { closed: undefined, open: undefined };

  const profile = (failure: 'closed' | 'open'): ConfigInput => ({
    name: 'hr5-oom',
    upstream: { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` },
    store: database.url,
    counters: `${redis.url}/0?prefix=hr5oom:`,
    counterFailure: failure,
    listen: { host: '127.0.0.1', port: 0 },
    admin: { listen: { host: '127.0.0.1', port: 0 } },
    dashboard: { enabled: false },
    errors: { envelope: 'message' },
    plans: { metered: { meters: { units: { limit: 100 } }, rateLimits: [{ limit: 50, window: '1h' }], block: { after: 2, within: '1h', duration: '10m' } } },
    routes: [{ method: 'GET', path: '/v1/charged', cost: { meter: 'units', perRequest: 1 } }, { path: '/v1/data' }],
  });

  beforeAll(async () => {
    database = await createTestDatabase('review_hr5_oom');
    upstream = createServer((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{"data":[]}'));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    redis = await startRedisServer(['--maxmemory', '1', '--maxmemory-policy', 'noeviction']);
    const closedFile = writeProfile(dir, 'closed', profile('closed'));
    expect((await runCli(['migrate', '--config', closedFile])).code).toBe(0);
    [gateways.closed, gateways.open] = await Promise.all([startGateway(closedFile), startGateway(writeProfile(dir, 'open', profile('open')))]);
  });

  afterAll(async () => {
    await Promise.all([gateways.closed?.stop(), gateways.open?.stop()]);
    await redis?.kill();
    await new Promise((resolve) => upstream?.close(resolve));
    await database?.drop();
  });

  /** Redis's own setting: this server is the test's own, not the shared one. */
  const setMaxmemory = (value: string) =>
    new Promise<void>((resolve, reject) => execFile('redis-cli', ['-p', String(redis.port), 'config', 'set', 'maxmemory', value], (error) => (error ? reject(error) : resolve())));

  it('says once in the log why requests are refused (Redis answers admissions with OOM), answers 503 in the envelope, and says when Redis takes them again', async () => {
    const gateway = gateways.closed as GatewayProcess;
    const { keyId, secret } = await provisionKey(gateway, 'metered', 'oom-closed');
    const mark = gateway.output.length;
    for (let i = 0; i < 3; i++) expect(await statusAndBody(gateway, '/v1/charged', secret)).toEqual({ status: 503, body: '{"message":"Service temporarily unavailable. Try again shortly."}' });
    expect(gateway.alive()).toBe(true);
    const said = () => gateway.output.slice(mark).filter((line) => line.includes('Redis answers admissions with an error'));
    expect(await gateway.waitForLog(/Redis answers admissions with an error/, mark, 3_000)).toBe(true);
    expect(said()).toHaveLength(1);
    expect(said()[0]).toMatch(/"level":40.*OOM command not allowed.*refused \(service_unavailable\) until it takes them \(counterFailure: closed\)/);
    // An operator's lift names what Redis answered, not MULTI's EXECABORT, and not Redis as away.
    const lift = await gateway.admin(`/v1/keys/${keyId}/unblock`, { method: 'POST' });
    expect(lift.status).toBe(503);
    expect(((await lift.json()) as { detail: string }).detail).toMatch(/^counters backend answered with an error: OOM command not allowed .*; try again once Redis takes the command\.$/);

    await setMaxmemory('0');
    try {
      expect((await gateway.call('/v1/charged', secret)).status).toBe(200);
      expect(await gateway.waitForLog(/Redis takes admissions again: shared counters resume/, mark, 3_000)).toBe(true);
    } finally {
      await setMaxmemory('1');
    }
  });

  it('counterFailure open: admits on per-process limits, said once in the log', async () => {
    const gateway = gateways.open as GatewayProcess;
    const { accountId, secret } = await provisionKey(gateway, 'metered', 'oom-open');
    const mark = gateway.output.length;
    for (let i = 0; i < 3; i++) expect((await gateway.call('/v1/charged', secret)).status).toBe(200);
    expect(await gateway.waitForLog(/Redis answers admissions with an error: admitting on per-process limits until it takes them/, mark, 3_000)).toBe(true);
    expect(gateway.output.slice(mark).filter((line) => line.includes('Redis answers admissions with an error'))).toHaveLength(1);
    // The units charged meanwhile reach Redis, and the usage answer, once Redis takes writes again.
    await setMaxmemory('0');
    try {
      expect((await gateway.call('/v1/charged', secret)).status).toBe(200);
      const usage = async () => ((await (await gateway.admin(`/v1/accounts/${accountId}/usage`)).json()) as { meters: { units: { usage: number } } }).meters.units.usage;
      expect(await eventually(async () => (await usage()) === 4, 5_000, 200)).toBe(true);
    } finally {
      await setMaxmemory('1');
    }
  });
});
