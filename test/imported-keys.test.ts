/**
 * Keys the API issued before keygate (`keys.imported`): a customer keeps the key it has.
 * Here the API's old keys are rk_live_/rk_test_ and 24 base62 characters; keygate issues
 * sk_live_/sk_test_ keys in its own format, so that old and new can be told apart.
 * Imported by the admin API, they work through the proxy on the next request; a string of
 * the same shape that was never imported is unknown_key (looked up: such keys carry no
 * checksum), anything else is still malformed_key; keygate's own keys work beside them;
 * and an imported key is no more in the logs or the database than one keygate made.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from './support/keygate.js';
import { startTestUpstream, type TestUpstream } from './support/upstream.js';
import { tempDir } from './support/temp.js';
import { randomBase62 } from '../src/keys/format.js';

describe('keys issued before keygate (keys.imported)', () => {
  const dir = tempDir('imported-keys');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let accountId: string;
  /** As the API issued them before keygate: the prefix and 24 base62 characters, no checksum. */
  const earlierLive = `rk_live_${randomBase62(24)}`;
  const earlierTest = `rk_test_${randomBase62(24)}`;

  const importKey = async (body: Record<string, unknown>) => kg.admin('/v1/keys/import', { method: 'POST', body: JSON.stringify({ accountId, ...body }) });
  const statusOf = async (init: RequestInit, query = '') => {
    const response = await kg.call(`/v1/data${query}`, init);
    return { status: response.status, body: await response.text() };
  };
  const bearer = (key: string): RequestInit => ({ headers: { authorization: `Bearer ${key}` } });

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        keys: { prefix: { live: 'sk_live_', test: 'sk_test_' }, imported: { prefix: { live: 'rk_live_', test: 'rk_test_' }, length: 24 } },
        auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }, { in: 'query', name: 'api_key' }] },
        // By default all three are 'invalid_key' ("Invalid API key."): told apart here to see which check refused.
        errors: { envelope: 'typed', reasons: { malformed_key: { code: 'malformed_key' }, unknown_key: { code: 'unknown_key' }, revoked_key: { code: 'revoked_key' } } },
        log: { level: 'debug', requests: true },
      },
      { dir },
    );
    accountId = ((await (await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'Acme' }) })).json()) as { id: string }).id;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('imports them, the mode taken from the prefix, with a hint of prefix and last four', async () => {
    const live = await importKey({ name: 'from before', secret: earlierLive });
    expect(live.status).toBe(201);
    expect(await live.json()).toMatchObject({ name: 'from before', mode: 'live', hint: `rk_live_…${earlierLive.slice(-4)}`, status: 'active' });
    const test = await importKey({ name: 'test from before', secret: earlierTest });
    expect(test.status).toBe(201);
    expect(await test.json()).toMatchObject({ mode: 'test', hint: `rk_test_…${earlierTest.slice(-4)}` });
    // The prefix says test: a live import of it is refused, saying why.
    const wrongMode = await importKey({ name: 'x', secret: `rk_test_${randomBase62(24)}`, mode: 'live' });
    expect(wrongMode.status).toBe(400);
    expect(((await wrongMode.json()) as { detail: string }).detail).toBe('that key is a test key (its prefix says so), not a live one');
    // Neither keygate's format nor the imported shape.
    const foreign = await importKey({ name: 'x', secret: `rk_live_${randomBase62(23)}` });
    expect(foreign.status).toBe(400);
    // The refusal says what shape would have been taken (never the key), so the operator
    // sees at once that the key is one character short rather than guessing.
    expect(((await foreign.json()) as { detail: string }).detail).toBe(
      "that key has neither this API's key format nor the shape keys.imported describes: rk_live_ or rk_test_, then 24 base62 characters (letters and digits)",
    );
  });

  it('lets an imported key through, by header or query parameter, and passes its identity upstream', async () => {
    const byHeader = await statusOf(bearer(earlierLive));
    expect(byHeader.status).toBe(200);
    expect(upstream.received.at(-1)?.headers['x-keygate-mode']).toBe('live');
    expect((await statusOf({}, `?api_key=${earlierTest}`)).status).toBe(200);
    expect(upstream.received.at(-1)?.headers['x-keygate-mode']).toBe('test');
    expect(upstream.received.at(-1)?.url).toBe('/v1/data');
  });

  it('refuses a string of the imported shape that was never imported as unknown, and any other shape as malformed', async () => {
    const unknown = await statusOf(bearer(`rk_live_${randomBase62(24)}`));
    expect(unknown.status).toBe(401);
    expect(JSON.parse(unknown.body)).toMatchObject({ error: { code: 'unknown_key' } });
    for (const candidate of [`rk_live_${randomBase62(25)}`, `rk_live_${randomBase62(23)}`, `xk_live_${randomBase62(24)}`, `rk_live_${randomBase62(23)}-`, `rk_live_${'a'.repeat(300)}`]) {
      const refused = await statusOf(bearer(candidate));
      expect(refused.status, candidate.slice(0, 40)).toBe(401);
      expect(JSON.parse(refused.body), candidate.slice(0, 40)).toMatchObject({ error: { code: 'malformed_key' } });
    }
  });

  it('works beside keygate’s own keys, and refuses an imported key once revoked', async () => {
    const created = (await (await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId, name: 'new' }) })).json()) as { secret: string };
    expect(created.secret).toMatch(/^sk_live_[0-9A-Za-z]{30}$/);
    expect((await statusOf(bearer(created.secret))).status).toBe(200);
    const secret = `rk_live_${randomBase62(24)}`;
    const imported = (await (await importKey({ name: 'to revoke', secret })).json()) as { id: string };
    expect((await statusOf(bearer(secret))).status).toBe(200);
    expect((await kg.admin(`/v1/keys/${imported.id}/revoke`, { method: 'POST' })).status).toBe(200);
    const revoked = await statusOf(bearer(secret));
    expect(revoked.status).toBe(401);
    expect(JSON.parse(revoked.body)).toMatchObject({ error: { code: 'revoked_key' } });
  });

  it('imports a key with the expiry it had before (a Kong credential\'s ttl): it works until then, and is expired_key after', async () => {
    const secret = `rk_live_${randomBase62(24)}`;
    const expiresAt = new Date(Date.now() + 1500).toISOString();
    const imported = await importKey({ name: 'with ttl', secret, expiresAt });
    expect(imported.status).toBe(201);
    expect(await imported.json()).toMatchObject({ name: 'with ttl', expiresAt, status: 'expiring' });
    expect((await statusOf(bearer(secret))).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, Date.parse(expiresAt) - Date.now() + 50));
    const expired = await statusOf(bearer(secret));
    expect(expired.status).toBe(401);
    expect(JSON.parse(expired.body)).toMatchObject({ error: { code: 'expired_key' } });
    // A time already past is refused, as for a key keygate makes.
    const past = await importKey({ name: 'past', secret: `rk_live_${randomBase62(24)}`, expiresAt: '2020-01-01T00:00:00Z' });
    expect(past.status).toBe(400);
    expect(((await past.json()) as { detail: string }).detail).toBe('the expiry must be in the future');
  });

  it('keeps imported keys out of the logs (also where keygate does not read keys from, and cut short) and out of the database', async () => {
    await statusOf({}, `/x/${earlierLive}?q=${earlierTest}&cut=${earlierLive.slice(0, -8)}`);
    // Split by a percent-escape of one of its own characters, past half its body and before it (the rest is as much a secret).
    const escaped = (key: string, at: number) => `${key.slice(0, at)}%${key.charCodeAt(at).toString(16).toUpperCase()}${key.slice(at + 1)}`;
    await statusOf({}, `/y/${escaped(earlierLive, 21)}/z?k=${escaped(escaped(earlierTest, 22), 11)}`);
    await kg.runtime.flush();
    expect(kg.logs.text).toContain('"msg":"request"');
    expect(kg.logs.text).toContain('"target":"/v1/data/y/rk_live_[REDACTED]/z?k=rk_test_[REDACTED]"');
    for (const secret of [earlierLive, earlierTest]) {
      expect(kg.logs.text).not.toContain(secret.slice(-10));
      expect(kg.logs.text).not.toContain(secret);
      expect(kg.logs.text).not.toContain(secret.slice('rk_live_'.length, -8));
      for (const file of readdirSync(dir).filter((name) => name.startsWith('keygate.db'))) {
        expect(readFileSync(path.join(dir, file)).includes(secret), file).toBe(false);
      }
    }
  });
});

describe('imported keys too short to withstand guessing', () => {
  const dir = tempDir('imported-keys-short');
  let upstream: TestUpstream;
  let kg: TestKeygate | undefined;

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('are warned of at start: the field, the bits, and what to do', async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate({ upstream: { url: upstream.url }, keys: { imported: { prefix: { live: 'old_' }, alphabet: 'hex', length: 8 } } }, { dir });
    const warnings = kg.logs.lines.map((line) => JSON.parse(line) as { level: number; msg: string; field?: string; bits?: number }).filter((entry) => entry.level === 40 && entry.field !== undefined);
    expect(warnings).toEqual([
      expect.objectContaining({
        field: 'keys.imported.length',
        bits: 32,
        msg: "keys.imported.length: imported keys of 8 hex characters after their prefix carry 32 bits of randomness, fewer than 96: guesses at unknown keys are not throttled, so a client can find a working key by trying (the more keys imported, the sooner). Move their owners to keygate's own keys (keygate keys rotate <id>), then remove keys.imported; see docs/authentication.md#key-formats.",
      }),
    ]);
  });

  it('are warned of with auth.unknownKeys too: it throttles one address, not a client with many', async () => {
    await kg?.close();
    kg = await startKeygate(
      { upstream: { url: upstream.url }, store: `sqlite:${dir}/throttled.db`, keys: { imported: { prefix: { live: 'old_' }, alphabet: 'hex', length: 8 } }, auth: { unknownKeys: { limit: 20, window: '1m', block: '10m' } } },
      { dir },
    );
    const warnings = kg.logs.lines.map((line) => JSON.parse(line) as { level: number; msg: string; field?: string }).filter((entry) => entry.level === 40 && entry.field !== undefined);
    expect(warnings.map((entry) => entry.msg)).toEqual([
      "keys.imported.length: imported keys of 8 hex characters after their prefix carry 32 bits of randomness, fewer than 96: guesses at unknown keys are throttled only per client address and process (auth.unknownKeys), so a client with many addresses can find a working key by trying (the more keys imported, the sooner). Move their owners to keygate's own keys (keygate keys rotate <id>), then remove keys.imported; see docs/authentication.md#key-formats.",
    ]);
  });
});
