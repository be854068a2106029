/**
 * A changed profile put into effect without a restart: new limits, prices, routes and
 * messages apply to the next request, while the counters (unchanged rate-limit windows,
 * charges) carry on; a change only a restart can apply leaves everything as it was.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigReloadError, createKeygate, parseConfigObject, type ConfigInput, type Keygate } from '../src/index.js';
import { createAccount } from '../src/operations/accounts.js';
import { createKey } from '../src/operations/keys.js';
import { periodBounds } from '../src/meters/period.js';
import { tempDir } from './support/temp.js';
import { ADMIN_TOKEN, LogCapture, startKeygate, type TestKeygate } from './support/keygate.js';
import { ConfigError } from '../src/config/config-error.js';
import { loadConfigFile } from '../src/config/load.js';
import { createLog } from '../src/log.js';
import { serve } from '../src/serve.js';
import { startTestUpstream } from './support/upstream.js';

describe('reloading the profile in a running keygate', () => {
  const dir = tempDir('reload');
  const base = (): ConfigInput => ({
    upstream: { url: 'http://127.0.0.1:1' }, // never used in process
    store: `sqlite:${path.join(dir, 'k.db')}`,
    errors: { envelope: 'error', reasons: { missing_key: { message: 'Missing API key' } } },
    plans: { team: { rateLimits: [{ limit: 2, window: '1m' }], meters: { credits: { limit: 100 } } } },
    routes: [{ path: '/rows', cost: { meter: 'credits', perRequest: 10 } }],
  });
  const loaded = (profile: ConfigInput) => ({ config: parseConfigObject(profile), file: 'inline', dir });
  let gate: Keygate;
  let accountId: string;
  let headers: Record<string, string>;

  const check = (url: string, withKey = true) => gate.check({ method: 'GET', url, headers: withKey ? headers : {} });
  /** Whether a request is admitted; one that is, is answered 200 and settled, as the API would (close() waits for what is not). */
  const served = async (url: string) => {
    const result = await check(url);
    if (result.allowed) await result.settle(200);
    return result.allowed;
  };
  const creditsUsed = async () =>
    (await gate.runtime.counters.meterBalance(accountId, 'credits', periodBounds('month', gate.runtime.clock()).start)).used;

  beforeAll(async () => {
    gate = await createKeygate(loaded(base()));
    const account = await createAccount(gate.runtime, { name: 'Acme', planId: 'team' }, 'test');
    accountId = account.id;
    headers = { authorization: `Bearer ${(await createKey(gate.runtime, { accountId, name: 'k' }, 'test')).secret}` };
  });

  afterAll(async () => {
    await gate?.close();
  });

  it('applies new prices, routes and messages to the next request; rate-limit windows and charges carry on', async () => {
    for (let i = 0; i < 2; i++) {
      const result = await check('/rows');
      expect(result.allowed).toBe(true);
      if (result.allowed) await result.settle(200);
    }
    expect((await check('/rows')).allowed).toBe(false);
    expect(await creditsUsed()).toBe(20);

    const next = base();
    next.errors = { envelope: 'error', reasons: { missing_key: { message: 'Send your key' } } };
    next.scopes = ['admin'];
    next.routes = [
      { path: '/rows', cost: { meter: 'credits', perRequest: 25 } },
      { path: '/new', scopes: ['admin'] },
    ];
    expect((await gate.reload(loaded(next))).sort()).toEqual(['errors', 'routes', 'scopes']);

    // The unchanged window still holds its two requests.
    const limited = await check('/rows');
    expect(limited.allowed === false && limited.reason).toBe('rate_limited');
    const missing = await check('/rows', false);
    expect(missing.allowed === false && missing.error.body).toBe(JSON.stringify({ error: 'Send your key' }));
    const scoped = await check('/new');
    expect(scoped.allowed === false && scoped.reason).toBe('insufficient_scope');

    // A window whose limit changed keeps the requests it holds: raised to 5, it has room for 3 more, not 5.
    next.plans = { team: { rateLimits: [{ limit: 5, window: '1m' }], meters: { credits: { limit: 100 } } } };
    expect(await gate.reload(loaded(next))).toEqual(['plans']);
    const allowed = await check('/rows');
    expect(allowed.allowed).toBe(true);
    if (!allowed.allowed) return;
    expect(allowed.headers.ratelimit).toBe('"5-per-1m";r=2;t=60');
    await allowed.settle(200);
    expect(await creditsUsed()).toBe(20 + 25);

    // Lowered to 3, under the three it holds: refused, not given a fresh minute.
    next.plans = { team: { rateLimits: [{ limit: 3, window: '1m' }], meters: { credits: { limit: 100 } } } };
    expect(await gate.reload(loaded(next))).toEqual(['plans']);
    const lowered = await check('/rows');
    expect(lowered.allowed === false && lowered.reason).toBe('rate_limited');

    // Another length is another window, counted from the reload on.
    next.plans = { team: { rateLimits: [{ limit: 5, window: '2m' }], meters: { credits: { limit: 100 } } } };
    expect(await gate.reload(loaded(next))).toEqual(['plans']);
    const longer = await check('/rows');
    expect(longer.allowed && longer.headers.ratelimit).toBe('"5-per-2m";r=4;t=120');
    if (longer.allowed) await longer.settle(200);
  });

  it('refuses a cached key at once when its plan loses API access', async () => {
    expect(await served('/rows')).toBe(true); // the key is cached now
    const next = base();
    next.errors = { envelope: 'error', reasons: { missing_key: { message: 'Send your key' } } };
    next.plans = { team: { apiAccess: false, meters: { credits: { limit: 100 } } } };
    next.scopes = ['admin'];
    next.routes = [{ path: '/rows', cost: { meter: 'credits', perRequest: 25 } }, { path: '/new', scopes: ['admin'] }];
    expect(await gate.reload(loaded(next))).toEqual(['plans']);
    const refused = await check('/rows');
    expect(refused.allowed === false && refused.reason).toBe('api_disabled');
  });

  it('answers no changes for the same profile read again', async () => {
    const next = base();
    next.plans = { team: { rateLimits: [{ limit: 5, window: '1m' }], meters: { credits: { limit: 100 } } } };
    await gate.reload(loaded(next));
    expect(await gate.reload(loaded(next))).toEqual([]);
  });

  it('keeps a route\'s own windows when the route moves in the list, and gives none of them to another route', async () => {
    const withRoutes = (routes: ConfigInput['routes']) => ({ ...base(), plans: { team: { meters: { credits: { limit: 100 } } } }, routes });
    const a = { path: '/a', rateLimits: [{ limit: 2, window: '1m' }] };
    const b = { path: '/b', rateLimits: [{ limit: 2, window: '1m' }] };
    await gate.reload(loaded(withRoutes([a, b])));
    for (let i = 0; i < 2; i++) expect(await served('/a')).toBe(true);
    expect((await check('/a')).allowed).toBe(false);

    // /b takes /a's place in the list: it starts with its own window, not /a's.
    expect(await gate.reload(loaded(withRoutes([b])))).toEqual(['routes']);
    expect(await served('/b')).toBe(true);
    // /a comes back, after /b: its window kept counting.
    await gate.reload(loaded(withRoutes([b, a])));
    const limited = await check('/a');
    expect(limited.allowed === false && limited.reason).toBe('rate_limited');
  });

  it('matches paths ignoring case from the next request once upstream.caseSensitivePaths is false, and again by case once it is back', async () => {
    // No rate limit: the earlier tests used the window up.
    const withCase = (caseSensitivePaths: boolean): ConfigInput => ({ ...base(), plans: { team: { meters: { credits: { limit: 1_000 } } } }, upstream: { url: 'http://127.0.0.1:1', caseSensitivePaths } });
    await gate.reload(loaded(withCase(true)));
    const noRoute = await check('/ROWS');
    expect(noRoute.allowed === false && noRoute.error.status).toBe(404);
    expect(await gate.reload(loaded(withCase(false)))).toEqual(['upstream.caseSensitivePaths']);
    const rows = await check('/ROWS');
    expect(rows.allowed).toBe(true);
    if (rows.allowed) await rows.settle(404);
    expect(await gate.reload(loaded(withCase(true)))).toEqual(['upstream.caseSensitivePaths']);
    expect((await check('/ROWS')).allowed).toBe(false);
  });

  it('takes plans listed in another order as a change: the first plan is the default one', async () => {
    const plans = (order: string[]) => ({ ...base(), plans: Object.fromEntries(order.map((id) => [id, { meters: { credits: { limit: 100 } } }])) });
    await gate.reload(loaded(plans(['team', 'pro'])));
    expect((await createAccount(gate.runtime, { name: 'Before' }, 'test')).planId).toBe('team');
    expect(await gate.reload(loaded(plans(['pro', 'team'])))).toEqual(['plans']);
    expect((await createAccount(gate.runtime, { name: 'After' }, 'test')).planId).toBe('pro');
  });

  it('takes routes, scopes and trusted proxies listed in another order as no change (requests are judged alike), and a plan\'s windows in another order as one', async () => {
    const windows = [{ limit: 1_000, window: '1s' }, { limit: 100_000, window: '1h' }];
    const listed = (order: <T>(items: T[]) => T[], rateLimits = windows): ConfigInput => ({
      ...base(),
      store: `sqlite:${path.join(dir, 'order.db')}`, // the shared gate holds k.db
      trustedProxies: order(['10.0.0.0/8', '192.168.0.0/16']),
      scopes: order(['rows:read', 'rows:write']),
      // A plan's id may hold a dot: its scopes are still a set.
      plans: { 'team.v2': { scopes: order(['rows:read', 'rows:write']), rateLimits, meters: { credits: { limit: 1_000 } } } },
      routes: order([{ path: '/rows', scopes: order(['rows:read', 'rows:write']) }, { path: '/*' }]),
    });
    const asWritten = <T,>(items: T[]) => items;
    const reversed = <T,>(items: T[]) => [...items].reverse();
    // trustedProxies takes a restart: the profile in use must hold the same ones first.
    const fresh = await createKeygate(loaded(listed(asWritten)));
    try {
      expect(await fresh.reload(loaded(listed(reversed)))).toEqual([]);
      expect(await fresh.reload(loaded(listed(reversed, [...windows].reverse())))).toEqual(['plans']);
    } finally {
      await fresh.close();
    }
  });

  it('takes one reload at a time, in the order asked', async () => {
    // The first adds a meter on a period of its own: it reads that period's balances from
    // the store before it applies, and the second must still come after it.
    const first = { ...base(), errors: { envelope: 'error' as const, reasons: { missing_key: { message: 'first' } } } };
    first.plans = { team: { meters: { credits: { limit: 100 }, exports: { limit: 5, period: { billingDay: 15 } } } } };
    const second = { ...base(), errors: { envelope: 'error' as const, reasons: { missing_key: { message: 'second' } } } };
    await Promise.all([gate.reload(loaded(first)), gate.reload(loaded(second))]);
    const missing = await check('/rows', false);
    expect(missing.allowed === false && missing.error.body).toBe(JSON.stringify({ error: 'second' }));
  });

  it('changes nothing when a field only a restart applies has changed, and names it', async () => {
    const before = gate.runtime.config;
    const next = base();
    next.store = `sqlite:${path.join(dir, 'other.db')}`;
    next.listen = { port: 9999 };
    next.trustedProxies = ['10.0.0.0/8'];
    next.errors = { envelope: 'error', reasons: { missing_key: { message: 'not applied' } } };
    const error = await gate.reload(loaded(next)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigReloadError);
    expect((error as ConfigReloadError).fields.sort()).toEqual(['listen.port', 'store', 'trustedProxies']);
    expect((error as Error).message).toContain('take effect only when keygate restarts: nothing was reloaded');
    expect(gate.runtime.config).toBe(before);
    // The plan's message change was not applied either.
    const missing = await check('/rows', false);
    expect(missing.allowed === false && missing.error.body).toBe(JSON.stringify({ error: 'second' }));
  });
});

describe('a reload that drops a plan accounts are on', () => {
  it('refuses their keys with api_disabled, and the refusal is still the key\'s and the account\'s in the log', async () => {
    const upstream = await startTestUpstream();
    const dir = tempDir('reload-dropped-plan');
    const profile = (plans: ConfigInput['plans']): ConfigInput => ({ upstream: { url: upstream.url }, store: `sqlite:${path.join(dir, 'keygate.db')}`, dashboard: { enabled: false }, plans });
    const kg = await startKeygate(profile({ pro: {} }), { dir });
    try {
      const account = await createAccount(kg.runtime, { name: 'Acme', planId: 'pro' }, 'test');
      const key = await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test');
      const call = () => kg.call('/data', { headers: { authorization: `Bearer ${key.secret}` } });
      expect((await call()).status).toBe(200);
      expect(await kg.reload({ config: parseConfigObject(profile({ professional: {} })), file: 'inline', dir })).toEqual(['plans']);
      const refused = await call();
      expect(refused.status).toBe(403);
      await refused.text();
      const line = kg.logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.reason === 'api_disabled');
      expect(line).toMatchObject({ msg: 'request', key: key.key.id, account: account.id });
    } finally {
      await kg.close();
      await upstream.close();
    }
  });
});

describe('reloads in /metrics', () => {
  it('counts reloads applied and refused from 0, and says when the profile in use took effect (start-up, then the last reload applied)', async () => {
    const dir = tempDir('reload-metrics');
    const profile = (message: string): ConfigInput => ({
      upstream: { url: 'http://127.0.0.1:1' },
      store: `sqlite:${path.join(dir, 'keygate.db')}`,
      dashboard: { enabled: false },
      errors: { envelope: 'error', reasons: { missing_key: { message } } },
    });
    const started = Date.now() / 1000;
    const kg = await startKeygate(profile('First'), { dir });
    const scrape = async () => {
      const text = await (await kg.admin('/metrics')).text();
      const value = (series: string) => Number(text.match(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm'))?.[1]);
      return {
        applied: value('keygate_config_reloads_total{result="applied"}'),
        refused: value('keygate_config_reloads_total{result="refused"}'),
        lastSuccess: value('keygate_config_last_reload_success_timestamp_seconds'),
      };
    };
    try {
      const atStart = await scrape();
      expect(atStart).toMatchObject({ applied: 0, refused: 0 });
      expect(atStart.lastSuccess).toBeGreaterThanOrEqual(Math.floor(started));
      expect(atStart.lastSuccess).toBeLessThanOrEqual(Date.now() / 1000);

      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await kg.reload({ config: parseConfigObject(profile('Second')), file: 'inline', dir })).toEqual(['errors']);
      const applied = await scrape();
      expect(applied).toMatchObject({ applied: 1, refused: 0 });
      expect(applied.lastSuccess).toBeGreaterThan(atStart.lastSuccess);

      // Only a restart can move the store: refused, and the time of the last success stays.
      const moved = { ...profile('Third'), store: `sqlite:${path.join(dir, 'other.db')}` };
      await expect(kg.reload({ config: parseConfigObject(moved), file: 'inline', dir })).rejects.toThrow(ConfigReloadError);
      expect(await scrape()).toEqual({ applied: 1, refused: 1, lastSuccess: applied.lastSuccess });
    } finally {
      await kg.close();
    }
  });
});

describe('the profile in effect in /metrics', () => {
  it('is one digest on processes that apply the same plans, routes and messages, whatever their store or ports; another once one reloads a change', async () => {
    const dir = tempDir('reload-digest');
    const profile = (message: string, db: string): ConfigInput => ({
      upstream: { url: 'http://127.0.0.1:1' },
      store: `sqlite:${path.join(dir, db)}`,
      dashboard: { enabled: false },
      errors: { envelope: 'error', reasons: { missing_key: { message } } },
    });
    const one = await startKeygate(profile('First', 'one.db'), { dir });
    const other = await startKeygate(profile('First', 'other.db'), { dir });
    const digest = async (kg: TestKeygate) => {
      const series = (await (await kg.admin('/metrics')).text()).match(/^keygate_config_info\{digest="([0-9a-f]+)"\} 1$/gm) ?? [];
      expect(series).toHaveLength(1);
      return /digest="([0-9a-f]+)"/.exec(series[0] as string)?.[1];
    };
    try {
      const first = await digest(one);
      expect(first).toMatch(/^[0-9a-f]{16}$/);
      expect(await digest(other)).toBe(first);

      await one.reload({ config: parseConfigObject(profile('Second', 'one.db')), file: 'inline', dir });
      const second = await digest(one);
      expect(second).not.toBe(first);
      expect(await digest(other)).toBe(first);

      // A refused reload leaves the profile, and its digest, as they were.
      await expect(one.reload({ config: parseConfigObject(profile('Third', 'moved.db')), file: 'inline', dir })).rejects.toThrow(ConfigReloadError);
      expect(await digest(one)).toBe(second);

      await other.reload({ config: parseConfigObject(profile('Second', 'other.db')), file: 'inline', dir });
      expect(await digest(other)).toBe(second);
    } finally {
      await Promise.all([one.close(), other.close()]);
    }
  });
  it('is one digest on processes whose profiles list the same routes and scopes in another order; another once the order of a plan\'s windows changes (RateLimit-Policy lists them so)', async () => {
    const dir = tempDir('reload-digest-order');
    const windows = [{ limit: 10, window: '1s' }, { limit: 1000, window: '1h' }];
    const profile = (db: string, order: <T>(items: T[]) => T[], rateLimits = windows): ConfigInput => ({
      upstream: { url: 'http://127.0.0.1:1' },
      store: `sqlite:${path.join(dir, db)}`,
      dashboard: { enabled: false },
      scopes: order(['rows:read', 'rows:write']),
      plans: { team: { scopes: order(['rows:read', 'rows:write']), rateLimits } },
      routes: order([{ path: '/rows', scopes: order(['rows:read', 'rows:write']) }, { path: '/*' }]),
    });
    const asWritten = <T,>(items: T[]) => items;
    const reversed = <T,>(items: T[]) => [...items].reverse();
    const one = await startKeygate(profile('one.db', asWritten), { dir });
    const other = await startKeygate(profile('other.db', reversed), { dir });
    const digest = async (kg: TestKeygate) => /keygate_config_info\{digest="([0-9a-f]+)"\} 1/.exec(await (await kg.admin('/metrics')).text())?.[1];
    try {
      const first = await digest(one);
      expect(first).toMatch(/^[0-9a-f]{16}$/);
      expect(await digest(other)).toBe(first);
      await other.reload({ config: parseConfigObject(profile('other.db', reversed, [...windows].reverse())), file: 'inline', dir });
      expect(await digest(other)).not.toBe(first);
    } finally {
      await Promise.all([one.close(), other.close()]);
    }
  });
});

describe('a profile a reload refuses', () => {
  it('is logged with its problems as a list, as a failed start gives them, the message in one line', async () => {
    const dir = tempDir('reload-problems');
    const file = path.join(dir, 'keygate.yaml');
    const yaml = (plans: string) => `upstream:\n  url: http://127.0.0.1:1\nstore: sqlite:${path.join(dir, 'keygate.db')}\ndashboard:\n  enabled: false\n${plans}`;
    writeFileSync(file, yaml(''));
    const logs = new LogCapture();
    const kg = await serve(loadConfigFile(file), { log: createLog({ level: 'info', destination: logs }), adminToken: ADMIN_TOKEN, ports: { gateway: 0, admin: 0, dashboard: 0 } });
    try {
      writeFileSync(file, yaml('plans:\n  team:\n    apiAcess: false\n    rateLimits:\n      - limit: -1\n        window: 1m\n'));
      await expect(kg.reload()).rejects.toThrow(ConfigError);
      const refused = logs.lines.map((line) => JSON.parse(line) as { level: number; msg: string; problems?: string[] }).filter((line) => line.msg.startsWith('profile not reloaded'));
      expect(refused).toEqual([
        expect.objectContaining({
          level: 50,
          msg: `profile not reloaded, the one in use stays: ${file}: invalid configuration: plans.team.rateLimits[0].limit: expected more than 0, got -1 (and 1 more)`,
          problems: ['plans.team.rateLimits[0].limit: expected more than 0, got -1', 'plans.team: unknown field "apiAcess" (did you mean "apiAccess"?)'],
        }),
      ]);
    } finally {
      await kg.close();
    }
  });

  it('takes turning the gateway off or on only at a restart, the one in use staying', async () => {
    const dir = tempDir('reload-gateway-off');
    const file = path.join(dir, 'keygate.yaml');
    const rest = `store: sqlite:${path.join(dir, 'keygate.db')}\ndashboard:\n  enabled: false\n`;
    writeFileSync(file, `upstream:\n  url: http://127.0.0.1:1\n${rest}`);
    const kg = await serve(loadConfigFile(file), { log: createLog({ level: 'silent' }), adminToken: ADMIN_TOKEN, ports: { gateway: 0, admin: 0, dashboard: 0 } });
    try {
      writeFileSync(file, `gateway: false\n${rest}`);
      await expect(kg.reload()).rejects.toThrow('gateway, upstream.url changed, and they take effect only when keygate restarts: nothing was reloaded.');
      expect(kg.runtime.config.gateway).toBe(true);
      expect((await fetch(`${kg.gatewayUrl as string}/x`)).status).toBe(401);
    } finally {
      await kg.close();
    }
  });

  it('names upstream.url when the profile read again has none (a profile for the library), as a start would', async () => {
    const dir = tempDir('reload-no-upstream');
    const file = path.join(dir, 'keygate.yaml');
    const rest = `store: sqlite:${path.join(dir, 'keygate.db')}\ndashboard:\n  enabled: false\n`;
    writeFileSync(file, `upstream:\n  url: http://127.0.0.1:1\n${rest}`);
    const logs = new LogCapture();
    const kg = await serve(loadConfigFile(file), { log: createLog({ level: 'info', destination: logs }), adminToken: ADMIN_TOKEN, ports: { gateway: 0, admin: 0, dashboard: 0 } });
    try {
      writeFileSync(file, rest);
      await expect(kg.reload()).rejects.toThrow(ConfigError);
      const refused = logs.lines.map((line) => JSON.parse(line) as { level: number; msg: string; problems?: string[] }).filter((line) => line.msg.startsWith('profile not reloaded'));
      expect(refused).toEqual([
        expect.objectContaining({
          level: 50,
          msg: `profile not reloaded, the one in use stays: ${file}: cannot be served without upstream.url, or gateway: false`,
          problems: [
            'upstream.url: required to serve the gateway, which forwards the requests it admits there (e.g. http://127.0.0.1:4000); for the admin API alone, with no gateway (a backend that checks its requests over HTTP: POST /v1/check), say gateway: false instead. A profile with neither is for keygate as a library (createKeygate), which forwards nothing',
          ],
        }),
      ]);
      expect(kg.runtime.config.upstream.url).toBe('http://127.0.0.1:1');
    } finally {
      await kg.close();
    }
  });
});
