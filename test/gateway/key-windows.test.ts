/**
 * One key's own rate-limit windows, over real HTTP with a controlled clock: applied on top
 * of its account's (all windows or none), counted apart from the plan's window of the same
 * length, named in the RateLimit fields, changed or removed from the key's next request on,
 * kept by a rotation, and counted by the blocks policy as any other rate_limited.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';

interface KeyAnswer {
  id: string;
  secret: string;
  rateLimits: { name: string; limit: number; window: string; scope: string }[];
}

describe("a key's own rate-limit windows", () => {
  const dir = tempDir('key-windows');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let now = Date.parse('2026-12-05T00:00:00Z');

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        errors: { envelope: 'message', reasons: { rate_limited: { message: 'Too Many Requests' } } },
        keys: { rotation: true },
        plans: {
          five: { rateLimits: [{ limit: 5, window: '1s' }] },
          open: { rateLimits: [] },
          strict: { rateLimits: [{ limit: 100, window: '1h' }], block: { after: 2, within: '1m', duration: '10m' } },
        },
        routes: [{ path: '/*' }],
      },
      { dir, clock: () => now },
    );
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  async function accountOn(planId: string): Promise<string> {
    const r = await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: planId, planId }) });
    expect(r.status).toBe(201);
    return ((await r.json()) as { id: string }).id;
  }
  async function keyOf(accountId: string, rateLimits?: unknown[]): Promise<KeyAnswer> {
    const r = await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId, name: 'front-end', ...(rateLimits ? { rateLimits } : {}) }) });
    expect(r.status).toBe(201);
    return (await r.json()) as KeyAnswer;
  }
  async function patch(id: string, body: object) {
    const r = await kg.admin(`/v1/keys/${id}`, { method: 'PATCH', body: JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as KeyAnswer & { detail?: string } };
  }
  const get = async (secret: string) => {
    const r = await kg.call('/data', { headers: { authorization: `Bearer ${secret}` } });
    return { status: r.status, headers: r.headers, body: await r.text() };
  };
  const statuses = async (secret: string, n: number) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push((await get(secret)).status);
    return out;
  };

  it("refuses the third request in a second for a key of 2-per-1s on a plan of 5-per-1s, in the API's envelope with both windows named; another key of the account is held to the plan's 5", async () => {
    const accountId = await accountOn('five');
    const limited = await keyOf(accountId, [{ limit: 2, window: '1s' }]);
    const other = await keyOf(accountId);
    expect(limited.rateLimits).toEqual([{ name: 'key-2-per-1s', limit: 2, window: '1s', scope: 'key' }]);
    expect(other.rateLimits).toEqual([]);

    const first = await get(limited.secret);
    expect(first.status).toBe(200);
    expect(first.headers.get('ratelimit-policy')).toBe('"5-per-1s";q=5;w=1, "key-2-per-1s";q=2;w=1');
    // Each admission counted once in each window: the plan's 5 and the key's 2 do not share a counter.
    expect(first.headers.get('ratelimit')).toBe('"5-per-1s";r=4;t=1, "key-2-per-1s";r=1;t=1');
    expect((await get(limited.secret)).status).toBe(200);
    const refused = await get(limited.secret);
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.body)).toEqual({ message: 'Too Many Requests' });
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.headers.get('ratelimit-policy')).toBe('"5-per-1s";q=5;w=1, "key-2-per-1s";q=2;w=1');
    expect(refused.headers.get('ratelimit')).toBe('"5-per-1s";r=3;t=1, "key-2-per-1s";r=0;t=1');

    // The account's other key: the plan's 5 a second, untouched by the limited key's requests.
    expect(await statuses(other.secret, 6)).toEqual([200, 200, 200, 200, 200, 429]);
    const otherAnswer = await get(other.secret);
    expect(otherAnswer.headers.get('ratelimit-policy')).toBe('"5-per-1s";q=5;w=1');

    // A second on, the limited key has its 2 again (its refused request spent neither window).
    now += 1_000;
    expect(await statuses(limited.secret, 3)).toEqual([200, 200, 429]);
    now += 1_000;
  });

  it('holds a key to windows given after its first requests from its next request on, and to none again after none', async () => {
    const accountId = await accountOn('open');
    const key = await keyOf(accountId);
    // Used (and so cached) before the change.
    expect(await statuses(key.secret, 3)).toEqual([200, 200, 200]);
    expect((await get(key.secret)).headers.get('ratelimit-policy')).toBeNull();

    const limited = await patch(key.id, { rateLimits: [{ limit: 1, window: '1m' }] });
    expect(limited.status).toBe(200);
    expect(limited.body.rateLimits).toEqual([{ name: 'key-1-per-1m', limit: 1, window: '1m', scope: 'key' }]);
    const admitted = await get(key.secret);
    expect([admitted.status, admitted.headers.get('ratelimit')]).toEqual([200, '"key-1-per-1m";r=0;t=60']);
    const refused = await get(key.secret);
    expect([refused.status, refused.headers.get('retry-after'), JSON.parse(refused.body)]).toEqual([429, '60', { message: 'Too Many Requests' }]);
    expect((await kg.admin(`/v1/keys/${key.id}`).then((r) => r.json())) as KeyAnswer).toMatchObject({ rateLimits: [{ name: 'key-1-per-1m' }] });

    // null (or []) takes them away: within the same minute, admitted again, with no window advertised.
    const cleared = await patch(key.id, { rateLimits: null });
    expect([cleared.status, cleared.body.rateLimits]).toEqual([200, []]);
    const free = await get(key.secret);
    expect([free.status, free.headers.get('ratelimit')]).toEqual([200, null]);
    now += 60_000;
  });

  it("gives a rotated key's replacement the old key's windows", async () => {
    const accountId = await accountOn('open');
    const key = await keyOf(accountId, [{ limit: 1, window: '1m' }]);
    const r = await kg.admin(`/v1/keys/${key.id}/rotate`, { method: 'POST', body: JSON.stringify({ overlap: '0' }) });
    expect(r.status).toBe(200);
    const replacement = (await r.json()) as KeyAnswer;
    expect(replacement.rateLimits).toEqual([{ name: 'key-1-per-1m', limit: 1, window: '1m', scope: 'key' }]);
    expect(await statuses(replacement.secret, 2)).toEqual([200, 429]);
    now += 60_000;
  });

  it('takes them for an imported key too', async () => {
    const accountId = await accountOn('open');
    const secret = kg.runtime.keyFormat.generate('live');
    const r = await kg.admin('/v1/keys/import', { method: 'POST', body: JSON.stringify({ accountId, name: 'migrated', secret, rateLimits: [{ limit: 1, window: '1m' }] }) });
    expect(r.status).toBe(201);
    expect(((await r.json()) as KeyAnswer).rateLimits).toEqual([{ name: 'key-1-per-1m', limit: 1, window: '1m', scope: 'key' }]);
    expect(await statuses(secret, 2)).toEqual([200, 429]);
    now += 60_000;
  });

  it("counts a key window's refusals towards a block as any other rate_limited", async () => {
    const accountId = await accountOn('strict');
    const key = await keyOf(accountId, [{ limit: 1, window: '1s' }]);
    expect(await statuses(key.secret, 1)).toEqual([200]);
    // Two refusals by the key's window within a minute: the plan's policy blocks the key for 10 minutes.
    expect(await statuses(key.secret, 2)).toEqual([429, 429]);
    now += 2_000;
    const blocked = await get(key.secret);
    expect(blocked.status).toBe(429);
    expect(JSON.parse(blocked.body)).toEqual({ message: 'This API key is temporarily blocked for repeatedly exceeding the rate limit.' });
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(500);
    now += 11 * 60_000;
  });

  it('refuses a per-account window on a key, and a window that is none, saying why', async () => {
    const accountId = await accountOn('open');
    const perAccount = await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId, name: 'shared', rateLimits: [{ limit: 10, window: '1m', scope: 'account' }] }) });
    expect(perAccount.status).toBe(400);
    expect(((await perAccount.json()) as { detail: string }).detail).toBe(
      "rateLimits[0]: a key's own windows are per key: a window shared by the account's keys (scope account, -per-account) is the account's own limit (accounts update <account> --rate-limit …-per-account)",
    );
    const key = await keyOf(accountId);
    const repeated = await patch(key.id, { rateLimits: [{ limit: 10, window: '1m' }, { limit: 20, window: '60s' }] });
    expect(repeated.status).toBe(400);
    expect(repeated.body.detail).toMatch(/^rateLimits\[1\]: rateLimits\[0\] is already a per-key window of 1m/);
    // A window that admits nothing: the admin API says where and why, then how a window is written.
    const none = await patch(key.id, { rateLimits: [{ limit: 0, window: '1m' }] });
    expect(none.status).toBe(400);
    expect(none.body.detail).toBe('rateLimits[0].limit: expected more than 0 (a window is { limit: 100, window: "1s", scope: "key" or "account" })');
    const list = await kg.admin(`/v1/keys?accountId=${accountId}`).then((r) => r.json() as Promise<KeyAnswer[]>);
    // Nothing was created, nothing changed.
    expect(list.map((k) => k.rateLimits)).toEqual([[]]);
  });
});
