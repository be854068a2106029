/**
 * Review of concurrent changes (hR8), over real HTTP: two `keygate serve` processes on one
 * PostgreSQL database and Redis, each sent a change at the same moment. (One process on
 * SQLite runs each change through without yielding between its read and its write: two
 * sent to it at once held in every round tried, with or without the account's lock.)
 * - one key imported into two accounts at once, through the two processes: one import is
 *   answered 201, the other 409 (`that key is already registered`), never a 500;
 * - an account's own limits changed twice at once (one meter's limit, and its windows), as
 *   merge patches: both hold, rather than the later undoing the earlier;
 * - a key's scopes narrowed while it is rotated: the replacement holds the narrowed scopes
 *   unless the rotation came first (the change's answer then shows the old key in its
 *   overlap), never the scopes taken away by a change answered before it;
 * - a key revoked twice at once while it is rotated: one revocation (one time, one audit
 *   entry), and the rotation refused (409) unless it came first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../src/config/schema.js';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from './support/services.js';
import { startDemoUpstream } from './support/keygate.js';
import { runCli } from './support/cli.js';
import { tempDir } from './support/temp.js';
import { createTestDatabase, deleteRedisKeys, redisUrlWithPrefix, testRedisPrefix, type TestDatabase } from './backends/isolation.js';
import { startGateway, writeProfile, type GatewayProcess } from './scale-out/cluster.js';

const enabled = (await serviceAvailable('PostgreSQL', POSTGRES_URL)) && (await serviceAvailable('Redis', REDIS_URL));

/** Rounds of each race: each round's two requests meet often, not always. */
const ROUNDS = 12;

/** Keys issued before keygate (`rk_live_` and 24 letters or digits), and one metered plan. */
const profileOf = (upstreamUrl: string): ConfigInput => ({
  name: 'review-hR8',
  upstream: { url: upstreamUrl },
  listen: { host: '127.0.0.1', port: 0 },
  admin: { listen: { host: '127.0.0.1', port: 0 } },
  dashboard: { enabled: false },
  keys: { imported: { prefix: { live: 'rk_live_' }, alphabet: 'base62', length: 24 } },
  scopes: ['read', 'write'],
  plans: { team: { meters: { credits: { limit: 100 } } } },
  routes: [{ path: '/v1/projects' }],
});

/** What a caller of the admin API needs here: a POST or PATCH with a JSON body. */
type AdminSend = (path: string, method: string, body: unknown) => Promise<{ status: number; body: string }>;

async function createAccount(send: AdminSend, name: string): Promise<string> {
  const created = await send('/v1/accounts', 'POST', { name, planId: 'team' });
  expect(created.status).toBe(201);
  return (JSON.parse(created.body) as { id: string }).id;
}

/** Both of an account's limits changed at once, `rounds` times (through `sends[0]` and `sends[1]`); answers each round's limits as read after. */
async function changeLimitsTwiceAtOnce(sends: readonly [AdminSend, AdminSend], rounds: number): Promise<{ statuses: number[]; limits: unknown[] }> {
  const statuses: number[] = [];
  const limits: unknown[] = [];
  for (let round = 0; round < rounds; round++) {
    const accountId = await createAccount(sends[0], `Limits ${round}`);
    const answers = await Promise.all([
      sends[0](`/v1/accounts/${accountId}`, 'PATCH', { limits: { meters: { credits: 500 + round } } }),
      sends[1](`/v1/accounts/${accountId}`, 'PATCH', { limits: { rateLimits: [{ limit: 7, window: '1h', scope: 'account' }] } }),
    ]);
    statuses.push(...answers.map((a) => a.status));
    const read = await sends[1](`/v1/accounts/${accountId}`, 'GET', undefined);
    limits.push((JSON.parse(read.body) as { limits: unknown }).limits);
  }
  return { statuses, limits };
}

const bothLimits = (round: number) => ({ meters: { credits: 500 + round }, rateLimits: [{ name: '7-per-1h', limit: 7, window: '1h', scope: 'account' }] });

describe.skipIf(!enabled)('the same change sent twice at once to two processes on PostgreSQL and Redis', () => {
  const dir = tempDir('keygate-review-hR8');
  const prefix = testRedisPrefix('review-hR8');
  let database: TestDatabase;
  let upstream: { url: string; close(): Promise<void> };
  const gateways: GatewayProcess[] = [];
  const sendTo =
    (index: number): AdminSend =>
    async (path, method, body) => {
      const response = await (gateways[index] as GatewayProcess).admin(path, { method, ...(body === undefined ? {} : { body }) });
      return { status: response.status, body: await response.text() };
    };

  beforeAll(async () => {
    database = await createTestDatabase('review_hr8');
    upstream = await startDemoUpstream();
    const file = writeProfile(dir, 'review-hR8', { ...profileOf(upstream.url), store: database.url, counters: redisUrlWithPrefix(prefix), keyCacheTtl: '60s' });
    expect((await runCli(['migrate', '--config', file])).code).toBe(0);
    // One after the other, each kept as it starts: one that fails to start leaves none running.
    for (let i = 0; i < 2; i++) gateways.push(await startGateway(file));
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await upstream?.close();
    await database?.drop();
    await deleteRedisKeys(prefix);
  });

  it('imports one key into two accounts at once: one 201, one 409, never a 500; the key is one account\'s', async () => {
    const accounts = [await createAccount(sendTo(0), 'Importer A'), await createAccount(sendTo(1), 'Importer B')];
    const rounds: number[][] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const secret = `rk_live_importedtwiceatonce${String(round).padStart(5, '0')}`;
      const answers = await Promise.all([0, 1].map((i) => sendTo(i)('/v1/keys/import', 'POST', { accountId: accounts[i], name: `Legacy ${round}`, secret })));
      rounds.push(answers.map((a) => a.status).sort());
      const refused = answers.find((a) => a.status !== 201);
      if (refused?.status === 409) expect(JSON.parse(refused.body)).toMatchObject({ detail: 'that key is already registered' });
    }
    expect(rounds).toEqual(Array.from({ length: ROUNDS }, () => [201, 409]));
    // One key per round, in one of the accounts.
    const keys = await Promise.all(accounts.map(async (id) => JSON.parse((await sendTo(0)(`/v1/keys?accountId=${id}&limit=100`, 'GET', undefined)).body) as unknown[]));
    expect(keys.flat()).toHaveLength(ROUNDS);
  });

  it("changes an account's meter limit and its windows at once through the two processes: both hold", async () => {
    const { statuses, limits } = await changeLimitsTwiceAtOnce([sendTo(0), sendTo(1)], ROUNDS);
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(limits).toEqual(Array.from({ length: ROUNDS }, (_, round) => bothLimits(round)));
  });

  it("narrows a key's scopes while it is rotated through the other process: the replacement holds what came first", async () => {
    const accountId = await createAccount(sendTo(0), 'Rotated while narrowed');
    const outcomes: { patchedBeforeRotation: boolean; replacementScopes: string[] }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const created = await sendTo(0)('/v1/keys', 'POST', { accountId, name: `Narrowed ${round}`, scopes: ['read', 'write'] });
      expect(created.status).toBe(201);
      const keyId = (JSON.parse(created.body) as { id: string }).id;
      const [patched, rotated] = await Promise.all([sendTo(0)(`/v1/keys/${keyId}`, 'PATCH', { scopes: ['read'] }), sendTo(1)(`/v1/keys/${keyId}/rotate`, 'POST', { overlap: '1h' })]);
      expect([patched.status, rotated.status]).toEqual([200, 200]);
      const replacementId = (JSON.parse(rotated.body) as { id: string }).id;
      const replacement = JSON.parse((await sendTo(0)(`/v1/keys/${replacementId}`, 'GET', undefined)).body) as { scopes: string[] };
      // The change's answer is the key as written: without the overlap's end, it was written before the rotation.
      outcomes.push({ patchedBeforeRotation: (JSON.parse(patched.body) as { expiresAt: string | null }).expiresAt === null, replacementScopes: replacement.scopes });
    }
    expect(outcomes).toEqual(outcomes.map(({ patchedBeforeRotation }) => ({ patchedBeforeRotation, replacementScopes: patchedBeforeRotation ? ['read'] : ['read', 'write'] })));
  });

  it('revokes a key twice at once while it is rotated: revoked once, and the rotation refused unless it came first', async () => {
    const accountId = await createAccount(sendTo(0), 'Revoked while rotated');
    const outcomes: { rotated: number; revokedAfterRotation: boolean; revocations: number; sameTime: boolean }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const created = await sendTo(0)('/v1/keys', 'POST', { accountId, name: `Revoked ${round}` });
      const keyId = (JSON.parse(created.body) as { id: string }).id;
      const [first, second, rotated] = await Promise.all([
        sendTo(0)(`/v1/keys/${keyId}/revoke`, 'POST', {}),
        sendTo(1)(`/v1/keys/${keyId}/revoke`, 'POST', {}),
        sendTo(1)(`/v1/keys/${keyId}/rotate`, 'POST', { overlap: '1h' }),
      ]);
      expect([first.status, second.status]).toEqual([200, 200]);
      const [a, b] = [first, second].map((r) => JSON.parse(r.body) as { revokedAt: string; expiresAt: string | null });
      const audit = JSON.parse((await sendTo(0)(`/v1/audit?accountId=${accountId}&limit=500`, 'GET', undefined)).body) as { action: string; keyId: string }[];
      outcomes.push({
        rotated: rotated.status,
        // A rotation that came first ended the key's life at the overlap's end, which the revocation's answer shows.
        revokedAfterRotation: a?.expiresAt !== null,
        revocations: audit.filter((e) => e.action === 'key.revoked' && e.keyId === keyId).length,
        sameTime: a?.revokedAt === b?.revokedAt,
      });
    }
    expect(outcomes).toEqual(outcomes.map(({ revokedAfterRotation }) => ({ rotated: revokedAfterRotation ? 200 : 409, revokedAfterRotation, revocations: 1, sameTime: true })));
  });
});
