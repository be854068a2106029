/**
 * Rate limits and escalating blocks on the embedded default, over real HTTP, with a
 * controlled clock: exact rolling windows, all windows or none, per-key and per-account
 * counting, the IETF RateLimit fields, and blocks that escalate and expire.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { createAccount, updateAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';

describe('rate limits', () => {
  const dir = tempDir('rate-limits');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let now = Date.parse('2026-11-20T00:00:00Z');

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        errors: { envelope: 'message', reasons: { rate_limited: { message: 'Too Many Requests' } } },
        plans: {
          ten: { rateLimits: [{ limit: 10, window: '1h' }] },
          rolling: { rateLimits: [{ limit: 5, window: '1s' }] },
          two: { rateLimits: [{ name: 'burst', limit: 2, window: '1s' }, { name: 'hourly', limit: 3, window: '1h' }] },
          shared: { rateLimits: [{ limit: 4, window: '1m', scope: 'account' }] },
          route: { rateLimits: [] },
          seranking: { rateLimits: [{ limit: 5, window: '1s' }], block: { after: 3, within: '1m', duration: '10m', factor: 2, max: '1h', forgetAfter: '24h' } },
          team: { rateLimits: [{ limit: 1, window: '1s', scope: 'account' }], block: { after: 2, within: '1m', duration: '5m', scope: 'account' } },
          patient: { rateLimits: [{ name: 'burst', limit: 1, window: '1s' }, { name: 'minute', limit: 1, window: '1m' }], block: { after: 1, within: '1m', duration: '5s' } },
          layered: { rateLimits: [{ name: 'burst', limit: 1, window: '1s' }, { name: 'hourly', limit: 100, window: '1h' }], block: { after: 2, within: '1m', duration: '5s' } },
          both: { rateLimits: [{ limit: 3, window: '1m' }, { limit: 3, window: '1m', scope: 'account' }, { name: 'same', limit: 9, window: '1h' }, { name: 'same', limit: 8, window: '1d' }] },
        },
        routes: [{ path: '/export', rateLimits: [{ limit: 1, window: '1m' }] }, { path: '/*' }],
      },
      { dir, clock: () => now },
    );
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  async function keyOn(plan: string, accountId?: string) {
    const account = accountId ?? (await createAccount(kg.runtime, { name: plan, planId: plan }, 'test')).id;
    const { secret } = await createKey(kg.runtime, { accountId: account, name: `${plan} key` }, 'test');
    return { secret, accountId: account };
  }
  const get = async (secret: string, path = '/data') => {
    const r = await kg.call(path, { headers: { authorization: `Bearer ${secret}` } });
    return { status: r.status, headers: r.headers, body: await r.text() };
  };
  const statuses = async (secret: string, n: number, path = '/data') => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push((await get(secret, path)).status);
    return out;
  };

  it('while blocked, every window says r=0 until the block ends; one used up, until it has room again', async () => {
    const { secret } = await keyOn('layered');
    expect((await get(secret)).status).toBe(200);
    expect((await get(secret)).status).toBe(429);
    const blocked = await get(secret);
    expect(blocked.headers.get('retry-after')).toBe('5');
    // The hourly window has 99 left: it is only the block that refuses, for 5 seconds (not the hour).
    expect(blocked.headers.get('ratelimit')).toBe('"burst";r=0;t=5, "hourly";r=0;t=5');
    now += 5_000;
    expect((await get(secret)).status).toBe(200);
    now += 60_000;
  });

  it('tells a blocked client to come back when the window that refused it has room, if that is after the block: waiting that long, it is admitted', async () => {
    const { secret } = await keyOn('patient');
    expect((await get(secret)).status).toBe(200);
    // The refusal that starts the 5 s block: the minute window has room only in 60 s.
    now += 1_000;
    const blocked = await get(secret);
    expect(blocked.status).toBe(429);
    expect(JSON.parse(blocked.body)).toEqual({ message: 'This API key is temporarily blocked for repeatedly exceeding the rate limit.' });
    expect(blocked.headers.get('retry-after')).toBe('59');
    expect(blocked.headers.get('ratelimit')).toBe('"burst";r=0;t=59, "minute";r=0;t=59');
    // Still blocked 2 s later: the same moment.
    now += 2_000;
    const again = await get(secret);
    expect([again.status, again.headers.get('retry-after'), again.headers.get('ratelimit')]).toEqual([429, '57', '"burst";r=0;t=57, "minute";r=0;t=57']);
    // A client that waits as told is admitted (not refused by the full window and blocked again).
    now += Number(again.headers.get('retry-after')) * 1_000;
    expect((await get(secret)).status).toBe(200);
    now += 60_000;
  });

  it('200 requests at once against a limit of 10 admit exactly 10', async () => {
    const { secret } = await keyOn('ten');
    const responses = await Promise.all(Array.from({ length: 200 }, () => get(secret)));
    const codes = responses.map((r) => r.status);
    expect(codes.filter((c) => c === 200)).toHaveLength(10);
    expect(codes.filter((c) => c === 429)).toHaveLength(190);
  });

  it('counts over a rolling window, not fixed buckets', async () => {
    const { secret } = await keyOn('rolling');
    now += 500; // mid-second: a fixed-bucket limiter would reset at the next whole second
    expect(await statuses(secret, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(await statuses(secret, 1)).toEqual([429]); // the 6th request inside one second
    now += 999;
    expect(await statuses(secret, 1)).toEqual([429]); // 999 ms later: still inside the window
    now += 1;
    expect(await statuses(secret, 5)).toEqual([200, 200, 200, 200, 200]); // the first five have left it
    expect(await statuses(secret, 1)).toEqual([429]);
  });

  it('admits only when every window admits, and a refused request counts against none', async () => {
    const { secret } = await keyOn('two');
    expect(await statuses(secret, 3)).toEqual([200, 200, 429]); // burst 2/s refuses the third
    now += 1000;
    // The refused request did not spend the hourly window: one hourly slot is left.
    expect(await statuses(secret, 2)).toEqual([200, 429]);
    now += 1000;
    const refused = await get(secret);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe(String(3600 - 2));
  });

  it('advertises both windows in the RateLimit fields on admitted and refused responses', async () => {
    const { secret } = await keyOn('two');
    const first = await get(secret);
    expect(first.headers.get('ratelimit-policy')).toBe('"burst";q=2;w=1, "hourly";q=3;w=3600');
    expect(first.headers.get('ratelimit')).toBe('"burst";r=1;t=1, "hourly";r=2;t=3600');
    await get(secret);
    const refused = await get(secret);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('ratelimit')).toBe('"burst";r=0;t=1, "hourly";r=1;t=3600');
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(JSON.parse(refused.body)).toEqual({ message: 'Too Many Requests' });
  });

  it('says in the RateLimit field when a window given a lower limit than it holds has room again, as Retry-After does', async () => {
    const { secret, accountId } = await keyOn('ten');
    for (let i = 0; i < 5; i++) {
      expect((await get(secret)).status).toBe(200);
      now += 60_000;
    }
    // Five this hour, a minute apart, the oldest five minutes ago; lowered to 3 (the account's
    // own limit), three must leave before one fits: the third oldest, in 57 minutes, not the
    // oldest, in 55 (the time a client reading t alone would come back, to be refused again).
    await updateAccount(kg.runtime, accountId, { limits: { rateLimits: [{ limit: 3, window: '1h' }] } }, 'test');
    const refused = await get(secret);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe(String(57 * 60));
    expect(refused.headers.get('ratelimit')).toBe(`"3-per-1h";r=0;t=${57 * 60}`);
    now += 57 * 60_000;
    expect((await get(secret)).status).toBe(200);
    now += 60 * 60_000;
  });

  it('shares an account-scoped window across the account\'s keys', async () => {
    const a = await keyOn('shared');
    const b = await keyOn('shared', a.accountId);
    const other = await keyOn('shared');
    expect([...(await statuses(a.secret, 2)), ...(await statuses(b.secret, 3))]).toEqual([200, 200, 200, 200, 429]);
    expect(await statuses(other.secret, 1)).toEqual([200]);
  });

  it('names each window once in the RateLimit fields, where two windows would share a name', async () => {
    // A per-key and a per-account window of one shape both default to "3-per-1m"; two
    // windows may be given one name. A client reads the fields by name: each is told apart.
    const a = await keyOn('both');
    const b = await keyOn('both', a.accountId);
    const first = await get(a.secret);
    expect(first.headers.get('ratelimit-policy')).toBe('"3-per-1m";q=3;w=60, "3-per-1m-account";q=3;w=60, "same";q=9;w=3600, "same-2";q=8;w=86400');
    const second = await get(b.secret);
    // b's own window has used 1 of 3; the account's, 2 of 3.
    expect(second.headers.get('ratelimit')).toBe('"3-per-1m";r=2;t=60, "3-per-1m-account";r=1;t=60, "same";r=8;t=3600, "same-2";r=7;t=86400');
  });

  it('applies a route\'s own window on top of the plan\'s', async () => {
    const { secret } = await keyOn('route');
    expect(await statuses(secret, 2, '/export')).toEqual([200, 429]);
    expect(await statuses(secret, 3, '/data')).toEqual([200, 200, 200]);
  });

  it('blocks a key that keeps exceeding its limit, longer each time, then lets it back', async () => {
    const { secret } = await keyOn('seranking');
    const violate = async (times: number) => {
      const codes: number[] = [];
      for (let i = 0; i < times; i++) {
        await statuses(secret, 5);
        const r = await get(secret);
        codes.push(r.status);
        if (i < times - 1) now += 1000;
      }
      return codes;
    };
    // Three violations within a minute: the third one blocks for 10 minutes.
    await violate(2);
    now += 1000;
    await statuses(secret, 5);
    const blocked = await get(secret);
    expect(blocked.status).toBe(429);
    expect(blocked.headers.get('retry-after')).toBe('600');
    expect(JSON.parse(blocked.body)).toEqual({ message: 'This API key is temporarily blocked for repeatedly exceeding the rate limit.' });

    // The RateLimit field agrees with Retry-After: nothing left until the block ends.
    expect(blocked.headers.get('ratelimit')).toBe('"5-per-1s";r=0;t=600');

    now += 599_000;
    const stillBlocked = await get(secret);
    expect(stillBlocked.status).toBe(429); // still blocked, even within the rate limit
    expect(stillBlocked.headers.get('ratelimit')).toBe('"5-per-1s";r=0;t=1');
    now += 1000;
    expect((await get(secret)).status).toBe(200); // 10 minutes are over

    // Offending again: the next block lasts twice as long.
    now += 1000;
    await violate(3);
    const second = await get(secret);
    expect(second.status).toBe(429);
    expect(Number(second.headers.get('retry-after'))).toBeGreaterThan(1100);
    expect(Number(second.headers.get('retry-after'))).toBeLessThanOrEqual(1200);
  });

  it('blocks every key of the account when the block is account-scoped, so a second key does not dodge it', async () => {
    const a = await keyOn('team');
    const b = await keyOn('team', a.accountId);
    const other = await keyOn('team');
    expect([(await get(a.secret)).status, (await get(b.secret)).status]).toEqual([200, 429]);
    const blocked = await get(a.secret); // the second violation of the account
    expect(blocked.status).toBe(429);
    expect(blocked.headers.get('retry-after')).toBe('300');
    now += 10_000;
    expect((await get(b.secret)).status).toBe(429); // the other key is blocked too
    expect(JSON.parse((await get(b.secret)).body)).toEqual({ message: 'This account is temporarily blocked for repeatedly exceeding the rate limit.' });
    expect((await get(other.secret)).status).toBe(200); // another account is not
  });

  it('lets an operator lift a block (the key\'s and its account\'s) through the admin API, audited; the next block starts afresh', async () => {
    const a = await keyOn('team');
    const b = await keyOn('team', a.accountId);
    expect([(await get(a.secret)).status, (await get(b.secret)).status, (await get(a.secret)).status]).toEqual([200, 429, 429]);
    expect((await get(b.secret)).headers.get('retry-after')).toBe('300');
    const keyId = (await kg.runtime.store.listKeys({ accountId: a.accountId })).find((k) => k.name === 'team key')?.id as string;

    // The admin API says until when it is blocked (its account's block, 5 minutes).
    expect(await (await kg.admin(`/v1/keys/${keyId}`)).json()).toMatchObject({ status: 'active', blockedUntil: new Date(now + 300_000).toISOString() });
    const listed = (await (await kg.admin(`/v1/keys?accountId=${a.accountId}`)).json()) as { blockedUntil: string | null }[];
    expect(listed.map((k) => k.blockedUntil)).toEqual([new Date(now + 300_000).toISOString(), new Date(now + 300_000).toISOString()]);
    // So do the answers to a change of the key.
    const renamed = await kg.admin(`/v1/keys/${keyId}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'team key' }) });
    expect(await renamed.json()).toMatchObject({ id: keyId, blockedUntil: new Date(now + 300_000).toISOString() });
    // A key made meanwhile is its account's, so blocked with it.
    const made = await kg.admin('/v1/keys', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ accountId: a.accountId, name: 'made while blocked' }) });
    expect(made.status).toBe(201);
    expect(await made.json()).toMatchObject({ name: 'made while blocked', blockedUntil: new Date(now + 300_000).toISOString() });
    const lifted = await kg.admin(`/v1/keys/${keyId}/unblock`, { method: 'POST' });
    expect(lifted.status).toBe(200);
    expect(await lifted.json()).toMatchObject({ key: { id: keyId, blockedUntil: null }, lifted: 1 });
    expect(await (await kg.admin(`/v1/keys/${keyId}`)).json()).toMatchObject({ blockedUntil: null });
    now += 1_000; // the account's window (1 per second) has room again
    expect((await get(b.secret)).status).toBe(200);
    const audit = (await (await kg.admin('/v1/audit')).json()) as { action: string; keyId: string }[];
    expect(audit[0]).toMatchObject({ action: 'key.unblocked', keyId });
    // Its violations are forgotten: the next block is the first's 5 minutes again.
    expect([(await get(a.secret)).status, (await get(b.secret)).status]).toEqual([429, 429]);
    expect((await get(a.secret)).headers.get('retry-after')).toBe('300');
    // Not blocked: nothing to lift, and a key that does not exist is a 404.
    now += 301_000;
    const nothing = await kg.admin(`/v1/keys/${keyId}/unblock`, { method: 'POST' });
    expect(nothing.status).toBe(200);
    expect(await nothing.json()).toMatchObject({ lifted: 0 });
    // Nothing was lifted, so the audit log does not say a block was: the first lift alone is there.
    const unblocks = ((await (await kg.admin('/v1/audit')).json()) as { action: string; keyId: string }[]).filter((e) => e.action === 'key.unblocked');
    expect(unblocks).toHaveLength(1);
    expect(unblocks[0]).toMatchObject({ keyId, detail: { lifted: 1 } });
    expect((await kg.admin('/v1/keys/key_nope/unblock', { method: 'POST' })).status).toBe(404);
  });
});
