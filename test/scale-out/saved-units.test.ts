/**
 * Units a process saved in the store because Redis was unreachable when it stopped
 * (pending_units): the next process that starts and reaches Redis adds them there as it
 * starts, and says so in one line (how many accounts and units, never a key). Real
 * PostgreSQL (a database of its own) and real Redis (a key prefix of its own).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, deleteRedisKeys, redisUrlWithPrefix, testRedisPrefix, type TestDatabase } from '../backends/isolation.js';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from '../support/services.js';
import { LogCapture } from '../support/keygate.js';
import { openPostgresStore } from '../../src/store/postgres/postgres-database.js';
import { parseConfigObject } from '../../src/config/load.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { createLog } from '../../src/log.js';
import type { Store } from '../../src/store/store.js';

const enabled = (await serviceAvailable('PostgreSQL', POSTGRES_URL)) && (await serviceAvailable('Redis', REDIS_URL));
/** 2026-01-15: the credits meter's period (monthly) began on the 1st. */
const NOW = Date.UTC(2026, 0, 15);
const PERIOD = '2026-01-01';

describe.skipIf(!enabled)('units saved in the store by a process that stopped while Redis was unreachable', () => {
  const prefix = testRedisPrefix('saved-units');
  let database: TestDatabase;
  let store: Store;
  let rt: Runtime | undefined;

  beforeAll(async () => {
    database = await createTestDatabase('saved_units');
    store = openPostgresStore(database.url);
    await store.migrate();
  });

  afterAll(async () => {
    await rt?.close();
    await store?.close();
    await database?.drop();
    await deleteRedisKeys(prefix);
  });

  it('reach Redis as the next process starts, which logs how many accounts and units it picked up', async () => {
    for (const id of ['acc_savedunits000001', 'acc_savedunits000002']) {
      await store.createAccount({ id, name: id, planId: 'metered', planExpiresAt: null, apiAccess: true, overage: null, createdAt: NOW });
    }
    // As the earlier process left them: a charge, a charge given back, another account's charge.
    await store.savePendingUnits([
      { accountId: 'acc_savedunits000001', meter: 'credits', periodStart: PERIOD, units: 30 },
      { accountId: 'acc_savedunits000001', meter: 'credits', periodStart: PERIOD, units: -5 },
      { accountId: 'acc_savedunits000002', meter: 'credits', periodStart: PERIOD, units: 12 },
    ]);

    const logs = new LogCapture();
    const config = parseConfigObject({
      upstream: { url: 'http://127.0.0.1:9' },
      store: database.url,
      counters: redisUrlWithPrefix(prefix),
      plans: { metered: { meters: { credits: { limit: 1_000 } } } },
      defaultPlan: 'metered',
    });
    // No write-back during the test: what is picked up is picked up at start.
    rt = await createRuntime({ config, file: 'test profile', dir: process.cwd() }, { log: createLog({ level: 'info', destination: logs }), clock: () => NOW, flushIntervalMs: 3_600_000 });

    expect(await rt.counters.meterBalance('acc_savedunits000001', 'credits', PERIOD)).toMatchObject({ used: 25 });
    expect(await rt.counters.meterBalance('acc_savedunits000002', 'credits', PERIOD)).toMatchObject({ used: 12 });
    // Removed from the store once Redis has them: no other process adds them again.
    expect(await store.readPendingUnits(10)).toEqual([]);
    const picked = logs.lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => String(line.msg).includes('saved'));
    expect(picked).toEqual([
      expect.objectContaining({ level: 30, accounts: 2, units: 42, unitsGivenBack: 5, msg: 'adding to Redis units saved in the store by processes that stopped while it was unreachable: 42 charged, 5 given back, for 2 accounts' }),
    ]);
    expect(logs.text).not.toContain('acc_savedunits');
    // And the store has the balances once the process has written them back (as it stops, here).
    await rt.close();
    rt = undefined;
    const stored = await store.loadMeterUsage({ periodStarts: [PERIOD] });
    expect(stored.map(({ accountId, used }) => [accountId, used]).sort()).toEqual([
      ['acc_savedunits000001', 25],
      ['acc_savedunits000002', 12],
    ]);
  });
});
