/**
 * identityHeaders.names over real sockets: an upstream that reads Kong's header names
 * gets the identity in them, a field set to false is left out, the account's name is
 * sent (percent-encoded where a header value cannot hold it as it is), and a client's
 * copy of any named header never reaches the upstream.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';

describe('identity headers named in full (identityHeaders.names)', () => {
  const dir = tempDir('identity-names');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let accountId: string;
  let keyId: string;
  let secret: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        scopes: ['a', 'b'],
        identityHeaders: { names: { account: 'X-Consumer-ID', accountName: 'X-Consumer-Username', key: 'X-Credential-Identifier', plan: false } },
      },
      { dir },
    );
    const account = await createAccount(kg.runtime, { name: 'Acme Corp' }, 'test');
    const issued = await createKey(kg.runtime, { accountId: account.id, name: 'k', scopes: ['a', 'b'] }, 'test');
    accountId = account.id;
    keyId = issued.key.id;
    secret = issued.secret;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  const last = () => upstream.received.at(-1)!;

  async function callAs(key: string, headers: Record<string, string> = {}) {
    const response = await kg.call('/sites', { headers: { Authorization: `Bearer ${key}`, ...headers } });
    expect(response.status).toBe(200);
    await response.text();
    return last().headers;
  }

  it('writes each field in the header named for it, the others with the prefix, and leaves out one set to false', async () => {
    const seen = await callAs(secret);
    expect(seen['x-consumer-id']).toBe(accountId);
    expect(seen['x-credential-identifier']).toBe(keyId);
    expect(seen['x-consumer-username']).toBe('Acme Corp');
    expect(seen['x-keygate-mode']).toBe('live');
    expect(seen['x-keygate-scopes']).toBe('a b');
    expect(seen['x-keygate-account']).toBeUndefined();
    expect(seen['x-keygate-key']).toBeUndefined();
    expect(seen['x-keygate-plan']).toBeUndefined();
    expect(JSON.stringify(seen)).not.toContain(secret);
  });

  it("drops a client's copy of every named header, in any case or with underscores, and of the prefix's even where a field is renamed or left out", async () => {
    const seen = await callAs(secret, {
      'X-Consumer-ID': 'acc_someone_else',
      'x-consumer-username': 'admin',
      X_Consumer_Username: 'cgi-admin',
      'X-CREDENTIAL-IDENTIFIER': 'key_forged',
      'X-Keygate-Plan': 'enterprise',
      'X-Keygate-Account': 'acc_someone_else',
      'X-Other': 'kept',
    });
    expect(seen['x-consumer-id']).toBe(accountId);
    expect(seen['x-consumer-username']).toBe('Acme Corp');
    expect(seen['x-credential-identifier']).toBe(keyId);
    expect([seen.x_consumer_username, seen['x-keygate-plan'], seen['x-keygate-account']]).toEqual([undefined, undefined, undefined]);
    expect(seen['x-other']).toBe('kept');
  });

  it("sends an account's name that a header cannot hold as it is percent-encoded (UTF-8), never failing the request", async () => {
    const odd = await createAccount(kg.runtime, { name: 'Café 100% ☕ 𝄞' }, 'test');
    const oddKey = await createKey(kg.runtime, { accountId: odd.id, name: 'k' }, 'test');
    const seen = await callAs(oddKey.secret);
    expect(seen['x-consumer-username']).toBe('Caf%C3%A9 100%25 %E2%98%95 %F0%9D%84%9E');
    expect(decodeURIComponent(seen['x-consumer-username'] as string)).toBe('Café 100% ☕ 𝄞');
    expect(seen['x-consumer-id']).toBe(odd.id);
  });

  it("sends a name with control characters and spaces at its ends (one stored before names were checked) encoded, as the request's own", async () => {
    const old = await createAccount(kg.runtime, { name: 'placeholder' }, 'test');
    const oldKey = await createKey(kg.runtime, { accountId: old.id, name: 'k' }, 'test');
    // Names keygate takes today are trimmed and without controls; a store copied from elsewhere may hold any text.
    const db = new Database(path.join(dir, 'keygate.db'));
    try {
      db.prepare('update accounts set name = ? where id = ?').run(' Line\r\nX-Injected: 1\u0000\t ', old.id);
    } finally {
      db.close();
    }
    const seen = await callAs(oldKey.secret);
    expect(seen['x-consumer-username']).toBe('%20Line%0D%0AX-Injected: 1%00%09%20');
    expect(seen['x-injected']).toBeUndefined();
    expect(seen['x-consumer-id']).toBe(old.id);
  });
});
