/**
 * Found in hR4's adversarial review of quotas and metering: what an account is charged
 * for answers an upstream may send, over real HTTP on loopback against a real SQLite file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startKeygate, type TestKeygate } from './support/keygate.js';
import { tempDir } from './support/temp.js';
import { createAccount } from '../src/operations/accounts.js';
import { createKey } from '../src/operations/keys.js';

/** An upstream answering each path with the raw headers (name, value pairs) and body scripted for it. */
async function scriptedUpstream(answers: Record<string, { headers: string[]; body: Buffer | string }>): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const answer = answers[(req.url ?? '').split('?')[0] as string];
    if (!answer) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, answer.headers);
    res.end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('record counts an upstream reports oddly', () => {
  const dir = tempDir('review-hR4');
  let upstream: Awaited<ReturnType<typeof scriptedUpstream>>;
  let kg: TestKeygate;

  beforeAll(async () => {
    upstream = await scriptedUpstream({
      // Two record-count headers: the same as one saying "3, 400" (RFC 9110 §5.3), which is no count.
      '/v1/counted': { headers: ['Content-Type', 'application/json', 'X-Records', '3', 'X-Records', '400'], body: '{}' },
    });
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        basePath: '/v1',
        keys: { prefix: { live: 'kg_live_' } },
        auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }] },
        plans: { metered: { rateLimits: [], meters: { units: { limit: 1_000_000 } } } },
        defaultPlan: 'metered',
        routes: [{ method: 'GET', path: '/v1/counted', cost: { meter: 'units', perRecord: 1, records: { header: 'X-Records' }, reserveRecords: 50 } }],
      },
      { dir },
    );
  });
  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('charges what was reserved when the record-count header comes twice, and tells the client neither', async () => {
    const account = await createAccount(kg.runtime, { name: 'Twice', planId: 'metered' }, 'test');
    const issued = await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test');
    const response = await kg.call('/v1/counted', { headers: { authorization: `Bearer ${issued.secret}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-records')).toBeNull();
    await response.text();
    const used = async () => ((await (await kg.admin(`/v1/accounts/${account.id}/usage`)).json()) as { meters: { units: { usage: number } } }).meters.units.usage;
    await expect.poll(used).toBe(50);
    expect(kg.logs.text).toContain('upstream sent no record count');
  });
});

describe('forecasts of decimal costs', () => {
  const dir = tempDir('review-hR4-decimal');
  let kg: TestKeygate;

  beforeAll(async () => {
    kg = await startKeygate(
      {
        upstream: { url: 'http://127.0.0.1:9' },
        basePath: '/v1',
        plans: { rub: { rateLimits: [], meters: { balance: { limit: 0.3, unit: 'rur' } } } },
        defaultPlan: 'rub',
        routes: [{ method: 'GET', path: '/v1/serp', cost: { meter: 'balance', perRequest: 0.1 } }],
      },
      { dir },
    );
  });
  afterAll(async () => {
    await kg?.close();
  });

  it('adds 3 calls of 0.1 up to 0.3, which a balance of 0.3 covers', async () => {
    const account = await createAccount(kg.runtime, { name: 'Rubles', planId: 'rub' }, 'test');
    const response = await kg.admin('/v1/forecast', { method: 'POST', body: JSON.stringify({ accountId: account.id, calls: [{ method: 'GET', path: '/v1/serp', count: 3 }] }) });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      lines: [{ method: 'GET', path: '/v1/serp', count: 3, meter: 'balance', unitsPerCall: 0.1, units: 0.3 }],
      totals: { balance: 0.3 },
      total: 0.3,
      planId: 'rub',
      balance: { balance: { remaining: 0.3, covered: true, overageAllowed: false, inPlan: true } },
      covered: true,
    });
  });
});

describe('usage figures of a large limit', () => {
  const dir = tempDir('review-hR4-large');
  let kg: TestKeygate;

  beforeAll(async () => {
    kg = await startKeygate(
      {
        upstream: { url: 'http://127.0.0.1:9' },
        basePath: '/v1',
        keys: { prefix: { live: 'kg_live_' } },
        auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }] },
        // Whole numbers past 2^53 / 1e6 (about 9e9) came back from the rounding to 6 places a hair off.
        plans: { bulk: { rateLimits: [], meters: { units: { limit: 77408243217223 } } } },
        defaultPlan: 'bulk',
        routes: [{ method: 'GET', path: '/v1/rows', cost: { meter: 'units', perRequest: 1 } }],
        builtins: [{ path: '/v1/account/subscription', body: { units_limit: '{{meters.units.limit}}', units_left: '{{meters.units.remaining}}' } }],
      },
      { dir },
    );
  });
  afterAll(async () => {
    await kg?.close();
  });

  it('says the whole limit is left, in the admin API, a built-in and a forecast', async () => {
    const account = await createAccount(kg.runtime, { name: 'Bulk', planId: 'bulk' }, 'test');
    const issued = await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test');
    const usage = (await (await kg.admin(`/v1/accounts/${account.id}/usage`)).json()) as { meters: { units: { remaining: number; limit: number } } };
    expect(usage.meters.units).toMatchObject({ limit: 77408243217223, remaining: 77408243217223 });
    const builtin = await kg.call('/v1/account/subscription', { headers: { authorization: `Bearer ${issued.secret}` } });
    expect(builtin.status).toBe(200);
    expect(await builtin.json()).toEqual({ units_limit: 77408243217223, units_left: 77408243217223 });
    const forecast = await kg.admin('/v1/forecast', { method: 'POST', body: JSON.stringify({ accountId: account.id, calls: [{ method: 'GET', path: '/v1/rows', count: 77408243217223 }] }) });
    expect(await forecast.json()).toMatchObject({ total: 77408243217223, covered: true, balance: { units: { remaining: 77408243217223, covered: true } } });
  });
});
