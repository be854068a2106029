/**
 * `auth.forwardCredential` (Kong's `hide_credentials: false`): the upstream receives the
 * header or query parameter the key was read from, as the client sent it, and nothing
 * else that holds a key; off (the default), it receives no key at all. Logs hold the key
 * neither way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';

/** Kong's key-auth credentials: `apikey: <key>` or `?apikey=<key>`. */
const KONG_CREDENTIALS = [
  { in: 'header', name: 'apikey', scheme: 'none' },
  { in: 'query', name: 'apikey' },
] as const;

async function gatewayWithKey(forwardCredential: boolean | undefined, upstream: TestUpstream): Promise<{ kg: TestKeygate; secret: string; other: string }> {
  const kg = await startKeygate(
    {
      upstream: { url: upstream.url },
      keys: { prefix: { live: 'sk_live_' } },
      auth: { credentials: [...KONG_CREDENTIALS], ...(forwardCredential === undefined ? {} : { forwardCredential }) },
      log: { level: 'debug', requests: true },
    },
    { dir: tempDir('forward-credential') },
  );
  const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
  const secret = (await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test')).secret;
  const other = (await createKey(kg.runtime, { accountId: account.id, name: 'other' }, 'test')).secret;
  return { kg, secret, other };
}

describe('auth.forwardCredential: true', () => {
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let secret: string;
  let other: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    ({ kg, secret, other } = await gatewayWithKey(true, upstream));
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  const last = () => upstream.received.at(-1)!;

  it('passes the credential header on as sent, and logs no key', async () => {
    const response = await kg.call('/v1/items?x=1', { headers: { apikey: secret } });
    expect(response.status).toBe(200);
    await response.text();
    expect(last().headers.apikey).toBe(secret);
    expect(last().url).toBe('/v1/items?x=1');
    expect(last().headers['x-keygate-account']).toMatch(/^acc_/);
    await kg.runtime.flush();
    expect(kg.logs.text).toContain('/v1/items?x=1');
    expect(kg.logs.text).not.toContain(secret);
  });

  it('passes the credential query parameter on byte for byte, percent-escapes and all, and the log line shows it [REDACTED]', async () => {
    const escaped = `%73%6B${secret.slice(2)}`; // `sk` written as escapes
    const response = await kg.call(`/v1/items?q=a%20b&apikey=${escaped}&limit=5`);
    expect(response.status).toBe(200);
    await response.text();
    expect(last().url).toBe(`/v1/items?q=a%20b&apikey=${escaped}&limit=5`);
    expect(last().headers.apikey).toBeUndefined();
    await kg.runtime.flush();
    const targets = kg.logs.lines.map((line) => JSON.parse(line) as { msg?: string; target?: string }).filter((line) => line.msg === 'request').map((line) => line.target);
    expect(targets).toContain('/v1/items?q=a%20b&apikey=[REDACTED]&limit=5');
    expect(kg.logs.text).not.toContain(secret.slice(2));
  });

  it('forwards only where the key was read from: the other credential location, its look-alikes and every other copy of a key are still removed', async () => {
    // The key in the header; the query parameter (not read) holds another key, and `APIKEY` /
    // `apikey[]` (which ASP.NET and PHP read as `apikey`) hold others: an upstream would read one of those instead.
    const response = await kg.call(`/v1/items?apikey=${other}&APIKEY=${other}&apikey[]=${other}&q=${secret}&keep=1`, {
      headers: { apikey: secret, 'X-Other': secret, Cookie: `k=${other}; theirs=1`, [`x-${secret}`]: '1', api_key: other },
    });
    expect(response.status).toBe(200);
    await response.text();
    const seen = last();
    expect(seen.url).toBe('/v1/items?keep=1');
    expect(seen.headers.apikey).toBe(secret);
    expect(seen.headers['x-other']).toBeUndefined();
    expect(seen.headers.cookie).toBeUndefined();
    expect(seen.headers.api_key).toBeUndefined();
    expect(Object.keys(seen.headers).filter((name) => name.includes('sk_live_'))).toEqual([]);
    expect(JSON.stringify(seen).split(secret).length - 1).toBe(1);
    expect(JSON.stringify(seen)).not.toContain(other);
  });

  it('keeps only the query pair the key was read from: an empty one of the same name and a look-alike go', async () => {
    const response = await kg.call(`/v1/items?apikey=&apikey=${secret}&Apikey=${other}&x=1`);
    expect(response.status).toBe(200);
    await response.text();
    expect(last().url).toBe(`/v1/items?apikey=${secret}&x=1`);
    await kg.runtime.flush();
    expect(kg.logs.text).not.toContain(secret);
    expect(kg.logs.text).not.toContain(other);
  });
});

describe('auth.forwardCredential unset (the default)', () => {
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let secret: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    ({ kg, secret } = await gatewayWithKey(undefined, upstream));
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('passes the key on in neither the header nor the query parameter, and logs none', async () => {
    for (const [target, headers] of [
      ['/v1/items?x=1', { apikey: secret }],
      [`/v1/items?apikey=${secret}&x=1`, {}],
    ] as const) {
      const response = await kg.call(target, { headers });
      expect(response.status).toBe(200);
      await response.text();
      const seen = upstream.received.at(-1)!;
      expect(seen.url).toBe('/v1/items?x=1');
      expect(seen.headers.apikey).toBeUndefined();
      expect(JSON.stringify(seen)).not.toContain(secret);
    }
    await kg.runtime.flush();
    expect(kg.logs.text).not.toContain(secret);
  });
});
