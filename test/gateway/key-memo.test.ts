/**
 * A connection's last key is not hashed again (src/keys/key-memo.ts), but it is still
 * judged on every request: several keys taking turns on one keep-alive connection (a load
 * balancer's) are each forwarded as themselves, and a key revoked meanwhile is refused on
 * the connection that used it.
 */
import { Client } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey, revokeKey } from '../../src/operations/keys.js';

describe('keys on one keep-alive connection', () => {
  const dir = tempDir('key-memo');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let client: Client;
  /** Connections the client opened: one, for every test here. */
  let connects = 0;
  const keys: { secret: string; id: string; accountId: string }[] = [];

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        keys: { prefix: { live: 'kg_live_', test: 'kg_test_' } },
        auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }, { in: 'query', name: 'api_key' }] },
        errors: { envelope: 'message' },
      },
      { dir },
    );
    for (const [name, mode] of [['a', 'live'], ['b', 'test'], ['c', 'live']] as const) {
      const account = await createAccount(kg.runtime, { name }, 'test');
      const issued = await createKey(kg.runtime, { accountId: account.id, name, mode }, 'test');
      keys.push({ secret: issued.secret, id: issued.key.id, accountId: account.id });
    }
    client = new Client(kg.gatewayUrl, { pipelining: 1 });
    client.on('connect', () => connects++);
  });

  afterAll(async () => {
    await client?.close();
    await kg?.close();
    await upstream?.close();
  });

  async function call(path: string, secret?: string): Promise<{ status: number; key: unknown; account: unknown; connections: number }> {
    const before = upstream.received.length;
    const response = await client.request({ method: 'GET', path, headers: secret === undefined ? {} : { authorization: `Bearer ${secret}` } });
    await response.body.text();
    const seen = upstream.received.length > before ? upstream.received.at(-1) : undefined;
    return { status: response.statusCode, key: seen?.headers['x-keygate-key'], account: seen?.headers['x-keygate-account'], connections: connects };
  }

  it('forwards each key as itself, whichever came before it on the connection', async () => {
    const order = [0, 0, 1, 0, 2, 2, 1, 1, 0];
    for (const i of order) {
      const { secret, id, accountId } = keys[i]!;
      expect(await call('/v1/items', secret)).toMatchObject({ status: 200, key: id, account: accountId, connections: 1 });
    }
    // From the query too, and a key one character off the last one is not taken for it.
    const [a] = keys;
    expect(await call(`/v1/items?api_key=${a!.secret}`)).toMatchObject({ status: 200, key: a!.id });
    const last = a!.secret.at(-1) === 'A' ? 'B' : 'A';
    expect(await call('/v1/items', `${a!.secret.slice(0, -1)}${last}`)).toMatchObject({ status: 401, key: undefined });
    expect(await call(`/v1/items?api_key=${encodeURIComponent(`${a!.secret.slice(0, -1)}\u0100`)}`)).toMatchObject({ status: 401, key: undefined });
    expect(await call('/v1/items', a!.secret)).toMatchObject({ status: 200, key: a!.id, connections: 1 });
  });

  it('refuses a key revoked since its last request on the same connection', async () => {
    const c = keys[2]!;
    expect(await call('/v1/items', c.secret)).toMatchObject({ status: 200, key: c.id });
    await revokeKey(kg.runtime, c.id, 'test');
    expect(await call('/v1/items', c.secret)).toMatchObject({ status: 401, key: undefined, connections: 1 });
    expect(await call('/v1/items', keys[1]!.secret)).toMatchObject({ status: 200, key: keys[1]!.id });
  });
});
