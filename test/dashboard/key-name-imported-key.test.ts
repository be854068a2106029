/**
 * A member names keys in the dashboard under bare imported keys of the `unreserved`
 * alphabet (`keys.imported` without a prefix): over plain HTTP, a name with a long run of
 * that alphabet (`acme-industries.co.uk`) is taken, one holding an imported key is refused
 * as the CLI and admin API refuse it, and the name field says why.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey } from '../../src/operations/keys.js';
import { randomBase62 } from '../../src/keys/format.js';
import type { Runtime } from '../../src/runtime.js';
import { tempDir } from '../support/temp.js';
import { newAccount, startDashboard, type DashboardFixture } from './support.js';
import { signedInVisitors, type Visitor } from './visitor.js';

describe('dashboard: key names under bare imported keys of the unreserved alphabet', () => {
  let fixture: DashboardFixture;
  let rt: Runtime;
  let acmeId: string;
  let member: Visitor;
  /** A hand-set key from Kong, imported for the account. */
  const imported = `bob-${randomBase62(16)}-2023.secret~${randomBase62(4)}`;

  beforeAll(async () => {
    fixture = await startDashboard(tempDir('keygate-dashboard-key-name-imported'), (profile) => ({
      ...profile,
      keys: { format: 'prefixed', prefix: { live: 'rk_live_', test: 'rk_test_' }, imported: { prefix: {}, alphabet: 'unreserved', length: { min: 20, max: 40 } } },
    }));
    rt = fixture.keygate.runtime;
    acmeId = await newAccount(fixture, 'Acme Analytics');
    await createKey(rt, { accountId: acmeId, name: 'kong bob', scopes: ['*'] }, 'test', { secret: imported });
    ({ member } = await signedInVisitors(fixture, acmeId));
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('creates a key named acme-industries.co.uk, and refuses to rename it to a name holding the imported key, keeping the name it had', async () => {
    const created = await member.post('/keys', [['name', 'acme-industries.co.uk'], ['scope', '*'], ['mode', 'live'], ['expiry', 'never']]);
    expect(created.status).toBe(201);
    const key = (await rt.store.listKeys({ accountId: acmeId })).find((k) => k.name === 'acme-industries.co.uk');
    expect(key).toBeDefined();
    const refused = await member.post(`/keys/${key!.id}/edit`, [['name', `prod-${imported}`], ['scope', '*']]);
    expect(refused.status).toBe(400);
    expect(refused.alert).toBe('A key name cannot contain an API key (it would be stored and shown in clear): name it after what it is for.');
    expect(refused.html).toContain('aria-invalid="true"');
    expect((await rt.store.getKey(key!.id))?.name).toBe('acme-industries.co.uk');
  });
});
