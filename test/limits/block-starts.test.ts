/**
 * A block as it begins, over real HTTP with a controlled clock: one warning naming the
 * key, the account, the window that tipped it over, the block's length, end and
 * escalation (never the secret), and one count in keygate_blocks_started_total, however
 * many requests the block then refuses. On in-memory counters, and on Redis shared by
 * two gateways, where only the one whose admission started the block says so.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { REDIS_URL, serviceAvailable } from '../support/services.js';
import { deleteRedisKeys, redisUrlWithPrefix, testRedisPrefix } from '../backends/isolation.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';

const redisEnabled = await serviceAvailable('Redis', REDIS_URL);

const MESSAGE = 'rate-limit block started';

const plans: ConfigInput['plans'] = {
  // A window of its own name, so its count is this file's alone.
  watched: { rateLimits: [{ name: 'watched-burst', limit: 1, window: '1s' }, { limit: 100, window: '1h' }], block: { after: 2, within: '1m', duration: '30s', factor: 2 } },
  unblocked: { rateLimits: [{ name: 'never-blocks', limit: 1, window: '1s' }] },
};

/** The value of one series of keygate_blocks_started_total, or undefined if /metrics does not show it. */
async function blocksStarted(kg: TestKeygate, window: string): Promise<number | undefined> {
  const text = await (await kg.admin('/metrics')).text();
  const found = text.match(new RegExp(`^keygate_blocks_started_total\\{window="${window}"\\} (\\d+)$`, 'm'));
  return found ? Number(found[1]) : undefined;
}

/** The block-start lines a keygate logged for a key. */
function blockLines(kg: TestKeygate, keyId: string): Record<string, unknown>[] {
  return kg.logs.lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.msg === MESSAGE && line.key === keyId);
}

async function keyOn(kg: TestKeygate, plan: string) {
  const account = await createAccount(kg.runtime, { name: plan, planId: plan }, 'test');
  const { secret, key } = await createKey(kg.runtime, { accountId: account.id, name: `${plan} key` }, 'test');
  return { secret, keyId: key.id, accountId: account.id };
}

const call = async (kg: TestKeygate, secret: string) => {
  const r = await kg.call('/data', { headers: { authorization: `Bearer ${secret}` } });
  await r.text();
  return { status: r.status, retryAfter: r.headers.get('retry-after') };
};

describe('a block starting, on in-memory counters', () => {
  const dir = tempDir('block-starts');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let now = Date.parse('2026-11-20T00:00:00Z');

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate({ upstream: { url: upstream.url }, plans }, { dir, clock: () => now });
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('is logged once, with whose it is, which window, how long, until when and which escalation, and counted by window from 0', async () => {
    // Shown before any block: the windows that can start one; a plan without a block policy has none.
    expect(await blocksStarted(kg, 'watched-burst')).toBe(0);
    expect(await blocksStarted(kg, '100-per-1h')).toBe(0);
    expect(await blocksStarted(kg, 'never-blocks')).toBeUndefined();

    const { secret, keyId, accountId } = await keyOn(kg, 'watched');
    expect((await call(kg, secret)).status).toBe(200);
    expect((await call(kg, secret)).status).toBe(429); // the first violation: rate_limited
    expect(blockLines(kg, keyId)).toEqual([]);
    const tipped = await call(kg, secret); // the second: the block begins
    expect(tipped).toEqual({ status: 429, retryAfter: '30' });
    // Refused while it lasts, within the limit or not: no further line.
    for (let i = 0; i < 5; i++) expect((await call(kg, secret)).status).toBe(429);
    now += 10_000;
    expect((await call(kg, secret)).status).toBe(429);

    const lines = blockLines(kg, keyId);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 40,
      msg: MESSAGE,
      key: keyId,
      account: accountId,
      plan: 'watched',
      scope: 'key',
      window: 'watched-burst',
      limit: 1,
      windowMs: 1000,
      escalation: 1,
      blockMs: 30_000,
      blockedUntil: new Date(now - 10_000 + 30_000).toISOString(),
    });
    expect(kg.logs.text).not.toContain(secret);
    expect(await blocksStarted(kg, 'watched-burst')).toBe(1);

    // The next block, within forgetAfter: twice as long, escalation 2.
    now += 20_000;
    expect((await call(kg, secret)).status).toBe(200);
    expect((await call(kg, secret)).status).toBe(429);
    expect(await call(kg, secret)).toEqual({ status: 429, retryAfter: '60' });
    expect(blockLines(kg, keyId).map((line) => [line.escalation, line.blockMs])).toEqual([
      [1, 30_000],
      [2, 60_000],
    ]);
    expect(await blocksStarted(kg, 'watched-burst')).toBe(2);
    expect(await blocksStarted(kg, '100-per-1h')).toBe(0);
  });
});

describe.skipIf(!redisEnabled)('a block starting, on Redis shared by two gateways', () => {
  const dir = tempDir('block-starts-redis');
  const prefix = testRedisPrefix('block-starts');
  let upstream: TestUpstream;
  const gateways: TestKeygate[] = [];
  let now = Date.parse('2026-11-20T00:00:00Z');

  beforeAll(async () => {
    upstream = await startTestUpstream();
    const profile: ConfigInput = { upstream: { url: upstream.url }, store: `sqlite:${path.join(dir, 'keygate.db')}`, counters: redisUrlWithPrefix(prefix), counterFailure: 'closed', plans };
    for (let i = 0; i < 2; i++) gateways.push(await startKeygate(profile, { dir, clock: () => now }));
  });

  afterAll(async () => {
    for (const kg of gateways) await kg.close();
    await upstream?.close();
    await deleteRedisKeys(prefix);
  });

  it('is logged and counted once, by the gateway whose admission started it, for requests arriving at both at once', async () => {
    const [first, second] = gateways as [TestKeygate, TestKeygate];
    const { secret, keyId, accountId } = await keyOn(first, 'watched');
    expect((await call(first, secret)).status).toBe(200);
    expect((await call(second, secret)).status).toBe(429); // the first violation, at the other gateway

    // Twenty at once, half at each: one of them starts the block, every one is refused.
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => call(i % 2 === 0 ? first : second, secret)));
    expect(answers.every((a) => a.status === 429 && a.retryAfter === '30')).toBe(true);

    const lines = gateways.flatMap((kg) => blockLines(kg, keyId));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ key: keyId, account: accountId, window: 'watched-burst', escalation: 1, blockMs: 30_000, blockedUntil: new Date(now + 30_000).toISOString() });
    const counts = await Promise.all(gateways.map((kg) => blocksStarted(kg, 'watched-burst')));
    expect(counts.sort()).toEqual([0, 1]);
    // The gateway that counted it is the one that logged it.
    const logged = gateways.findIndex((kg) => blockLines(kg, keyId).length === 1);
    expect(await blocksStarted(gateways[logged] as TestKeygate, 'watched-burst')).toBe(1);
    for (const kg of gateways) expect(kg.logs.text).not.toContain(secret);

    // Its next block is the second in a row, wherever it starts.
    now += 30_000;
    expect((await call(second, secret)).status).toBe(200);
    expect((await call(first, secret)).status).toBe(429);
    expect(await call(second, secret)).toEqual({ status: 429, retryAfter: '60' });
    expect(blockLines(second, keyId).at(-1)).toMatchObject({ escalation: 2, blockMs: 60_000 });
  });
});
