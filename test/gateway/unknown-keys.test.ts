/**
 * auth.unknownKeys over real HTTP against a real SQLite file, with a controlled clock:
 * an address that presents too many unknown keys is refused (too_many_failures, 429 in
 * the dialect, Retry-After) without a store lookup, while a key cached as valid still
 * works from it; the block ends after its duration; addresses behind a trusted proxy are
 * counted per client; the setting is off unless given.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { logLines } from '../support/log-lines.js';
import { configJsonSchema, parseConfigObject, ConfigError } from '../../src/config/load.js';
import type { ConfigInput, UnknownKeyPolicy } from '../../src/config/schema.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';
import { controlledClock, profileFile, startExample, type RunningExample } from '../../examples/support/example.js';
import { loadConfigFile } from '../../src/config/load.js';

const ENVELOPES = ['jsonapi', 'message', 'error_description', 'error', 'typed', 'problem'] as const;
const START = Date.parse('2026-11-10T12:00:00Z');
const MESSAGE = 'Too many requests with invalid API keys from this address. Try again later.';

function profile(upstream: string, extra: Partial<ConfigInput> = {}): ConfigInput {
  return {
    upstream: { url: upstream },
    auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }], unknownKeys: { limit: 3, window: '1m', block: '10m' } },
    ...extra,
  };
}

/** A key of the profile's format (prefix, length, checksum) that was never issued. */
const madeUp = (kg: TestKeygate) => kg.runtime.keyFormat.generate('live');
const bearer = (secret: string, extra: Record<string, string> = {}) => ({ headers: { authorization: `Bearer ${secret}`, ...extra } });

async function metric(kg: TestKeygate, name: string): Promise<number | undefined> {
  const line = (await (await kg.admin('/metrics')).text()).split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

describe('auth.unknownKeys', () => {
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let now = START;
  let good: string;
  let fresh: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
  });
  afterAll(async () => {
    await upstream?.close();
  });
  afterEach(async () => {
    await kg?.close();
  });

  async function start(extra: Partial<ConfigInput> = {}) {
    now = START;
    kg = await startKeygate(profile(upstream.url, extra), { dir: tempDir('unknown-keys'), clock: () => now });
    const account = await createAccount(kg.runtime, { name: 'office' }, 'test');
    good = (await createKey(kg.runtime, { accountId: account.id, name: 'in use' }, 'test')).secret;
    fresh = (await createKey(kg.runtime, { accountId: account.id, name: 'never used' }, 'test')).secret;
  }

  it('after `limit` unknown keys an address gets 429 too_many_failures with Retry-After, without a store lookup; a key cached as valid still works from it', async () => {
    await start();
    expect((await kg.call('/data', bearer(good))).status).toBe(200);
    for (let i = 0; i < 3; i++) {
      const response = await kg.call('/data', bearer(madeUp(kg)));
      expect(response.status).toBe(401);
      expect((await response.json()) as unknown).toMatchObject({ code: 'invalid_key' });
    }
    const lookups = kg.runtime.storeLookups.unknown;
    const refused = await kg.call('/data', bearer(madeUp(kg)));
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('600');
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await refused.json()).toEqual({ type: 'https://keygate.dev/problems/too_many_failures', title: 'Too Many Requests', status: 429, detail: MESSAGE, code: 'too_many_failures' });
    expect(kg.runtime.storeLookups.unknown).toBe(lookups);

    // A mistyped key is still told so (malformed keys cost no lookup, and do not count).
    const typo = `${good.slice(0, -1)}${good.endsWith('A') ? 'B' : 'A'}`;
    expect((await (await kg.call('/data', bearer(typo))).json()) as unknown).toMatchObject({ status: 401, code: 'invalid_key' });
    // The key in use from the same address (cached as valid): served.
    expect((await kg.call('/data', bearer(good))).status).toBe(200);
    // A valid key this process has not seen is not told from a guess: refused until the block ends.
    now += 60_000;
    const notYet = await kg.call('/data', bearer(fresh));
    expect([notYet.status, notYet.headers.get('retry-after')]).toEqual([429, '540']);
    // The key in use, its cache entry past keyCacheTtl (30 s): looked up again, and served.
    const lookupsBefore = kg.runtime.storeLookups.found;
    expect((await kg.call('/data', bearer(good))).status).toBe(200);
    expect(kg.runtime.storeLookups.found).toBe(lookupsBefore + 1);

    // One warning for the block, naming the address, never a key; each request's line says why.
    const lines = logLines(kg.logs.text);
    const warnings = lines.filter((line) => line.msg.startsWith('client address blocked'));
    expect(warnings).toEqual([expect.objectContaining({ level: 40, client: '127.0.0.1', unknownKeys: 3, windowMs: 60_000, blockMs: 600_000, blockedUntil: new Date(START + 600_000).toISOString() })]);
    expect(lines.filter((line) => line.msg === 'request' && line.reason === 'too_many_failures')).toHaveLength(2);
    for (const secret of [good, fresh]) expect(kg.logs.text).not.toContain(secret.slice(8));
    expect(await metric(kg, 'keygate_address_blocks_started_total')).toBe(1);
    expect((await (await kg.admin('/metrics')).text())).toContain('keygate_requests_total{outcome="denied",reason="too_many_failures"} 2');
  });

  it('the block ends after its duration, and the count starts afresh', async () => {
    await start();
    for (let i = 0; i < 3; i++) await kg.call('/data', bearer(madeUp(kg)));
    expect((await kg.call('/data', bearer(madeUp(kg)))).status).toBe(429);
    now += 600_000 - 1;
    expect((await kg.call('/data', bearer(madeUp(kg)))).headers.get('retry-after')).toBe('1');
    now += 1;
    expect((await kg.call('/data', bearer(fresh))).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await kg.call('/data', bearer(madeUp(kg)))).status).toBe(401);
    expect((await kg.call('/data', bearer(madeUp(kg)))).status).toBe(429);
    expect(await metric(kg, 'keygate_address_blocks_started_total')).toBe(2);
  });

  it('only unknown keys count, within the rolling window: malformed keys and keys of other addresses do not', async () => {
    await start();
    for (let i = 0; i < 10; i++) expect((await kg.call('/data', bearer(`kg_live_${'x'.repeat(i)}`))).status).toBe(401);
    await kg.call('/data', bearer(madeUp(kg)));
    await kg.call('/data', bearer(madeUp(kg)));
    // The first two leave the window: the third is only the first of a new count.
    now += 60_000;
    expect((await kg.call('/data', bearer(madeUp(kg)))).status).toBe(401);
    expect((await kg.call('/data', bearer(madeUp(kg)))).status).toBe(401);
    expect((await kg.call('/data', bearer(madeUp(kg)))).status).toBe(401);
    expect((await kg.call('/data', bearer(madeUp(kg)))).status).toBe(429);
  });

  it('behind a trusted proxy each client X-Forwarded-For names is counted on its own (an IPv6 /64 as one)', async () => {
    await start({ trustedProxies: ['127.0.0.1'] });
    const from = (address: string) => ({ 'x-forwarded-for': address });
    for (let i = 0; i < 3; i++) expect((await kg.call('/data', bearer(madeUp(kg), from('203.0.113.5')))).status).toBe(401);
    expect((await kg.call('/data', bearer(madeUp(kg), from('203.0.113.5')))).status).toBe(429);
    expect((await kg.call('/data', bearer(madeUp(kg), from('203.0.113.6')))).status).toBe(401);
    expect((await kg.call('/data', bearer(fresh, from('203.0.113.6')))).status).toBe(200);
    // A host picks a new address in its /64 for each try: counted together.
    for (const host of ['2001:db8:0:7::1', '2001:db8:0:7::2', '2001:db8:0:7::3']) expect((await kg.call('/data', bearer(madeUp(kg), from(host)))).status).toBe(401);
    expect((await kg.call('/data', bearer(madeUp(kg), from('2001:db8:0:7::99')))).status).toBe(429);
    expect((await kg.call('/data', bearer(madeUp(kg), from('2001:db8:0:8::1')))).status).toBe(401);
    expect(logLines(kg.logs.text).filter((line) => line.msg.startsWith('client address blocked')).map((line) => line.client)).toEqual(['203.0.113.5', '2001:db8:0:7::/64']);
  });

  it('from a peer that is no trusted proxy, X-Forwarded-For is not believed: made-up client addresses do not dodge the count', async () => {
    await start();
    for (let i = 0; i < 3; i++) await kg.call('/data', bearer(madeUp(kg), { 'x-forwarded-for': `198.51.100.${i}` }));
    expect((await kg.call('/data', bearer(madeUp(kg), { 'x-forwarded-for': '198.51.100.77' }))).status).toBe(429);
  });

  it('reloads: a new limit judges the count so far; taken out, unknown keys are answered as unknown however many come', async () => {
    await start();
    for (let i = 0; i < 2; i++) expect((await kg.call('/data', bearer(madeUp(kg)))).status).toBe(401);
    const withLimit = (unknownKeys: UnknownKeyPolicy | undefined) => {
      const { unknownKeys: _, ...auth } = kg.runtime.config.auth;
      return { config: { ...kg.runtime.config, auth: unknownKeys ? { ...auth, unknownKeys } : auth }, file: 'test profile', dir: kg.runtime.configDir };
    };
    expect(await kg.runtime.reload(withLimit({ limit: 2, window: 60_000, block: 300_000 }))).toEqual(['auth.unknownKeys']);
    // Two counted before the reload: the next one blocks the address under the new limit.
    expect((await kg.call('/data', bearer(madeUp(kg)))).status).toBe(401);
    const refused = await kg.call('/data', bearer(madeUp(kg)));
    expect([refused.status, refused.headers.get('retry-after')]).toEqual([429, '300']);
    expect(await kg.runtime.reload(withLimit(undefined))).toEqual(['auth.unknownKeys']);
    for (let i = 0; i < 5; i++) expect((await kg.call('/data', bearer(madeUp(kg)))).status).toBe(401);
  });

  it.each(ENVELOPES)('rendered in the %s envelope, and as the profile words it', async (envelope) => {
    await start({ errors: { envelope } });
    for (let i = 0; i < 3; i++) await kg.call('/data', bearer(madeUp(kg)));
    const refused = await kg.call('/data', bearer(madeUp(kg)));
    expect([refused.status, refused.headers.get('retry-after'), refused.headers.get('www-authenticate')]).toEqual([429, '600', null]);
    const body = JSON.stringify(await refused.json());
    expect(body).toContain(MESSAGE);
    if (envelope === 'typed') expect(body).toContain('"type":"rate_limit_error"');
    await kg.close();

    await start({ errors: { envelope, reasons: { too_many_failures: { status: 403, code: 'locked_out', message: 'Locked out.' } } } });
    for (let i = 0; i < 3; i++) await kg.call('/data', bearer(madeUp(kg)));
    const worded = await kg.call('/data', bearer(madeUp(kg)));
    expect([worded.status, worded.headers.get('retry-after')]).toEqual([403, '600']);
    expect(JSON.stringify(await worded.json())).toContain('Locked out.');
  });
});

describe('auth.unknownKeys in the profile', () => {
  const problems = (unknownKeys: unknown): string[] => {
    try {
      parseConfigObject({ upstream: { url: 'http://127.0.0.1:4000' }, auth: { unknownKeys } });
      return [];
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      return error.problems;
    }
  };

  it('names the field of each mistake', () => {
    expect(problems({ limit: 0, window: '1m', block: '10m' })).toEqual(['auth.unknownKeys.limit: a number of unknown keys, at least 1']);
    expect(problems({ limit: 5000, window: '1m', block: '10m' })).toEqual(['auth.unknownKeys.limit: a number of unknown keys, at most 1000']);
    expect(problems({ limit: 5, window: '1 minute', block: '10m' })).toEqual([expect.stringMatching(/^auth\.unknownKeys\.window: expected a duration such as/)]);
    expect(problems({ limit: 5, window: '1m' })).toEqual([expect.stringMatching(/^auth\.unknownKeys\.block: /)]);
    expect(problems({ limit: 5, window: '1m', block: '10m', after: 3 })).toEqual([expect.stringMatching(/^auth\.unknownKeys: unknown field "after"/)]);
  });

  it('is in the JSON Schema editors read, and errors.reasons may word too_many_failures', () => {
    const auth = (configJsonSchema() as { properties: { auth: { properties: { unknownKeys: { required: string[]; additionalProperties: boolean } } } } }).properties.auth.properties;
    expect(auth.unknownKeys).toMatchObject({ required: ['limit', 'window', 'block'], additionalProperties: false });
    expect(JSON.stringify(configJsonSchema())).toContain('"too_many_failures"');
  });

  it('keeps the default credential when only unknownKeys is given', () => {
    const config = parseConfigObject({ upstream: { url: 'http://127.0.0.1:4000' }, auth: { unknownKeys: { limit: 20, window: '1m', block: '10m' } } });
    expect(config.auth).toEqual({ credentials: [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }], forwardCredential: false, unknownKeys: { limit: 20, window: 60_000, block: 600_000 } });
  });

  it('is off unless given: no example profile has it, and one answers unknown keys as unknown however many come', async () => {
    for (const name of ['ranktracker', 'ranksy', 'seranking-project', 'seranking-data', 'trakkr']) expect(loadConfigFile(profileFile(name)).config.auth.unknownKeys).toBeUndefined();
    let ex: RunningExample | undefined;
    try {
      ex = await startExample('ranktracker', { clock: controlledClock(START) });
      const statuses = new Set<number>();
      for (let i = 0; i < 30; i++) statuses.add((await ex.call('/v1/domains', { headers: { authorization: ex.kg.runtime.keyFormat.generate('live') } })).status);
      expect([...statuses]).toEqual([401]);
      expect(await metric(ex.kg, 'keygate_address_blocks_started_total')).toBe(0);
    } finally {
      await ex?.close();
    }
  });
});
