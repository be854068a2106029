/**
 * A Redis that answers (PING, PUBLISH) but refuses every admission (OOM past maxmemory: a
 * private redis-server, never the shared one) is reported by /health/ready: 503 under
 * `counterFailure: closed`, where every request with something to count is refused, so that
 * a load balancer takes the process out; 200 but degraded under `open`. Either way the body
 * names Redis's error, and it turns ok again once Redis takes an admission, with no gateway
 * request needed to find out (a load balancer sends none to a process it took out).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from '../support/services.js';
import { tempDir } from '../support/temp.js';
import { eventually } from '../backends/isolation.js';
import { provisionKey, startRefusingRedisPair, type GatewayProcess, type RedisServer, type RefusingRedisPair } from './cluster.js';

const enabled = (await serviceAvailable('PostgreSQL', POSTGRES_URL)) && (await serviceAvailable('Redis', REDIS_URL));

interface Ready {
  status: number;
  body: { status: string; counters: string; reason?: string };
}

async function ready(gateway: GatewayProcess): Promise<Ready> {
  const response = await fetch(`${gateway.adminUrl}/health/ready`);
  return { status: response.status, body: (await response.json()) as Ready['body'] };
}

describe.skipIf(!enabled)('/health/ready while Redis refuses admissions (OOM past maxmemory)', () => {
  const dir = tempDir('keygate-refused-admissions');
  let gateways: RefusingRedisPair;
  let redis: RedisServer;

  beforeAll(async () => {
    gateways = await startRefusingRedisPair(dir, 'refused-admissions');
    ({ redis } = gateways);
  });

  afterAll(async () => {
    await gateways?.stop();
  });

  it('counterFailure closed: 503 naming Redis\'s error while requests are refused, /metrics says the counters are down, and 200 again once Redis takes admissions, with no request sent', async () => {
    const gateway = gateways.closed as GatewayProcess;
    // Reachable, and nothing asked of it yet: ready.
    expect(await ready(gateway)).toMatchObject({ status: 200, body: { status: 'ok', counters: 'ok' } });
    const { secret } = await provisionKey(gateway, 'metered', 'closed');
    expect((await gateway.call('/v1/charged', secret)).status).toBe(503);
    expect(await ready(gateway)).toEqual({
      status: 503,
      body: expect.objectContaining({
        status: 'unavailable',
        counters: 'refusing',
        reason: expect.stringMatching(/^the counters backend \(redis\) answers admissions with an error: OOM command not allowed .* \(counterFailure: closed\)$/),
      }),
    });
    // Liveness is not readiness.
    expect((await fetch(`${gateway.adminUrl}/health`)).status).toBe(200);
    expect(await (await gateway.admin('/metrics')).text()).toContain('keygate_backend_up{backend="counters"} 0');

    const mark = gateway.output.length;
    await redis.configSet('maxmemory', '0');
    try {
      // The process's own write-back asks Redis with an admission of its own.
      expect(await eventually(async () => (await ready(gateway)).status === 200, 10_000, 200)).toBe(true);
      expect(await ready(gateway)).toMatchObject({ status: 200, body: { status: 'ok', counters: 'ok' } });
      // Said by the same call that makes it ready, but read from its stdout, a pipe apart from the answer above.
      expect(await eventually(async () => gateway.output.slice(mark).some((line) => line.includes('Redis takes admissions again: shared counters resume')), 5_000, 50)).toBe(true);
      expect((await gateway.call('/v1/charged', secret)).status).toBe(200);
    } finally {
      await redis.configSet('maxmemory', '1');
    }
  });

  it('counterFailure open: still ready (200, requests are admitted on per-process limits), but degraded, naming Redis\'s error', async () => {
    const gateway = gateways.open as GatewayProcess;
    const { secret } = await provisionKey(gateway, 'metered', 'open');
    expect((await gateway.call('/v1/charged', secret)).status).toBe(200);
    expect(await ready(gateway)).toEqual({
      status: 200,
      body: expect.objectContaining({
        status: 'degraded',
        counters: 'refusing',
        reason: expect.stringMatching(/^the counters backend \(redis\) answers admissions with an error: OOM command not allowed .* \(counterFailure: open\)$/),
      }),
    });
    await redis.configSet('maxmemory', '0');
    try {
      expect(await eventually(async () => (await ready(gateway)).body.status === 'ok', 10_000, 200)).toBe(true);
    } finally {
      await redis.configSet('maxmemory', '1');
    }
  });
});
