/**
 * One account cannot hold every connection to the upstream: past
 * `upstream.maxInFlightPerAccount` of its requests in flight, more are refused
 * (concurrency_limited), while other accounts' requests still pass.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { eventually } from '../backends/isolation.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';
import { parseConfigText } from '../../src/config/load.js';

describe('requests in flight per account', () => {
  const dir = tempDir('in-flight');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  const accounts: { id: string; authorization: string }[] = [];

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url, connections: 4, maxInFlightPerAccount: 2 },
        errors: { envelope: 'message' },
        plans: { default: { meters: { units: { limit: 100 } } } },
        routes: [{ path: '/*', cost: { meter: 'units', perRequest: 1 } }],
      },
      { dir },
    );
    for (const name of ['Acme', 'Initech']) {
      const account = await createAccount(kg.runtime, { name }, 'test');
      accounts.push({ id: account.id, authorization: `Bearer ${(await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test')).secret}` });
    }
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  const unitsUsed = async (accountId: string) => ((await (await kg.admin(`/v1/accounts/${accountId}/usage`)).json()) as { meters: { units: { usage: number } } }).meters.units.usage;

  it('refuses an account a third request while two are in flight, charges nothing for it, and lets another account through', async () => {
    const [acme, initech] = accounts as [{ id: string; authorization: string }, { id: string; authorization: string }];
    const held = ['a', 'b'].map((id) => kg.call(`/v1/held?id=${id}`, { headers: { authorization: acme.authorization } }));
    expect(await eventually(() => upstream.received.filter((r) => r.url.startsWith('/v1/held')).length === 2)).toBe(true);

    const third = await kg.call('/v1/items', { headers: { authorization: acme.authorization } });
    expect({ status: third.status, retryAfter: third.headers.get('retry-after'), body: await third.json() }).toEqual({
      status: 429,
      retryAfter: '1',
      body: { message: 'Too many requests at once. Wait for one to finish.' },
    });
    const other = await kg.call('/v1/items', { headers: { authorization: initech.authorization } });
    expect(other.status).toBe(200);
    await other.text();

    upstream.release('a');
    upstream.release('b');
    for (const response of await Promise.all(held)) {
      expect(response.status).toBe(200);
      await response.text();
    }
    // Its places are given back once the answers are over.
    const again = await kg.call('/v1/items', { headers: { authorization: acme.authorization } });
    expect(again.status).toBe(200);
    await again.text();
    // Two held, one after: the refused request's unit was released, not charged.
    expect(await eventually(async () => (await unitsUsed(acme.id)) === 3)).toBe(true);
    expect(await unitsUsed(acme.id)).toBe(3);
    const line = kg.logs.lines.map((l) => JSON.parse(l) as { msg: string; reason?: string; account?: string }).find((l) => l.msg === 'request' && l.reason === 'concurrency_limited');
    expect(line).toMatchObject({ account: acme.id });
  });

  it('gives back the place of a request whose client hung up, or whose upstream failed', async () => {
    const [acme] = accounts as [{ id: string; authorization: string }];
    for (let round = 0; round < 3; round++) {
      const controller = new AbortController();
      const gone = kg.call(`/v1/held?id=gone-${round}`, { headers: { authorization: acme.authorization }, signal: controller.signal }).catch(() => undefined);
      expect(await eventually(() => upstream.received.some((r) => r.url === `/v1/held?id=gone-${round}`))).toBe(true);
      controller.abort();
      await gone;
      expect(await eventually(() => upstream.abandoned.some((r) => r.url === `/v1/held?id=gone-${round}`))).toBe(true);
      // No such status: keygate aborts the exchange, and the client gets its 502.
      const failed = await kg.call('/v1/status/600', { headers: { authorization: acme.authorization } });
      expect(failed.status).toBe(502);
      await failed.text();
    }
    // Six requests ended early, more than the account's two places: none is still held.
    const ok = await Promise.all([0, 1].map(async () => (await kg.call('/v1/items', { headers: { authorization: acme.authorization } })).status));
    expect(ok).toEqual([200, 200]);
  });

  it('refuses a limit above the pool, naming the field', () => {
    expect(() => parseConfigText('upstream: { url: "http://127.0.0.1:9", connections: 8, maxInFlightPerAccount: 9 }', 'keygate.yaml')).toThrow(
      /upstream\.maxInFlightPerAccount: at most upstream\.connections/,
    );
  });
});

describe('a request waiting for an upstream connection', () => {
  const dir = tempDir('in-flight-queued');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  const keys: string[] = [];

  beforeAll(async () => {
    upstream = await startTestUpstream();
    // Two connections, one request in flight per account: two accounts fill the pool.
    kg = await startKeygate({ upstream: { url: upstream.url, connections: 2, maxInFlightPerAccount: 1 } }, { dir });
    for (const name of ['Acme', 'Initech', 'Globex']) {
      const account = await createAccount(kg.runtime, { name }, 'test');
      keys.push(`Bearer ${(await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test')).secret}`);
    }
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('gives its account\'s place back when its client leaves before it gets one', async () => {
    const [acme, initech, globex] = keys as [string, string, string];
    const held = [kg.call('/v1/held?id=q1', { headers: { authorization: acme } }), kg.call('/v1/held?id=q2', { headers: { authorization: initech } })];
    expect(await eventually(() => upstream.received.filter((r) => r.url.startsWith('/v1/held?id=q')).length === 2)).toBe(true);
    // Globex's request waits for a connection; its client gives up.
    const controller = new AbortController();
    const waiting = kg.call('/v1/items?first', { headers: { authorization: globex }, signal: controller.signal }).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 100));
    controller.abort();
    await waiting;
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Its next request is not refused for the one that left: it waits its turn, and is answered.
    const next = kg.call('/v1/items?second', { headers: { authorization: globex } });
    upstream.release('q1');
    upstream.release('q2');
    const answered = await next;
    expect({ status: answered.status, body: await answered.text() }).toMatchObject({ status: 200 });
    for (const response of await Promise.all(held)) await response.text();
  });
});

describe('a request refused for its account\'s requests in flight', () => {
  const dir = tempDir('in-flight-limits');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let authorization: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url, connections: 2, maxInFlightPerAccount: 1 },
        errors: { envelope: 'message' },
        // Three requests a minute; three refusals within it would block the key for an hour.
        plans: { default: { rateLimits: [{ limit: 3, window: '1m' }], block: { after: 3, within: '1m', duration: '1h' } } },
      },
      { dir },
    );
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    authorization = `Bearer ${(await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test')).secret}`;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('uses up none of the rate limit and brings no block nearer', async () => {
    const held = kg.call('/v1/held?id=r1', { headers: { authorization } });
    expect(await eventually(() => upstream.received.some((r) => r.url === '/v1/held?id=r1'))).toBe(true);
    // Five refused while one is in flight: more than the limit and the block's count.
    for (let i = 0; i < 5; i++) {
      const refused = await kg.call('/v1/items', { headers: { authorization } });
      expect({ status: refused.status, body: await refused.json() }).toEqual({ status: 429, body: { message: 'Too many requests at once. Wait for one to finish.' } });
    }
    upstream.release('r1');
    expect((await held).status).toBe(200);
    // The held request was one of the three; the two left are still there, then the limit.
    const answers: { status: number; body: string }[] = [];
    const remaining: (string | null)[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await kg.call('/v1/items', { headers: { authorization } });
      remaining.push(response.headers.get('ratelimit'));
      answers.push({ status: response.status, body: await response.text() });
    }
    expect(answers.map((a) => a.status)).toEqual([200, 200, 429]);
    expect(remaining[0]).toMatch(/r=1\b/);
    // Rate-limited, not blocked: the five refusals were not counted towards the block.
    expect(JSON.parse(answers[2]!.body)).toEqual({ message: 'Too many requests. Slow down.' });
  });
});
