/**
 * `keygate accounts usage` from a process whose clock is behind the gateway's across a
 * month's turn: the gateway has already stored a balance for the next month, the CLI is
 * still in the earlier one. Each process reports the period its own clock is in (balances
 * are read by their period's first day, never as the latest row stored).
 */
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from './support/keygate.js';
import { startTestUpstream, type TestUpstream } from './support/upstream.js';
import { runCli } from './support/cli.js';
import { tempDir } from './support/temp.js';
import type { ConfigInput } from '../src/config/schema.js';
import { parseConfigObject } from '../src/config/load.js';
import { createRuntime } from '../src/runtime.js';
import { createLog } from '../src/log.js';
import { createAccount } from '../src/operations/accounts.js';
import { createKey } from '../src/operations/keys.js';
import { accountUsage, usageOut } from '../src/operations/usage.js';
import { isoDay, periodBounds } from '../src/meters/period.js';
import { openPostgresStore } from '../src/store/postgres/postgres-database.js';
import { createTestDatabase, deleteRedisKeys, redisUrlWithPrefix, testRedisPrefix, type TestDatabase } from './backends/isolation.js';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from './support/services.js';

const MINUTE = 60_000;
const scaleOut = (await serviceAvailable('PostgreSQL', POSTGRES_URL)) && (await serviceAvailable('Redis', REDIS_URL));

/** Where the scenario keeps its balances: opened before keygate starts, removed after it stops. */
interface Backend {
  /** Makes it ready (a PostgreSQL database created and migrated, say): the folder keygate runs in, and the profile's store and counters. */
  open(): Promise<{ dir: string; settings: Pick<ConfigInput, 'store' | 'counters'> }>;
  remove?(): Promise<void>;
}

/** What the scenario leaves for the tests of its describe block (set before they run). */
interface MonthTurn {
  profile: ConfigInput;
  kg: TestKeygate;
  accountId: string;
}

/**
 * The scenario each backend runs, registered in the calling describe block: a gateway whose
 * clock starts at `startsAt`, in `thisMonth`, charges an account 3 calls of 100 units; its
 * clock then runs a minute into the next month, it charges 1 more call and flushes.
 */
function useMonthTurn(backend: Backend, thisMonth: ReturnType<typeof periodBounds>, startsAt: number): MonthTurn {
  const turn = {} as MonthTurn;
  let upstream: TestUpstream | undefined;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    const { dir, settings } = await backend.open();
    turn.profile = {
      upstream: { url: upstream.url },
      ...settings,
      basePath: '/v1',
      keys: { format: 'hex', hexLength: 40 },
      auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Token' }] },
      plans: { thousand: { meters: { units: { limit: 1000 } } } },
      routes: [{ method: 'POST', path: '/v1/domain/overview', cost: { meter: 'units', perRequest: 100 } }, { path: '/v1/*' }],
    };
    let gatewayNow = startsAt;
    const kg = await startKeygate(turn.profile, { dir, clock: () => gatewayNow });
    turn.kg = kg;
    turn.accountId = (await createAccount(kg.runtime, { name: 'Acme', planId: 'thousand' }, 'test')).id;
    const { secret } = await createKey(kg.runtime, { accountId: turn.accountId, name: 'k' }, 'test');
    const charge = async () => {
      const r = await kg.call('/v1/domain/overview', { method: 'POST', headers: { authorization: `Token ${secret}` } });
      expect(r.status).toBe(200);
      await r.text();
    };
    // This month by both clocks: 3 calls. Then the gateway's clock runs ahead into next month: 1 call.
    for (let i = 0; i < 3; i++) await charge();
    gatewayNow = thisMonth.endsAt + MINUTE;
    await charge();
    await kg.runtime.flush();
  });

  afterAll(async () => {
    await turn.kg?.close();
    await upstream?.close();
    await backend.remove?.();
  });

  return turn;
}

describe('accounts usage when the CLI\'s clock and the gateway\'s are in different months', () => {
  const dir = tempDir('usage-clock-skew');
  const configFile = path.join(dir, 'keygate.yaml');
  // The CLI runs as a user runs it, on the host's clock; the gateway's clock is set.
  const thisMonth = periodBounds('month', Date.now());
  const turn = useMonthTurn({ open: async () => ({ dir, settings: { store: `sqlite:${path.join(dir, 'keygate.db')}` } }) }, thisMonth, Date.now());

  beforeAll(() => {
    writeFileSync(configFile, stringify({ ...turn.profile, dashboard: { enabled: false } }));
  });

  it('the CLI, still in this month by its clock, shows this month\'s balance and period, not the next month\'s the gateway stored', async () => {
    const { kg, accountId } = turn;
    const stored = (await kg.runtime.store.loadMeterUsage({ accountId })).map((r) => [r.periodStart, r.used]).sort();
    expect(stored).toEqual([[thisMonth.start, 300], [isoDay(thisMonth.endsAt), 100]]);

    const json = await runCli(['--config', configFile, '--json', 'accounts', 'usage', accountId]);
    expect([json.code, json.stderr]).toEqual([0, '']);
    const out = JSON.parse(json.stdout) as ReturnType<typeof usageOut>;
    expect(out.periodStart).toBe(thisMonth.start);
    expect(out.meters.units).toMatchObject({ usage: 300, remaining: 700, periodStart: thisMonth.start, periodEnd: isoDay(thisMonth.endsAt) });

    const human = await runCli(['--config', configFile, 'accounts', 'usage', accountId]);
    expect(human.stdout).toMatch(new RegExp(`^units\\s+consumed\\s+300\\s+1000\\s+700\\s+0\\s+${isoDay(thisMonth.endsAt)}$`, 'm'));
    expect(human.stdout).toContain(`requests by key since ${thisMonth.start}:`);
  });

  it('a process whose clock is in the next month shows the next month\'s balance; the gateway, there too, answers the same over its admin API', async () => {
    const { profile, kg, accountId } = turn;
    const loaded = { config: parseConfigObject(profile), file: 'test profile', dir };
    const ahead = await createRuntime(loaded, { log: createLog({ level: 'silent' }), use: 'command', clock: () => thisMonth.endsAt + 2 * MINUTE });
    try {
      const out = usageOut(await accountUsage(ahead, accountId, { keys: true }));
      expect(out.meters.units).toMatchObject({ usage: 100, remaining: 900, periodStart: isoDay(thisMonth.endsAt) });
    } finally {
      await ahead.close();
    }
    const admin = (await (await kg.admin(`/v1/accounts/${accountId}/usage`)).json()) as ReturnType<typeof usageOut>;
    expect(admin.meters.units).toMatchObject({ usage: 100, periodStart: isoDay(thisMonth.endsAt) });
  });
});

describe.skipIf(!scaleOut)('accounts usage across a month turn on PostgreSQL and Redis: each process reads its own month\'s balance from Redis', () => {
  const redisPrefix = testRedisPrefix('usage_clock_skew');
  const thisMonth = periodBounds('month', Date.parse('2026-11-20T00:00:00Z'));
  let database: TestDatabase | undefined;
  const turn = useMonthTurn(
    {
      async open() {
        database = await createTestDatabase('usage_clock_skew');
        const store = openPostgresStore(database.url);
        await store.migrate();
        await store.close();
        return { dir: tempDir('usage-clock-skew-pg'), settings: { store: database.url, counters: redisUrlWithPrefix(redisPrefix) } };
      },
      async remove() {
        await database?.drop();
        await deleteRedisKeys(redisPrefix);
      },
    },
    thisMonth,
    Date.parse('2026-11-30T23:00:00Z'),
  );

  it('a command whose clock is still in November reads November\'s 300 units, one in December reads December\'s 100', async () => {
    const { profile, accountId } = turn;
    const loaded = { config: parseConfigObject(profile), file: 'test profile', dir: tempDir('usage-clock-skew-pg-cli') };
    for (const [at, usage, periodStart] of [
      [thisMonth.endsAt - 10_000, 300, thisMonth.start],
      [thisMonth.endsAt + 2 * MINUTE, 100, isoDay(thisMonth.endsAt)],
    ] as const) {
      const cli = await createRuntime(loaded, { log: createLog({ level: 'silent' }), use: 'command', clock: () => at });
      try {
        expect(usageOut(await accountUsage(cli, accountId, { keys: true })).meters.units).toMatchObject({ usage, periodStart });
      } finally {
        await cli.close();
      }
    }
  });
});
