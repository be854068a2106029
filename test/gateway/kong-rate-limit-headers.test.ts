/**
 * `rateLimitHeaders`, over real HTTP with a controlled clock: `kong` answers with the headers
 * Kong's rate-limiting plugin sends (a pair per window, the RateLimit-* trio of the window
 * closest to its limit) and none of the IETF fields, on upstream answers, built-ins and 429s
 * (rate_limited, blocked);
 * `both` sends both; `none` sends no rate-limit header, but a 429 keeps Retry-After; a reload
 * changes it from the next request. The default (ietf) is proven by the rate-limit tests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';
import type { ConfigInput } from '../../src/config/schema.js';

const START = Date.parse('2026-12-07T00:00:00Z');
const SECOND = 1000;

/** Every rate-limit header of an answer (IETF, Kong's, any other spelling), by its name. */
function rateLimitHeadersOf(headers: Headers): Record<string, string> {
  return Object.fromEntries([...headers].filter(([name]) => name.includes('ratelimit')));
}

describe('rate-limit headers for clients migrating from Kong', () => {
  const upstreamOf: TestUpstream[] = [];
  const running: TestKeygate[] = [];
  /** Each keygate's folder, where its profile is read from again on reload. */
  const dirs = new Map<TestKeygate, string>();
  let now = START;

  async function gateway(name: string, profile: Partial<ConfigInput>): Promise<TestKeygate> {
    if (upstreamOf.length === 0) upstreamOf.push(await startTestUpstream());
    const dir = tempDir(`kong-headers-${name}`);
    const kg = await startKeygate(
      {
        upstream: { url: (upstreamOf[0] as TestUpstream).url },
        errors: { envelope: 'message', reasons: { rate_limited: { message: 'API rate limit exceeded' } } },
        plans: {
          minuteAndHour: { rateLimits: [{ limit: 3, window: '1m' }, { limit: 5, window: '1h' }] },
          odd: { rateLimits: [{ limit: 2, window: '10s' }, { limit: 10, window: '5m' }] },
          shared: { rateLimits: [{ limit: 3, window: '1m' }, { limit: 2, window: '1m', scope: 'account' }] },
          open: { rateLimits: [] },
          blocking: { rateLimits: [{ limit: 1, window: '1m' }, { limit: 10, window: '1h' }], block: { after: 1, within: '1m', duration: '10m' } },
        },
        builtins: [{ path: '/me', body: { account: '{{account.id}}' } }],
        routes: [{ path: '/*' }],
        ...profile,
      },
      { dir, clock: () => now },
    );
    running.push(kg);
    dirs.set(kg, dir);
    return kg;
  }

  async function keyOn(kg: TestKeygate, planId: string, accountId?: string) {
    const account = accountId ?? (await createAccount(kg.runtime, { name: planId, planId }, 'test')).id;
    const { secret } = await createKey(kg.runtime, { accountId: account, name: `${planId} key` }, 'test');
    return { secret, accountId: account };
  }
  const get = async (kg: TestKeygate, secret: string | undefined, path = '/data') => {
    const r = await kg.call(path, secret === undefined ? {} : { headers: { authorization: `Bearer ${secret}` } });
    return { status: r.status, headers: r.headers, limits: rateLimitHeadersOf(r.headers), body: await r.text() };
  };

  afterAll(async () => {
    for (const kg of running) await kg.close();
    for (const upstream of upstreamOf) await upstream.close();
  });

  describe('rateLimitHeaders: kong', () => {
    let kg: TestKeygate;
    beforeAll(async () => {
      kg = await gateway('kong', { rateLimitHeaders: 'kong' });
    });

    it('gives a plan of 3 a minute and 5 an hour a pair per window and the RateLimit-* trio of the window closest to its limit, with no IETF field', async () => {
      now = START;
      const { secret } = await keyOn(kg, 'minuteAndHour');

      const first = await get(kg, secret);
      expect(first.status).toBe(200);
      expect(first.limits).toEqual({
        'x-ratelimit-limit-minute': '3',
        'x-ratelimit-remaining-minute': '2',
        'x-ratelimit-limit-hour': '5',
        'x-ratelimit-remaining-hour': '4',
        'ratelimit-limit': '3',
        'ratelimit-remaining': '2',
        'ratelimit-reset': '60',
      });

      now = START + 10 * SECOND;
      const second = await get(kg, secret);
      expect(second.limits).toMatchObject({ 'x-ratelimit-remaining-minute': '1', 'x-ratelimit-remaining-hour': '3', 'ratelimit-remaining': '1', 'ratelimit-reset': '50' });

      now = START + 20 * SECOND;
      const third = await get(kg, secret);
      expect(third.status).toBe(200);
      expect(third.limits).toMatchObject({ 'x-ratelimit-remaining-minute': '0', 'x-ratelimit-remaining-hour': '2', 'ratelimit-limit': '3', 'ratelimit-remaining': '0', 'ratelimit-reset': '40' });

      // Two minutes in, the minute is empty again and the hour is the one closest to its limit.
      now = START + 120 * SECOND;
      const later = await get(kg, secret);
      expect(later.limits).toEqual({
        'x-ratelimit-limit-minute': '3',
        'x-ratelimit-remaining-minute': '2',
        'x-ratelimit-limit-hour': '5',
        'x-ratelimit-remaining-hour': '1',
        'ratelimit-limit': '5',
        'ratelimit-remaining': '1',
        'ratelimit-reset': '3480',
      });
    });

    it("refuses the fourth request in a minute with 429 in the API's envelope, Retry-After, and Kong's headers saying the minute is used up", async () => {
      now = START;
      const { secret } = await keyOn(kg, 'minuteAndHour');
      for (let i = 0; i < 3; i++) expect((await get(kg, secret)).status).toBe(200);
      now = START + 15 * SECOND;
      const refused = await get(kg, secret);
      expect(refused.status).toBe(429);
      expect(JSON.parse(refused.body)).toEqual({ message: 'API rate limit exceeded' });
      expect(refused.headers.get('retry-after')).toBe('45');
      // A refused request counts in no window: the hour still has 2.
      expect(refused.limits).toEqual({
        'x-ratelimit-limit-minute': '3',
        'x-ratelimit-remaining-minute': '0',
        'x-ratelimit-limit-hour': '5',
        'x-ratelimit-remaining-hour': '2',
        'ratelimit-limit': '3',
        'ratelimit-remaining': '0',
        'ratelimit-reset': '45',
      });
    });

    it('says every window is used up while the key is blocked, RateLimit-Reset being the Retry-After (the longer window shown)', async () => {
      now = START;
      const { secret } = await keyOn(kg, 'blocking');
      expect((await get(kg, secret)).status).toBe(200);
      const blocked = await get(kg, secret);
      expect(blocked.status).toBe(429);
      expect(blocked.headers.get('retry-after')).toBe('600');
      expect(blocked.limits).toEqual({
        'x-ratelimit-limit-minute': '1',
        'x-ratelimit-remaining-minute': '0',
        'x-ratelimit-limit-hour': '10',
        'x-ratelimit-remaining-hour': '0',
        'ratelimit-limit': '10',
        'ratelimit-remaining': '0',
        'ratelimit-reset': '600',
      });
    });

    it('names a window of another length than Kong\'s units by its seconds (10s: -10, 5m: -300)', async () => {
      now = START;
      const { secret } = await keyOn(kg, 'odd');
      expect((await get(kg, secret)).limits).toEqual({
        'x-ratelimit-limit-10': '2',
        'x-ratelimit-remaining-10': '1',
        'x-ratelimit-limit-300': '10',
        'x-ratelimit-remaining-300': '9',
        'ratelimit-limit': '2',
        'ratelimit-remaining': '1',
        'ratelimit-reset': '10',
      });
    });

    it("sends one pair for a per-key and a per-account window of one length: the one with fewer left", async () => {
      now = START;
      const { secret, accountId } = await keyOn(kg, 'shared');
      const other = await keyOn(kg, 'shared', accountId);
      expect((await get(kg, other.secret)).status).toBe(200);
      // This key's own minute has 2 left, the account's 0: the account's is what refuses next.
      expect((await get(kg, secret)).limits).toEqual({
        'x-ratelimit-limit-minute': '2',
        'x-ratelimit-remaining-minute': '0',
        'ratelimit-limit': '2',
        'ratelimit-remaining': '0',
        'ratelimit-reset': '60',
      });
    });

    it('carries them on built-in answers, and on no refusal decided before the windows are counted (401)', async () => {
      now = START;
      const { secret } = await keyOn(kg, 'minuteAndHour');
      const me = await get(kg, secret, '/me');
      expect(me.status).toBe(200);
      expect(me.limits).toMatchObject({ 'x-ratelimit-remaining-minute': '2', 'ratelimit-remaining': '2' });
      const missing = await get(kg, undefined);
      expect(missing.status).toBe(401);
      expect(missing.limits).toEqual({});
    });

    it('sends none for a plan without windows', async () => {
      now = START;
      const { secret } = await keyOn(kg, 'open');
      const answer = await get(kg, secret);
      expect(answer.status).toBe(200);
      expect(answer.limits).toEqual({});
    });
  });

  describe('rateLimitHeaders: both', () => {
    it("sends the IETF fields and Kong's headers on one answer", async () => {
      const kg = await gateway('both', { rateLimitHeaders: 'both' });
      now = START;
      const { secret } = await keyOn(kg, 'minuteAndHour');
      expect((await get(kg, secret)).limits).toEqual({
        'ratelimit-policy': '"3-per-1m";q=3;w=60, "5-per-1h";q=5;w=3600',
        ratelimit: '"3-per-1m";r=2;t=60, "5-per-1h";r=4;t=3600',
        'x-ratelimit-limit-minute': '3',
        'x-ratelimit-remaining-minute': '2',
        'x-ratelimit-limit-hour': '5',
        'x-ratelimit-remaining-hour': '4',
        'ratelimit-limit': '3',
        'ratelimit-remaining': '2',
        'ratelimit-reset': '60',
      });

      // Reloaded to the default, the next answer has the IETF fields alone.
      expect(await kg.reload({ config: { ...kg.runtime.config, rateLimitHeaders: 'ietf' }, file: 'test profile', dir: dirs.get(kg) as string })).toEqual(['rateLimitHeaders']);
      expect((await get(kg, secret)).limits).toEqual({
        'ratelimit-policy': '"3-per-1m";q=3;w=60, "5-per-1h";q=5;w=3600',
        ratelimit: '"3-per-1m";r=1;t=60, "5-per-1h";r=3;t=3600',
      });
    });
  });

  describe('rateLimitHeaders: none', () => {
    it('sends no rate-limit header on an admitted answer or a 429, which keeps Retry-After', async () => {
      const kg = await gateway('none', { rateLimitHeaders: 'none' });
      now = START;
      const { secret } = await keyOn(kg, 'minuteAndHour');
      for (let i = 0; i < 3; i++) {
        const admitted = await get(kg, secret);
        expect(admitted.status).toBe(200);
        expect(admitted.limits).toEqual({});
      }
      const refused = await get(kg, secret);
      expect(refused.status).toBe(429);
      expect(refused.limits).toEqual({});
      expect(refused.headers.get('retry-after')).toBe('60');
    });
  });
});
