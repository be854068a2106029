/**
 * A `keygate serve` process on Redis counters reached through a TCP proxy, which can
 * stall Redis (connections open, nothing passes) or cut it: the process recovers by
 * itself once Redis answers, with no request needed to notice, a settle made while
 * Redis was away releases what its request reserved there, a settle Redis carried
 * out whose answer was lost with the connection is not counted again, and neither is an
 * admission's flat cost: what Redis charged for it is given back.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from '../support/services.js';
import { tempDir } from '../support/temp.js';
import { createTestDatabase, deleteRedisKeys, eventually, redisUrlWithPrefix, testRedisPrefix, type TestDatabase } from '../backends/isolation.js';
import { openPostgresStore } from '../../src/store/postgres/postgres-database.js';
import { provisionKey, startGateway, startTcpProxy, writeProfile, type GatewayProcess, type TcpProxy } from './cluster.js';

const enabled = await serviceAvailable('Redis', REDIS_URL);
const withPostgres = enabled && (await serviceAvailable('PostgreSQL', POSTGRES_URL));

/** An upstream whose `/v1/records?id=…` answers (10 records) only once released. */
async function heldUpstream() {
  const waiting = new Map<string, ServerResponse>();
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', 'http://upstream');
    const answer = (res: ServerResponse) => res.writeHead(200, { 'content-type': 'application/json', 'x-records': '10' }).end('{"data":[]}');
    const id = url.searchParams.get('id');
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
      response?.writeHead(200, { 'content-type': 'application/json', 'x-records': '10' }).end('{"data":[]}');
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const response of waiting.values()) response.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

describe.skipIf(!enabled)('Redis stalled or cut, then back', () => {
  const dir = tempDir('keygate-redis-recovery');
  const prefix = testRedisPrefix('recovery');
  let proxy: TcpProxy;
  let upstream: Awaited<ReturnType<typeof heldUpstream>>;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    upstream = await heldUpstream();
    proxy = await startTcpProxy(Number(new URL(REDIS_URL).port || 6379));
    const viaProxy = new URL(REDIS_URL);
    viaProxy.port = String(proxy.port);
    gateway = await startGateway(
      writeProfile(dir, 'recovery', {
        name: 'recovery',
        upstream: { url: upstream.url },
        store: `sqlite:${path.join(dir, 'keygate.db')}`,
        counters: redisUrlWithPrefix(prefix, viaProxy.toString()),
        counterFailure: 'closed',
        listen: { host: '127.0.0.1', port: 0 },
        admin: { listen: { host: '127.0.0.1', port: 0 } },
        dashboard: { enabled: false },
        errors: { envelope: 'message' },
        plans: { metered: { rateLimits: [{ limit: 1000, window: '1m' }], meters: { credits: { limit: 20 } } } },
        routes: [{ method: 'GET', path: '/v1/records', cost: { meter: 'credits', perRecord: 1, reserveFromQuery: 'limit', records: { header: 'x-records' } } }],
      }),
    );
  });

  beforeEach(async () => {
    onTestFailed(() => console.error(gateway.output.filter((line) => !line.includes('"msg":"request"')).slice(-15).join('\n')));
    // Every test starts with Redis answering as the process sees it. A test that ends as
    // Redis comes back (a stall resumed, after a command that timed out) leaves the process
    // finding out by its once-a-second probe, and refusing requests meanwhile (503, closed).
    expect(await eventually(async () => (await gateway.admin('/health/ready')).status === 200, 10_000, 100)).toBe(true);
  });

  afterAll(async () => {
    await gateway?.stop();
    await upstream?.close();
    await proxy?.cut();
    await deleteRedisKeys(prefix);
  });

  it('is ready again once a stalled Redis answers, without a request to find out', async () => {
    const { secret } = await provisionKey(gateway, 'metered');
    expect((await gateway.admin('/health/ready')).status).toBe(200);
    proxy.stall();
    let stalled = true;
    try {
      // The admission waits for Redis no longer than its deadline.
      expect((await gateway.call('/v1/records?limit=1', secret)).status).toBe(503);
      expect((await gateway.admin('/health/ready')).status).toBe(503);
      const mark = gateway.output.length;
      proxy.resume();
      stalled = false;
      // No request reaches the gateway from here on (a load balancer sends none to a process it took out).
      expect(await gateway.waitForLog(/Redis answers again/, mark, 10_000)).toBe(true);
      expect(await eventually(async () => (await gateway.admin('/health/ready')).status === 200, 5_000, 200)).toBe(true);
    } finally {
      if (stalled) proxy.resume();
    }
  });

  it('tells an admin API client that other processes may not know of a revocation made while Redis is away', async () => {
    const first = await provisionKey(gateway, 'metered');
    const second = await provisionKey(gateway, 'metered');
    const mark = gateway.output.length;
    await proxy.cut();
    try {
      expect(await gateway.waitForLog(/Redis is unreachable/, mark)).toBe(true);
      const revoked = await gateway.admin(`/v1/keys/${first.keyId}/revoke`, { method: 'POST' });
      expect(revoked.status).toBe(200);
      expect(revoked.headers.get('keygate-warning')).toBe('saved and in effect in this process; Redis is unreachable, so the other keygate processes learn of it from the store, within about a second, rather than at once');
      // In effect here at once.
      expect((await gateway.call('/v1/records?limit=1', first.secret)).status).toBe(401);
    } finally {
      await proxy.restore();
    }
    expect(await gateway.waitForLog(/Redis answers again/, mark)).toBe(true);
    const told = await gateway.admin(`/v1/keys/${second.keyId}/revoke`, { method: 'POST' });
    expect([told.status, told.headers.get('keygate-warning')]).toEqual([200, null]);

    // A stalled Redis (connected, answering nothing): the answer does not wait for the
    // command timeout, and says the others learn of it from the store.
    const third = await provisionKey(gateway, 'metered');
    proxy.stall();
    try {
      const started = performance.now();
      const stalled = await gateway.admin(`/v1/keys/${third.keyId}/revoke`, { method: 'POST' });
      expect(performance.now() - started).toBeLessThan(3_000);
      expect(stalled.status).toBe(200);
      expect(stalled.headers.get('keygate-warning')).toMatch(/Redis is unreachable, so the other keygate processes learn of it from the store/);
    } finally {
      proxy.resume();
    }
  });

  it('does not wait again on a Redis it knows is stalled for an admin read or a revocation', async () => {
    const { keyId, secret } = await provisionKey(gateway, 'metered');
    // Redis back from the test before, as this process sees it.
    expect(await eventually(async () => (await gateway.admin('/health/ready')).status === 200, 10_000, 200)).toBe(true);
    const mark = gateway.output.length;
    proxy.stall();
    try {
      // An admission waits out its deadline: the process now knows Redis is away.
      expect((await gateway.call('/v1/records?limit=1', secret)).status).toBe(503);
      expect((await gateway.admin('/health/ready')).status).toBe(503);
      // The key's answer leaves out when its block ends (not known), and the revocation says
      // the others learn of it from the store: neither asked Redis (each asking cost a
      // second), so nothing they would have sent is held.
      const read = await gateway.admin(`/v1/keys/${keyId}`);
      expect(read.status).toBe(200);
      expect(await read.json()).not.toHaveProperty('blockedUntil');
      const revoked = await gateway.admin(`/v1/keys/${keyId}/revoke`, { method: 'POST' });
      expect(revoked.status).toBe(200);
      expect(revoked.headers.get('keygate-warning')).toMatch(/Redis is unreachable, so the other keygate processes learn of it from the store/);
      const sent = proxy.heldFromClients();
      expect(sent).not.toMatch(/hget/i);
      expect(sent).not.toMatch(/publish/i);
    } finally {
      proxy.resume();
    }
    expect(await gateway.waitForLog(/Redis answers again/, mark, 10_000)).toBe(true);
  });

  it('releases what a request reserved once Redis is back, when its answer came while Redis was cut', async () => {
    const { secret, accountId } = await provisionKey(gateway, 'metered');
    // 10 of the 20 credits reserved; its answer waits upstream.
    const first = gateway.call('/v1/records?limit=10&id=during-cut', secret);
    expect(await eventually(() => upstream.held('during-cut'))).toBe(true);
    const cutAt = gateway.output.length;
    await proxy.cut();
    // The answer comes once the process knows Redis is gone: its settle is never sent.
    expect(await gateway.waitForLog(/Redis is unreachable/, cutAt)).toBe(true);
    upstream.release('during-cut');
    const answered = await first;
    expect(answered.status).toBe(200);
    await answered.text();
    const mark = gateway.output.length;
    await proxy.restore();
    expect(await gateway.waitForLog(/units committed while Redis was unreachable are now recorded/, mark, 15_000)).toBe(true);

    // 10 used, 10 left, none still held: the next 10 fit.
    const usage = (await (await gateway.admin(`/v1/accounts/${accountId}/usage`)).json()) as { meters: { credits: { usage: number } } };
    expect(usage.meters.credits.usage).toBe(10);
    const second = await gateway.call('/v1/records?limit=10', secret);
    expect({ status: second.status, body: await second.text() }).toEqual({ status: 200, body: '{"data":[]}' });
  });

  /**
   * A request reserving 10 of a new key's 20 credits, answered while `lose` keeps its
   * settle's answer, or the settle itself, from getting through; then the connection to
   * Redis is cut (nothing the relay held is delivered) and restored. Gives the key and the
   * log mark from before the cut.
   */
  async function settleThenCut(id: string, lose: () => void): Promise<{ secret: string; accountId: string; mark: number }> {
    const { secret, accountId } = await provisionKey(gateway, 'metered', id);
    const first = gateway.call(`/v1/records?limit=10&id=${id}`, secret);
    expect(await eventually(() => upstream.held(id))).toBe(true);
    lose();
    upstream.release(id);
    const answered = await first;
    expect(answered.status).toBe(200);
    await answered.text();
    // The settle (10 credits) leaves within 5 ms; then the connection closes.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const mark = gateway.output.length;
    await proxy.cut();
    proxy.resume(); // nothing held is delivered: the connections it was for are gone
    expect(await gateway.waitForLog(/Redis is unreachable/, mark)).toBe(true);
    await proxy.restore();
    return { secret, accountId, mark };
  }

  it('does not count a settle twice when Redis carried it out and the connection closed before its answer', async () => {
    // Redis still gets what the process sends, but the process hears nothing back.
    const { secret, accountId, mark } = await settleThenCut('answer-lost', () => proxy.muteAnswers());
    expect(await gateway.waitForLog(/"carriedOut":1,"sentAgain":0,"msg":"settles whose answer Redis did not send/, mark, 15_000)).toBe(true);

    // 10 used, not 20: the next 10 fit.
    const usage = (await (await gateway.admin(`/v1/accounts/${accountId}/usage`)).json()) as { meters: { credits: { usage: number } } };
    expect(usage.meters.credits.usage).toBe(10);
    const second = await gateway.call('/v1/records?limit=10', secret);
    expect({ status: second.status, body: await second.text() }).toEqual({ status: 200, body: '{"data":[]}' });
  });

  it('sends a settle again when the connection closed before Redis read it', async () => {
    // The process writes the settle, but it goes no further than the relay: Redis never reads it.
    const { secret, accountId, mark } = await settleThenCut('never-read', () => proxy.stall());
    expect(await gateway.waitForLog(/"carriedOut":0,"sentAgain":1,"msg":"settles whose answer Redis did not send/, mark, 15_000)).toBe(true);

    // 10 used, not 0: the settle was sent again; and nothing is still reserved (the next 10 fit, the 11th does not).
    expect(await eventually(async () => ((await (await gateway.admin(`/v1/accounts/${accountId}/usage`)).json()) as { meters: { credits: { usage: number } } }).meters.credits.usage === 10, 10_000, 200)).toBe(true);
    const second = await gateway.call('/v1/records?limit=10', secret);
    expect({ status: second.status, body: await second.text() }).toEqual({ status: 200, body: '{"data":[]}' });
  });
});

describe.skipIf(!withPostgres)('admissions whose answer Redis did not send', () => {
  const dir = tempDir('keygate-lost-admissions');
  const prefix = testRedisPrefix('lost-admissions');
  /** The flat cost of GET /v1/flat. */
  const COST = 7;
  let database: TestDatabase;
  let upstream: Awaited<ReturnType<typeof heldUpstream>>;
  const modes = {} as Record<'closed' | 'open', { gateway: GatewayProcess; proxy: TcpProxy }>;

  beforeAll(async () => {
    database = await createTestDatabase('lost_admissions');
    const store = openPostgresStore(database.url);
    await store.migrate();
    await store.close();
    upstream = await heldUpstream();
    for (const failure of ['closed', 'open'] as const) {
      const proxy = await startTcpProxy(Number(new URL(REDIS_URL).port || 6379));
      const viaProxy = new URL(REDIS_URL);
      viaProxy.port = String(proxy.port);
      const gateway = await startGateway(
        writeProfile(dir, failure, {
          name: `lost-${failure}`,
          upstream: { url: upstream.url },
          store: database.url,
          counters: redisUrlWithPrefix(prefix, viaProxy.toString()),
          counterFailure: failure,
          listen: { host: '127.0.0.1', port: 0 },
          admin: { listen: { host: '127.0.0.1', port: 0 } },
          dashboard: { enabled: false },
          errors: { envelope: 'message' },
          plans: { flat: { rateLimits: [{ limit: 1000, window: '1m' }], meters: { credits: { limit: 1000 } } } },
          routes: [{ method: 'GET', path: '/v1/flat', cost: { meter: 'credits', perRequest: COST } }],
        }),
      );
      modes[failure] = { gateway, proxy };
    }
  });

  beforeEach(() => {
    onTestFailed(() => {
      for (const { gateway } of Object.values(modes)) console.error(gateway.output.filter((line) => !line.includes('"msg":"request"')).slice(-15).join('\n'));
    });
  });

  afterAll(async () => {
    for (const { gateway, proxy } of Object.values(modes)) {
      await gateway?.stop();
      await proxy?.cut();
    }
    await upstream?.close();
    await database?.drop();
    await deleteRedisKeys(prefix);
  });

  for (const failure of ['closed', 'open'] as const) {
    it(`charges only the 2xx answers when Redis charged admissions whose answers were lost (${failure})`, async () => {
      const { gateway, proxy } = modes[failure];
      const { secret, accountId } = await provisionKey(gateway, 'flat', `lost admissions ${failure}`);
      const usage = async () => ((await (await gateway.admin(`/v1/accounts/${accountId}/usage`)).json()) as { meters: { credits: { usage: number } } }).meters.credits.usage;
      const first = await gateway.call('/v1/flat', secret);
      expect(first.status).toBe(200);
      await first.text();
      expect(await usage()).toBe(COST);

      // Redis gets the admissions and charges them, but the process hears nothing back:
      // after a second they are refused (closed) or admitted on the process's own counters (open).
      proxy.muteAnswers();
      const mark = gateway.output.length;
      const answers = await Promise.all(
        Array.from({ length: 5 }, async () => {
          const response = await gateway.call('/v1/flat', secret);
          await response.text();
          return response.status;
        }),
      );
      expect(answers).toEqual(Array(5).fill(failure === 'closed' ? 503 : 200));
      // The connection closes with the admissions unanswered; then Redis answers again.
      await proxy.cut();
      await proxy.restore();
      expect(await gateway.waitForLog(/Redis answers again/, mark, 10_000)).toBe(true);
      // The next write-back delivers what the process holds for Redis (open: the 5 charges
      // it made itself), and what it gives back: waited for (it was given 5 s and not
      // checked, so on a loaded host the usage below could be read before it).
      expect(await gateway.waitForLog(/units committed while Redis was unreachable are now recorded/, mark, 30_000)).toBe(true);

      // One charge per 2xx answer, no more: 7 + 0 (closed), 7 + 5 x 7 (open).
      const answered = 1 + answers.filter((status) => status === 200).length;
      expect(await usage()).toBe(answered * COST);
      // Redis had carried them out: what they charged there was given back.
      expect(gateway.output.slice(mark).some((line) => /"charged":[1-9].*"unitsGivenBack":[1-9].*admissions whose answer Redis did not send/.test(line))).toBe(true);
      // And nothing is held: the next request is charged its 7 alone.
      const next = await gateway.call('/v1/flat', secret);
      expect(next.status).toBe(200);
      await next.text();
      expect(await usage()).toBe((answered + 1) * COST);
    });
  }
});
