/**
 * "The standard rate limit can be customized" and the credit table's `Enterprise | custom`
 * row (shared/seeds/003), as the operator gives them to one customer: its own limits in
 * place of its plan's (`keygate accounts update --rate-limit`, `--meter-limit`, or the
 * admin API's PATCH), against examples/seranking-data over real HTTP, with the CLI as its
 * own process on the same SQLite file and a controlled clock for the rolling second.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlledClock, read, startExample, type AccountOut, type KeyOut, type RunningExample } from '../support/example.js';

const JSON_TYPE = 'application/json';
const CALL_RATE = { status: 429, type: JSON_TYPE, body: { error_description: 'Call rate limit reached.' } };
const INSUFFICIENT_FUNDS = {
  status: 400,
  type: JSON_TYPE,
  body: { error_description: 'Insufficient funds, API key is temporarily disabled. Please make a payment to enable you API key or contact us at api@seranking.com.' },
};
const PLAN_WINDOW = [{ name: '10-per-1s', limit: 10, window: '1s', scope: 'key' }];

/** Limit flags the CLI refuses, and the start of what it says (accounts update and create alike). */
const BAD_FLAGS: [string[], string][] = [
  [['--rate-limit', '10/s'], 'error: --rate-limit: expected <limit>-per-<window> as 100-per-1s or 5000-per-1h-per-account (no spaces; a window is a number and ms, s, m, h or d), or plan (the plan\'s windows) or none\n'],
  [['--rate-limit', '10-per-1 hour'], 'error: --rate-limit: expected <limit>-per-<window> as 100-per-1s or 5000-per-1h-per-account (no spaces; a window is a number and ms, s, m, h or d), or plan (the plan\'s windows) or none\n'],
  [['--rate-limit', `${'9'.repeat(400)}-per-1s`], "error: --rate-limit: too large: a window's limit is at most 999999999999999\n"],
  [['--rate-limit', '0-per-1s'], 'error: --rate-limit: "0-per-1s": the number of requests (before -per-) must be at least 1\n'],
  [['--rate-limit', '10-per-1s', '--rate-limit', 'plan'], 'error: --rate-limit (the 2nd of 2): expected <limit>-per-<window>'],
  [['--rate-limit', '10-per-1s', '--rate-limit', '20-per-1s'], 'error: --rate-limit (the 2nd of 2): the 1st (10-per-1s) is already a per-key window of 1s'],
  [['--meter-limit', 'units=-5'], 'error: --meter-limit: expected <meter>=<limit> (a number, 0 or more) or <meter>=plan, as units=5000000\n'],
  [['--meter-limit', 'credits=5'], 'error: --meter-limit: the units_1m plan has no such meter; its meters: units\n'],
  [['--meter-limit', 'unit=5'], 'error: --meter-limit: the units_1m plan has no such meter (did you mean "units"?); its meters: units\n'],
];
/** Limits the admin API refuses, PATCH and POST alike. */
const BAD_LIMITS: unknown[] = [
  { meters: { credits: 5 } },
  { meters: { units: -1 } },
  { rateLimits: [{ limit: 10, window: 'a second' }] },
  { rateLimits: [{ limit: 0, window: '1s' }] },
  { rateLimits: [{ limit: 5, window: '1s', scope: 'team' }] },
  { rateLimits: [{ limit: 5, window: '1s' }, { limit: 50, window: '1000ms' }] },
];

const token = (key: string): RequestInit => ({ headers: { authorization: `Token ${key}` } });

interface AccountWithLimits extends AccountOut {
  limits: { rateLimits: { name: string; limit: number; window: string; scope: string }[] | null; meters: Record<string, number> };
  effectiveLimits: { rateLimits: { name: string; limit: number; window: string; scope: string }[]; meters: Record<string, number> };
}
interface Subscription {
  subscription_info: { units_limit: number; units_left: number };
}
interface Usage {
  meters: { units: { usage: number; limit: number; remaining: number } };
}

describe('SE Ranking Data: custom rate limits and the Enterprise row, per account', () => {
  const clock = controlledClock();
  let ex: RunningExample;

  beforeAll(async () => {
    ex = await startExample('seranking-data', { clock });
  });
  afterAll(async () => {
    await ex?.close();
  });

  async function customer(name: string): Promise<{ account: AccountOut; key: KeyOut }> {
    const account = await ex.createAccount(name, 'units_1m');
    return { account, key: await ex.createKey(account.id, 'Data API') };
  }
  /** Requests inside one second until the first refusal (at most `most`): how many got through, and the refusal. */
  async function burst(secret: string, most: number) {
    clock.advance(1_000);
    let served = 0;
    let first: Response | undefined;
    for (let i = 0; i < most; i++) {
      const response = await ex.call('/v1/account/subscription', token(secret));
      if (i === 0) first = response;
      if (response.status !== 200) return { served, refused: response, first };
      served += 1;
      await response.arrayBuffer();
    }
    return { served, refused: undefined, first };
  }

  it('an account given 25 requests a second gets 25 through, then 429 in the API\'s envelope with its own RateLimit fields; another on the same plan keeps 10', async () => {
    const enterprise = await customer('Enterprise Co');
    const neighbour = await customer('Neighbour Co');
    const updated = await ex.cliJson<AccountWithLimits>(['accounts', 'update', enterprise.account.id, '--rate-limit', '25-per-1s']);
    expect(updated.limits).toEqual({ rateLimits: [{ name: '25-per-1s', limit: 25, window: '1s', scope: 'key' }], meters: {} });
    expect(updated.effectiveLimits).toEqual({ rateLimits: [{ name: '25-per-1s', limit: 25, window: '1s', scope: 'key' }], meters: { units: 1_000_000 } });

    const own = await burst(enterprise.key.secret, 40);
    expect(own.served).toBe(25);
    expect(own.first?.headers.get('ratelimit-policy')).toBe('"25-per-1s";q=25;w=1');
    expect(own.first?.headers.get('ratelimit')).toBe('"25-per-1s";r=24;t=1');
    expect(await read(own.refused as Response)).toEqual(CALL_RATE);
    expect(own.refused?.headers.get('ratelimit-policy')).toBe('"25-per-1s";q=25;w=1');
    expect(own.refused?.headers.get('ratelimit')).toBe('"25-per-1s";r=0;t=1');

    const plain = await burst(neighbour.key.secret, 40);
    expect(plain.served).toBe(10);
    expect(await read(plain.refused as Response)).toEqual(CALL_RATE);
    expect(plain.refused?.headers.get('ratelimit-policy')).toBe('"10-per-1s";q=10;w=1');

    // The operator's view says so too: `accounts show` and the admin API.
    const shown = await ex.cliOk(['accounts', 'show', enterprise.account.id]);
    expect(shown.stdout).toMatch(/rateLimits\s+25-per-1s \(the account's own\)/);
    expect(shown.stdout).toMatch(/meterLimits\s+units 1000000\n/);
    const viaApi = (await (await ex.kg.admin(`/v1/accounts/${neighbour.account.id}`)).json()) as AccountWithLimits;
    expect({ limits: viaApi.limits, effective: viaApi.effectiveLimits }).toEqual({ limits: { rateLimits: null, meters: {} }, effective: { rateLimits: PLAN_WINDOW, meters: { units: 1_000_000 } } });

    // Given back to the plan: 10 again, from the very next request.
    const cleared = await ex.cliJson<AccountWithLimits>(['accounts', 'update', enterprise.account.id, '--rate-limit', 'plan']);
    expect(cleared.limits.rateLimits).toBeNull();
    const again = await burst(enterprise.key.secret, 40);
    expect(again.served).toBe(10);
    expect(await read(again.refused as Response)).toEqual(CALL_RATE);
    expect(again.refused?.headers.get('ratelimit-policy')).toBe('"10-per-1s";q=10;w=1');
  });

  it('a lowered units limit refuses at it (400 Insufficient funds); the subscription, usage and audit say so; units=plan gives the plan\'s back', async () => {
    const { account, key } = await customer('Trial Co');
    await ex.cliOk(['accounts', 'update', account.id, '--meter-limit', 'units=150']);
    const call = async (path: string) => {
      clock.advance(200);
      return read(await ex.call(path, token(key.secret)));
    };
    expect(((await call('/v1/account/subscription')).body as Subscription).subscription_info).toMatchObject({ units_limit: 150, units_left: 150 });
    // 100 units a call, admitted while anything is left (admit: untilZero): 100, then the last 50, then refused.
    expect((await call('/v1/domain/overview?domain=seranking.com')).status).toBe(200);
    expect((await call('/v1/domain/overview?domain=seranking.com')).status).toBe(200);
    expect(await call('/v1/domain/overview?domain=seranking.com')).toEqual(INSUFFICIENT_FUNDS);
    const usage = await ex.cliJson<Usage>(['accounts', 'usage', account.id]);
    expect(usage.meters.units).toMatchObject({ usage: 150, limit: 150, remaining: 0 });
    const viaApi = (await (await ex.kg.admin(`/v1/accounts/${account.id}/usage`)).json()) as Usage;
    expect(viaApi.meters.units).toMatchObject({ usage: 150, limit: 150, remaining: 0 });

    const audit = await ex.cliJson<{ action: string; actor: string; detail: Record<string, unknown> }[]>(['audit', '--account', account.id]);
    expect(audit.find((event) => event.action === 'account.limits_changed')).toMatchObject({
      actor: 'cli',
      detail: { before: { rateLimits: null, meters: {} }, after: { rateLimits: null, meters: { units: 150 } } },
    });

    await ex.cliOk(['accounts', 'update', account.id, '--meter-limit', 'units=plan']);
    expect((await call('/v1/domain/overview?domain=seranking.com')).status).toBe(200);
    expect(((await call('/v1/account/subscription')).body as Subscription).subscription_info).toMatchObject({ units_limit: 1_000_000, units_left: 1_000_000 - 250 });
  });

  it('the admin API takes the same change, and refuses an unknown meter, a bad window and a negative limit, naming the field', async () => {
    const { account, key } = await customer('Scripted Co');
    const patch = (body: unknown) => ex.kg.admin(`/v1/accounts/${account.id}`, { method: 'PATCH', body: JSON.stringify(body) });
    const refused = async (body: unknown) => {
      const response = await patch(body);
      return { status: response.status, detail: ((await response.json()) as { detail: string }).detail };
    };
    expect(await refused({ limits: { meters: { credits: 5 } } })).toEqual({ status: 400, detail: 'limits.meters.credits: the units_1m plan has no meter "credits"; its meters: units' });
    expect(await refused({ limits: { meters: { Units: 5 } } })).toEqual({ status: 400, detail: 'limits.meters.Units: the units_1m plan has no meter "Units" (did you mean "units"?); its meters: units' });
    // A limit JSON reads as Infinity (1e400): too large, and the most it may be.
    const tooLarge = async (limits: string) => {
      const response = await ex.kg.admin(`/v1/accounts/${account.id}`, { method: 'PATCH', body: `{"limits": ${limits}}` });
      return { status: response.status, detail: ((await response.json()) as { detail: string }).detail };
    };
    expect(await tooLarge('{"rateLimits": [{"limit": 1e400, "window": "1s"}]}')).toEqual({ status: 400, detail: "body.limits.rateLimits.0.limit: too large: a window's limit is at most 999999999999999" });
    expect(await tooLarge('{"rateLimits": [{"limit": 1e300, "window": "1s"}]}')).toEqual({
      status: 400,
      detail: 'limits.rateLimits[0].limit: too large: a window\'s limit is at most 999999999999999 (a window is { limit: 100, window: "1s", scope: "key" or "account" })',
    });
    expect(await tooLarge('{"meters": {"units": 1e400}}')).toEqual({ status: 400, detail: "body.limits.meters.units: too large: a meter's limit is at most 999999999999999" });
    expect(await refused({ limits: { meters: { units: -1 } } })).toEqual({ status: 400, detail: expect.stringMatching(/^limits\.meters\.units: a meter's limit is a number from 0 to/) });
    expect(await refused({ limits: { rateLimits: [{ limit: 10, window: 'a second' }] } })).toEqual({ status: 400, detail: expect.stringMatching(/^limits\.rateLimits\[0\]\.window: /) });
    expect(await refused({ limits: { rateLimits: [{ limit: 0, window: '1s' }] } })).toEqual({ status: 400, detail: expect.stringMatching(/^limits\.rateLimits\[0\]\.limit: /) });
    expect(await refused({ limits: { rateLimits: [{ limit: 5, window: '1s', scope: 'team' }] } })).toMatchObject({ status: 400, detail: expect.stringContaining('rateLimits') });
    // Nothing was saved by any of them.
    const unchanged = (await (await ex.kg.admin(`/v1/accounts/${account.id}`)).json()) as AccountWithLimits;
    expect(unchanged.limits).toEqual({ rateLimits: null, meters: {} });

    const response = await patch({ limits: { rateLimits: [{ limit: 3, window: '1s', scope: 'account' }], meters: { units: 2_000_000 } } });
    expect(response.status).toBe(200);
    const changed = (await response.json()) as AccountWithLimits;
    expect(changed.effectiveLimits).toEqual({ rateLimits: [{ name: '3-per-1s', limit: 3, window: '1s', scope: 'account' }], meters: { units: 2_000_000 } });
    const own = await burst(key.secret, 10);
    expect(own.served).toBe(3);
    expect(await read(own.refused as Response)).toEqual(CALL_RATE);
    clock.advance(1_000);
    expect(((await read(await ex.call('/v1/account/subscription', token(key.secret)))).body as Subscription).subscription_info.units_limit).toBe(2_000_000);

    // null gives everything back to the plan.
    expect((await patch({ limits: null })).status).toBe(200);
    expect((await burst(key.secret, 20)).served).toBe(10);
  });

  it('the CLI refuses a window or meter limit it cannot read, and a meter the plan lacks, naming the flag', async () => {
    const { account } = await customer('Typo Co');
    for (const [flags, stderr] of BAD_FLAGS) {
      const result = await ex.cli(['accounts', 'update', account.id, ...flags]);
      expect(result.code, flags.join(' ')).toBe(1);
      expect(result.stderr.startsWith(stderr) || result.stderr === stderr, `${flags.join(' ')}: ${result.stderr}`).toBe(true);
    }
    const unchanged = await ex.cliJson<AccountWithLimits>(['accounts', 'show', account.id]);
    expect(unchanged.limits).toEqual({ rateLimits: null, meters: {} });
  });

  it('accounts create --rate-limit gives the new account its window from its first request (25 through, not the plan\'s 10), in one account.created event', async () => {
    const created = await ex.cliJson<AccountWithLimits>(['accounts', 'create', '--name', 'Born Big Co', '--plan', 'units_1m', '--rate-limit', '25-per-1s', '--meter-limit', 'units=2000000']);
    expect(created.limits).toEqual({ rateLimits: [{ name: '25-per-1s', limit: 25, window: '1s', scope: 'key' }], meters: { units: 2_000_000 } });
    expect(created.effectiveLimits).toEqual({ rateLimits: [{ name: '25-per-1s', limit: 25, window: '1s', scope: 'key' }], meters: { units: 2_000_000 } });
    const key = await ex.createKey(created.id, 'Data API');
    const own = await burst(key.secret, 40);
    expect(own.served).toBe(25);
    expect(await read(own.refused as Response)).toEqual(CALL_RATE);
    expect(own.refused?.headers.get('ratelimit-policy')).toBe('"25-per-1s";q=25;w=1');

    const audit = await ex.cliJson<{ action: string; detail: Record<string, unknown> }[]>(['audit', '--account', created.id]);
    expect(audit.filter((event) => event.action.startsWith('account.'))).toEqual([
      expect.objectContaining({
        action: 'account.created',
        detail: { name: 'Born Big Co', planId: 'units_1m', limits: { rateLimits: [{ name: '25-per-1s', limit: 25, window: '1s', scope: 'key' }], meters: { units: 2_000_000 } } },
      }),
    ]);
  });

  it('refuses two windows of one length and scope (the larger limit would never refuse), naming both, in the CLI and the admin API; nothing changes', async () => {
    const { account } = await customer('Typo Co');
    const why = (earlier: string) =>
      `${earlier} is already a per-key window of 1m: of two windows of one length and scope, the one with the larger limit never refuses a request (was another length meant?); give each length one window per scope`;
    const updated = await ex.cli(['accounts', 'update', account.id, '--rate-limit', '100-per-1m', '--rate-limit', '50-per-1s', '--rate-limit', '5000-per-60s']);
    expect([updated.code, updated.stdout, updated.stderr]).toEqual([1, '', `error: --rate-limit (the 3rd of 3): ${why('the 1st (100-per-1m)')}\n`]);
    const patched = await ex.kg.admin(`/v1/accounts/${account.id}`, { method: 'PATCH', body: JSON.stringify({ limits: { rateLimits: [{ limit: 100, window: '1m' }, { limit: 5000, window: '1m' }] } }) });
    expect(patched.status).toBe(400);
    expect(((await patched.json()) as { detail: string }).detail).toBe(`limits.rateLimits[1]: ${why('limits.rateLimits[0]')}`);
    // One length per key and per account is two windows, each of which can refuse.
    const both = await ex.cliJson<AccountWithLimits>(['accounts', 'update', account.id, '--rate-limit', '100-per-1m', '--rate-limit', '500-per-1m-per-account']);
    expect(both.limits.rateLimits?.map((rl) => rl.name)).toEqual(['100-per-1m', '500-per-1m']);
    const audit = await ex.cliJson<{ action: string }[]>(['audit', '--account', account.id]);
    expect(audit.filter((event) => event.action === 'account.limits_changed')).toHaveLength(1);
  });

  it('accounts create refuses the limit flags update refuses, with the same words, and creates nothing', async () => {
    const before = await ex.cliJson<AccountOut[]>(['accounts', 'list', '--search', 'Refused Co']);
    for (const [flags, stderr] of BAD_FLAGS) {
      const result = await ex.cli(['accounts', 'create', '--name', 'Refused Co', '--plan', 'units_1m', ...flags]);
      expect(result.code, flags.join(' ')).toBe(1);
      expect(result.stderr.startsWith(stderr) || result.stderr === stderr, `${flags.join(' ')}: ${result.stderr}`).toBe(true);
    }
    expect(before).toEqual([]);
    expect(await ex.cliJson<AccountOut[]>(['accounts', 'list', '--search', 'Refused Co'])).toEqual([]);
  });

  it('POST /v1/accounts takes limits: the account gets its raised window at once; bad limits get the 400 PATCH gives and create nothing', async () => {
    const response = await ex.kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'Posted Co', planId: 'units_1m', limits: { rateLimits: [{ limit: 15, window: '1s' }] } }) });
    expect(response.status).toBe(201);
    const created = (await response.json()) as AccountWithLimits;
    expect(created.effectiveLimits).toEqual({ rateLimits: [{ name: '15-per-1s', limit: 15, window: '1s', scope: 'key' }], meters: { units: 1_000_000 } });
    const key = await ex.createKey(created.id, 'Data API');
    const own = await burst(key.secret, 30);
    expect(own.served).toBe(15);
    expect(await read(own.refused as Response)).toEqual(CALL_RATE);

    const problem = async (response: Response) => ({ status: response.status, detail: ((await response.json()) as { detail: string }).detail });
    for (const limits of BAD_LIMITS) {
      const patched = await problem(await ex.kg.admin(`/v1/accounts/${created.id}`, { method: 'PATCH', body: JSON.stringify({ limits }) }));
      const posted = await problem(await ex.kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'Refused Post Co', planId: 'units_1m', limits }) }));
      expect(patched.status, JSON.stringify(limits)).toBe(400);
      expect(posted, JSON.stringify(limits)).toEqual(patched);
    }
    const listed = (await (await ex.kg.admin('/v1/accounts?q=Refused%20Post')).json()) as AccountOut[];
    expect(listed).toEqual([]);
  });
});
