/**
 * On Redis counters (the scale-out backend, here with a PostgreSQL store) rate-limit
 * blocks are written back to PostgreSQL (`limit_state`) within a second, and put back
 * into Redis when it loses its data: at start-up, and under a running keygate (its keys
 * deleted, or its redis-server restarted empty). So losing Redis neither lifts a block
 * nor starts its escalation over; a block an operator lifted stays lifted. Windows stay
 * in Redis alone and start empty. Real PostgreSQL, real Redis, real HTTP.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';
import { openPostgresStore } from '../../src/store/postgres/postgres-database.js';
import { createTestDatabase, deleteRedisKeys, eventually, redisUrlWithPrefix, testRedisPrefix, type TestDatabase } from '../backends/isolation.js';
import { startRedisServer } from '../scale-out/cluster.js';
import { runCli } from '../support/cli.js';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from '../support/services.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';

const enabled = (await serviceAvailable('PostgreSQL', POSTGRES_URL)) && (await serviceAvailable('Redis', REDIS_URL));

const PLANS: ConfigInput['plans'] = {
  // Two in 5 minutes; two refusals within a minute start a 10-minute block, each next one
  // twice as long. The window is shorter than the block, so a block's length is its Retry-After.
  paced: { rateLimits: [{ limit: 2, window: '5m' }], block: { after: 2, within: '1m', duration: '10m', factor: 2, max: '1h', forgetAfter: '24h' } },
};
const PUT_BACK = 'rate-limit blocks put back into Redis from the store';
/** A write-back comes every second; a loaded two-core machine may take many times that. */
const WITHIN_MS = 30_000;

describe.skipIf(!enabled)('rate-limit blocks on Redis counters when Redis loses its data', () => {
  let upstream: TestUpstream;
  let database: TestDatabase;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    database = await createTestDatabase('redis_blocks');
    const store = openPostgresStore(database.url);
    await store.migrate();
    await store.close();
  });
  afterAll(async () => {
    await upstream?.close();
    await database?.drop();
  });

  const profile = (counters: string): ConfigInput => ({ upstream: { url: upstream.url }, store: database.url, counters, counterFailure: 'closed', plans: PLANS, routes: [{ path: '/*' }] });

  /** The block row PostgreSQL holds for a block id, if any. */
  const storedBlock = async (id: string): Promise<{ state: Record<string, unknown>; expiresAt: number } | undefined> => {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ state: string; expires_at: string }>("SELECT state, expires_at FROM limit_state WHERE kind = 'block' AND id = $1", [id]);
      const row = rows[0];
      return row ? { state: JSON.parse(row.state) as Record<string, unknown>, expiresAt: Number(row.expires_at) } : undefined;
    } finally {
      await client.end();
    }
  };
  const untilStored = async (id: string, check: (row: Awaited<ReturnType<typeof storedBlock>>) => boolean) => {
    expect(await eventually(async () => check(await storedBlock(id)), WITHIN_MS, 100)).toBe(true);
  };

  const get = async (kg: TestKeygate, secret: string) => {
    const r = await kg.call('/data', { headers: { authorization: `Bearer ${secret}` } });
    const body = await r.text();
    return { status: r.status, retryAfter: r.headers.get('retry-after'), code: r.status === 429 ? (JSON.parse(body) as { code?: string }).code : undefined };
  };
  const keyOn = async (kg: TestKeygate, name: string) => {
    const account = await createAccount(kg.runtime, { name, planId: 'paced' }, 'test');
    const { secret, key } = await createKey(kg.runtime, { accountId: account.id, name }, 'test');
    return { secret, keyId: key.id, blockId: `k:${key.id}` };
  };
  /** Two admitted, one refused by the window, and the next refusal starts a 10-minute block. */
  const block = async (kg: TestKeygate, secret: string) => {
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await get(kg, secret));
    expect(answers.map((a) => [a.status, a.code ?? null])).toEqual([
      [200, null],
      [200, null],
      [429, 'rate_limited'],
      [429, 'blocked'],
    ]);
  };
  const blockedUntil = async (kg: TestKeygate, keyId: string): Promise<string | null | undefined> => ((await (await kg.admin(`/v1/keys/${keyId}`)).json()) as { blockedUntil?: string | null }).blockedUntil;
  /**
   * Waits until a running keygate has put the key's block back (asked of the admin API,
   * which reads Redis, not with requests: those would start a block afresh meanwhile), then
   * sees a request refused as blocked for what is left of the 10 minutes.
   */
  const untilPutBack = async (kg: TestKeygate, keyId: string, secret: string) => {
    expect(await eventually(async () => typeof (await blockedUntil(kg, keyId)) === 'string', WITHIN_MS, 100)).toBe(true);
    const answer = await get(kg, secret);
    expect(answer).toMatchObject({ status: 429, code: 'blocked' });
    expect(Number(answer.retryAfter)).toBeGreaterThan(0);
    expect(Number(answer.retryAfter)).toBeLessThanOrEqual(600);
  };

  it('a block written to PostgreSQL outlives Redis emptied and keygate restarted: still blocked for the time left, and the next block is twice as long', async () => {
    const prefix = testRedisPrefix('blocks-restart');
    const dir = tempDir('redis-blocks-restart');
    let now = Date.parse('2026-11-20T00:00:00Z');
    const start = () => startKeygate(profile(redisUrlWithPrefix(prefix)), { dir, clock: () => now });
    let kg = await start();
    try {
      const { secret, blockId } = await keyOn(kg, 'restart');
      await block(kg, secret);
      // Written back within the usual flush: the state Redis holds, escalation included.
      await untilStored(blockId, (row) => row !== undefined);
      expect(await storedBlock(blockId)).toMatchObject({ state: { level: 1, blockedUntil: now + 600_000, lastBlockEnd: now + 600_000, violations: [] } });
      expect((await storedBlock(blockId))?.expiresAt).toBeGreaterThan(now + 600_000);
      await kg.close();

      // Redis loses everything of this keygate (a restart without persistence).
      expect(await deleteRedisKeys(prefix)).toBeGreaterThan(0);
      now += 60_000;
      kg = await start();
      expect(kg.logs.text).toContain(PUT_BACK);
      // Still blocked, for what is left of it.
      expect(await get(kg, secret)).toEqual({ status: 429, retryAfter: '540', code: 'blocked' });

      // The block is over; the windows started empty with Redis: two admitted, then the next block is the second in a row.
      now += 540_000;
      expect((await get(kg, secret)).status).toBe(200);
      expect((await get(kg, secret)).status).toBe(200);
      expect(await get(kg, secret)).toEqual({ status: 429, retryAfter: '300', code: 'rate_limited' });
      expect(await get(kg, secret)).toEqual({ status: 429, retryAfter: '1200', code: 'blocked' });
      const started = kg.logs.lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.msg === 'rate-limit block started');
      expect(started.map((line) => [line.escalation, line.blockMs])).toEqual([[2, 1_200_000]]);
      await untilStored(blockId, (row) => row?.state.level === 2);
    } finally {
      await kg.close();
      await deleteRedisKeys(prefix);
    }
  });

  it('a running keygate puts a block back within seconds when its Redis keys are deleted under it', async () => {
    const prefix = testRedisPrefix('blocks-deleted');
    const kg = await startKeygate(profile(redisUrlWithPrefix(prefix)), { dir: tempDir('redis-blocks-deleted') });
    try {
      const { secret, keyId, blockId } = await keyOn(kg, 'deleted');
      await block(kg, secret);
      await untilStored(blockId, (row) => row !== undefined);

      expect(await deleteRedisKeys(prefix)).toBeGreaterThan(0);
      await untilPutBack(kg, keyId, secret);
      expect(kg.logs.text).toContain(PUT_BACK);
    } finally {
      await kg.close();
      await deleteRedisKeys(prefix);
    }
  });

  it('a running keygate puts a block back within seconds when its redis-server restarts empty', async () => {
    const redis = await startRedisServer();
    const kg = await startKeygate(profile(redis.url), { dir: tempDir('redis-blocks-killed') });
    try {
      const { secret, keyId, blockId } = await keyOn(kg, 'killed');
      await block(kg, secret);
      await untilStored(blockId, (row) => row !== undefined);

      await redis.kill();
      await redis.start();
      await untilPutBack(kg, keyId, secret);
    } finally {
      await kg.close();
      await redis.kill();
    }
  });

  it('a block lifted with the admin API or the CLI is not put back; one not lifted is', async () => {
    const prefix = testRedisPrefix('blocks-lifted');
    const dir = tempDir('redis-blocks-lifted');
    const counters = redisUrlWithPrefix(prefix);
    const configFile = path.join(dir, 'keygate.yaml');
    writeFileSync(configFile, stringify({ ...profile(counters), dashboard: { enabled: false } }));
    const kg = await startKeygate(profile(counters), { dir });
    try {
      const byAdmin = await keyOn(kg, 'lifted by the admin API');
      const byCli = await keyOn(kg, 'lifted by the CLI');
      const kept = await keyOn(kg, 'not lifted');
      for (const { secret } of [byAdmin, byCli, kept]) await block(kg, secret);
      for (const { blockId } of [byAdmin, byCli, kept]) await untilStored(blockId, (row) => row !== undefined);

      const lifted = await kg.admin(`/v1/keys/${byAdmin.keyId}/unblock`, { method: 'POST' });
      expect(await lifted.json()).toMatchObject({ lifted: 1 });
      const cli = await runCli(['--config', configFile, 'keys', 'unblock', byCli.keyId]);
      expect([cli.code, cli.stdout]).toEqual([0, `lifted the block of key ${byCli.keyId} (lifted by the CLI)\n`]);
      // Forgotten by the store as well.
      await untilStored(byAdmin.blockId, (row) => row === undefined);
      await untilStored(byCli.blockId, (row) => row === undefined);

      const putBacks = () => kg.logs.lines.filter((line) => line.includes(PUT_BACK)).length;
      const before = putBacks();
      expect(await deleteRedisKeys(prefix)).toBeGreaterThan(0);
      expect(await eventually(() => putBacks() > before, WITHIN_MS, 100)).toBe(true);
      expect(await get(kg, kept.secret)).toMatchObject({ status: 429, code: 'blocked' });
      expect(await get(kg, byAdmin.secret)).toMatchObject({ status: 200 });
      expect(await get(kg, byCli.secret)).toMatchObject({ status: 200 });
    } finally {
      await kg.close();
      await deleteRedisKeys(prefix);
    }
  });
});
