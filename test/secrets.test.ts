/**
 * A key's secret is shown once and then exists nowhere keygate writes: not in the
 * database file, not in any log line, not in any error, not in any admin answer.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from './support/keygate.js';
import { startTestUpstream, type TestUpstream } from './support/upstream.js';
import { tempDir } from './support/temp.js';

describe('secrets stay secret', () => {
  const dir = tempDir('secrets');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let secret: string;
  let keyId: string;
  const bodies: string[] = [];

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        keys: { prefix: { live: 'sk_live_' } },
        auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }, { in: 'query', name: 'apikey' }] },
        errors: { envelope: 'error' },
        plans: { basic: { rateLimits: [{ limit: 3, window: '1h' }] } },
        log: { level: 'debug', requests: true },
      },
      { dir },
    );
    const account = (await (await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'Acme' }) })).json()) as { id: string };
    const created = (await (await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId: account.id, name: 'k' }) })).json()) as { id: string; secret: string };
    secret = created.secret;
    keyId = created.id;

    const record = async (r: Response) => bodies.push(await r.text());
    await record(await kg.call('/data', { headers: { authorization: `Bearer ${secret}` } }));
    await record(await kg.call(`/data?apikey=${secret}&page=2`));
    await record(await kg.call(`/data?apikey=${secret}x`)); // malformed
    await record(await kg.call('/data', { headers: { authorization: `Bearer ${secret}`.toLowerCase() } })); // malformed
    await record(await kg.call(`/data?apikey=${secret}`)); // fourth → rate limited
    await record(await kg.call(`/data%zz?apikey=${secret}`)); // bad request
    // Keys where keygate does not read them from: a path segment, parameters of other names.
    await record(await kg.call(`/data/${secret}?x=1;apikey=${secret}&api_key[]=${secret}&token=${secret}x`));
    // ... and written with percent-escapes, which whoever reads the log can undo.
    await record(await kg.call(`/data?foo=${secret.replaceAll('_', '%5F')}&bar=%E9${[...secret].map((c) => `%${c.charCodeAt(0).toString(16)}`).join('')}`));
    // ... also escaped again, once and twice over.
    await record(await kg.call(`/data?foo=${secret.replaceAll('_', '%255F')}`));
    await record(await kg.call(`/data?foo=${secret.replaceAll('_', '%25255F')}`));
    // ... and cut short by a character, which gives the whole key away (its checksum comes from the rest).
    await record(await kg.call(`/data?y=${secret.slice(0, -1)}`));
    await record(await kg.admin('/v1/keys'));
    await record(await kg.admin(`/v1/keys/${keyId}`));
    await kg.runtime.flush();
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('the caller got answers (the scenario really ran)', () => {
    expect(bodies).toHaveLength(13);
    expect(kg.logs.lines.filter((l) => l.includes('"msg":"request"'))).toHaveLength(11);
  });

  it('is in no log line, with query parameters redacted', () => {
    const secretBody = secret.slice('sk_live_'.length, -6);
    expect(kg.logs.text).not.toContain(secretBody);
    expect(kg.logs.text).toContain('apikey=[REDACTED]&page=2');
    // `apikey` after a `;` is a credential parameter to the upstream too (some split on `;`): redacted whole; so are
    // the values of parameters named like a secret (`api_key[]`, `token`), whatever they hold.
    expect(kg.logs.text).toContain('"target":"/data/sk_live_[REDACTED]?x=1;apikey=[REDACTED]&api_key[]=[REDACTED]&token=[REDACTED]"');
    // Decoded as often as whoever reads the log may.
    let decoded = kg.logs.text;
    for (let hop = 0; hop < 3; hop++) {
      decoded = decoded.replace(/(?:%[0-9a-f]{2})+/gi, (run) => new TextDecoder().decode(Buffer.from(run.replaceAll('%', ''), 'hex')));
      expect(decoded).not.toContain(secretBody);
    }
    expect(kg.logs.text).toContain('"target":"/data?y=sk_live_[REDACTED]"');
    // Only escapes of ASCII are decoded (a key has nothing else): `%E9` stays as sent.
    expect(kg.logs.text).toContain('"target":"/data?foo=sk_live_[REDACTED]&bar=%E9sk_live_[REDACTED]"');
  });

  it('is in no response body, error or admin answer', () => {
    for (const body of bodies) expect(body).not.toContain(secret.slice(8, -6));
    expect(bodies.join('\n')).not.toMatch(/"hash"/);
  });

  it('is not in the database file; only its SHA-256 is', () => {
    const files = readdirSync(dir).filter((f) => f.startsWith('keygate.db'));
    expect(files.length).toBeGreaterThan(0);
    const bytes = Buffer.concat(files.map((f) => readFileSync(path.join(dir, f))));
    expect(bytes.includes(Buffer.from(secret.slice(8, -6)))).toBe(false);
    expect(bytes.includes(Buffer.from(kg.runtime.hashKey(secret)))).toBe(true);
  });

  it('is not forwarded upstream', () => {
    expect(JSON.stringify(upstream.received)).not.toContain(secret.slice(8, -6));
  });
});
