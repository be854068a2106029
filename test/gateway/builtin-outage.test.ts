/**
 * A built-in endpoint whose store is away: the client gets the dialect's 503, and the log
 * line and metrics call it a backend outage (`service_unavailable`), not keygate's own
 * fault (`internal_error`, which a failure while the store answers is). The store is a
 * real SQLite file, closed under the running gateway.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { tempDir } from '../support/temp.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';

describe('a built-in endpoint while the store is away', () => {
  let kg: TestKeygate | undefined;

  afterAll(async () => {
    await kg?.close().catch(() => undefined);
  });

  it('answers 503 in the envelope, logged as the outage it is (or as keygate\'s fault while the store answers)', async () => {
    kg = await startKeygate(
      {
        upstream: { url: 'http://127.0.0.1:9' },
        // A gauge meter: its level is read from the store on every call of the built-in.
        plans: { team: { meters: { keywords: { kind: 'gauge', limit: 100 } } } },
        builtins: [{ method: 'GET', path: '/me', body: { account: '{{account.id}}' } }],
      },
      { dir: tempDir('builtin-outage') },
    );
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    const authorization = `Bearer ${(await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'live', scopes: [] }, 'test')).secret}`;
    const before = await kg.call('/me', { headers: { authorization } });
    expect({ status: before.status, body: await before.json() }).toEqual({ status: 200, body: { account: account.id } });

    // A fault of keygate's own while the store answers (a bug in reading it, say): the same
    // 503 for the client, logged as keygate's internal error.
    const store = kg.runtime.store as { listGauges: (accountId: string) => Promise<unknown> };
    const listGauges = store.listGauges;
    store.listGauges = () => Promise.reject(new TypeError('a bug'));
    const broken = await kg.call('/me', { headers: { authorization } });
    expect(broken.status).toBe(503);
    store.listGauges = listGauges;
    const first = kg.logs.lines.map((line) => JSON.parse(line) as { msg: string; status?: number; reason?: string; backendAway?: boolean });
    expect(first.find((line) => line.msg === 'request' && line.status === 503)?.reason).toBe('internal_error');
    expect(first.find((line) => line.msg === 'gateway error')?.backendAway).toBeUndefined();
    kg.logs.lines.length = 0;

    // The key stays cached; the built-in reads the store (the gauge's level), which no longer answers.
    await kg.runtime.store.close();
    const during = await kg.call('/me', { headers: { authorization } });
    expect(during.status).toBe(503);
    expect(during.headers.get('retry-after')).toBe('5');
    expect(await during.json()).toMatchObject({ status: 503 });
    const logged = kg.logs.lines.map((line) => JSON.parse(line) as { msg: string; status?: number; reason?: string; backendAway?: boolean });
    expect(logged.find((line) => line.msg === 'request' && line.status === 503)?.reason).toBe('service_unavailable');
    expect(logged.find((line) => line.msg === 'gateway error')?.backendAway).toBe(true);
  });
});
