/**
 * Found in the review of 2026-12-07's key-shape changes: a prefix right after a letter or
 * digit is no key's start (an imported prefix inside a word), but the key the caller
 * presented is known exactly, and it is never a word: wherever it is in another header's
 * value or name, after whatever character, the upstream does not receive it. Through the
 * real gateway, with keygate's own prefixed keys and imported prefixed ones.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from './support/keygate.js';
import { startTestUpstream, type TestUpstream } from './support/upstream.js';
import { tempDir } from './support/temp.js';
import { randomBase62 } from '../src/keys/format.js';
import type { ConfigInput } from '../src/config/schema.js';

describe("the caller's own key in another header, after a letter or digit", () => {
  const dir = tempDir('review-2026-12-07');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let own: string;
  let acmeId: string;
  const imported = `rk_${randomBase62(24)}`;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    const profile: ConfigInput = {
      upstream: { url: upstream.url },
      store: `sqlite:${path.join(dir, 'keygate.db')}`,
      keys: { prefix: { live: 'sk_live_', test: 'sk_test_' }, imported: { prefix: { live: 'rk_' }, alphabet: 'base62', length: 24 } },
      auth: { credentials: [{ in: 'header', name: 'authorization', scheme: 'Bearer' }, { in: 'query', name: 'apikey' }] },
    };
    kg = await startKeygate(profile, { dir });
    const account = (await (await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'acme' }) })).json()) as { id: string };
    const created = await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId: account.id, name: 'own' }) });
    expect(created.status).toBe(201);
    own = ((await created.json()) as { secret: string }).secret;
    acmeId = account.id;
    const importedKey = await kg.admin('/v1/keys/import', { method: 'POST', body: JSON.stringify({ accountId: account.id, name: 'from kong', secret: imported }) });
    expect(importedKey.status).toBe(201);
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  /** What the upstream received for one request, as one text: its target and every header. */
  async function received(target: string, headers: Record<string, string>): Promise<string> {
    const response = await kg.call(target, { headers });
    expect(response.status, JSON.stringify(headers)).toBe(200);
    await response.text();
    return JSON.stringify(upstream.received.at(-1));
  }

  it('does not forward a header whose value holds the imported key presented, after a letter, a digit or an escape such as \\n', async () => {
    for (const before of ['id42', 'a', '7', 'Bearer', '\\n', '\\u0022']) {
      const seen = await received('/v1/data', { authorization: `Bearer ${imported}`, 'x-note': `${before}${imported}`, 'x-other': 'kept' });
      expect(seen, before).not.toContain(imported.slice(3));
      expect(seen, before).toContain('"x-other":"kept"');
    }
  });

  it("does not forward a header whose name holds the caller's key (keygate's own or imported) after a letter or digit", async () => {
    for (const before of ['a', '2', 'token']) {
      const ownSeen = await received(`/v1/data?apikey=${own}`, { [`x-${before}${own}`]: '1', 'x-other': 'kept' });
      expect(ownSeen, before).not.toContain(own.slice('sk_live_'.length).toLowerCase());
      expect(ownSeen, before).toContain('"x-other":"kept"');
      const importedSeen = await received('/v1/data', { authorization: `Bearer ${imported}`, [`x-${before}${imported}`]: '1' });
      expect(importedSeen, before).not.toContain(imported.slice(3).toLowerCase());
    }
  });

  it("does not forward a header whose name holds another key of keygate's own after a letter or digit (its prefix is a key's start anywhere, as before 2026-12-07)", async () => {
    const account = (await (await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'other' }) })).json()) as { id: string };
    const other = ((await (await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId: account.id, name: 'other' }) })).json()) as { secret: string }).secret;
    for (const before of ['a', '2', 'token']) {
      const seen = await received(`/v1/data?apikey=${own}`, { [`x-${before}${other}`]: '1', 'x-other': 'kept' });
      expect(seen, before).not.toContain(other.slice('sk_live_'.length).toLowerCase());
      expect(seen, before).toContain('"x-other":"kept"');
    }
  });

  it("refuses a key name holding the account's imported key glued to a word (prodrk_<key>), and takes one with the prefix inside a word that is no key", async () => {
    for (const name of [`prod${imported}`, `v2${imported}.old`]) {
      const refused = await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId: acmeId, name }) });
      expect(refused.status, name).toBe(400);
      expect(JSON.stringify(await refused.json())).not.toContain(imported.slice(3));
    }
    const taken = await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId: acmeId, name: 'network_configuration0123456789abcdefXYZ' }) });
    expect(taken.status).toBe(201);
  });

  it('still forwards a header whose value holds an imported prefix inside a word, the key presented elsewhere', async () => {
    const seen = await received('/v1/data', { authorization: `Bearer ${imported}`, 'x-file': 'network_configuration0123456789abcdef' });
    expect(seen).toContain('"x-file":"network_configuration0123456789abcdef"');
  });
});

describe('an imported key after an escape that ends in a letter or digit (\\n, \\t, \\u0022, \\x22)', () => {
  const dir = tempDir('review-2026-12-07-escapes');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let own: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    const profile: ConfigInput = {
      upstream: { url: upstream.url },
      store: `sqlite:${path.join(dir, 'keygate.db')}`,
      keys: { prefix: { live: 'sk_live_' }, imported: { prefix: { live: 'rk_' }, alphabet: 'base62', length: 24 } },
      auth: { credentials: [{ in: 'header', name: 'authorization', scheme: 'Bearer' }] },
    };
    kg = await startKeygate(profile, { dir });
    const account = (await (await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'acme' }) })).json()) as { id: string };
    own = ((await (await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId: account.id, name: 'own' }) })).json()) as { secret: string }).secret;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it("is not forwarded in a header value or a query parameter (JSON's and C's escapes are no word the prefix continues)", async () => {
    for (const escape of ['\\n', '\\t', '\\u0022', '\\x22']) {
      const other = `rk_${randomBase62(24)}`;
      const response = await kg.call(`/v1/data?q=${encodeURIComponent(`{"note":"line${escape}${other}"}`)}&x=1`, { headers: { authorization: `Bearer ${own}`, 'x-note': `{"note":"line${escape}${other}"}` } });
      expect(response.status, escape).toBe(200);
      await response.text();
      const seen = upstream.received.at(-1);
      expect(seen?.url, escape).toBe('/v1/data?x=1');
      expect(seen?.headers['x-note'], escape).toBeUndefined();
    }
  });
});
