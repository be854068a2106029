/**
 * What the page that shows a key's secret once says to do if it is lost, and that the
 * advice is taken: a new key is revoked and another created; a replacement is rotated in
 * its turn, or, while the key it replaced still works (which refuses that rotation), it
 * is revoked and that key rotated again.
 */
import { describe, expect, it } from 'vitest';
import { createKey, revokeKey } from '../../src/operations/keys.js';
import type { KeyRecord } from '../../src/store/store.js';
import { chromiumAvailable, expectHeading, textOf, useDashboard } from './support.js';

describe.skipIf(!chromiumAvailable())('dashboard: the advice for a lost secret', () => {
  const fixture = useDashboard('keygate-dashboard-lost-secret-advice', { signedIn: ['member'] });

  const warning = () => textOf(fixture.member.locator('#secret-warning'));

  async function replacementOf(key: KeyRecord): Promise<KeyRecord> {
    const keys = await fixture.keygate.runtime.store.listKeys({ accountId: fixture.accountId });
    const found = keys.filter((k) => k.rotatedFrom === key.id && k.revokedAt === null);
    expect(found).toHaveLength(1);
    return found[0] as KeyRecord;
  }

  /** Room under the Pro plan's limit of 3 keys for the next test's. */
  async function revokeAll(): Promise<void> {
    const { accountId } = fixture;
    for (const key of await fixture.keygate.runtime.store.listKeys({ accountId })) {
      if (key.revokedAt === null) await revokeKey(fixture.keygate.runtime, key.id, 'admin-api', accountId);
    }
  }

  async function rotate(key: KeyRecord, overlap: string): Promise<void> {
    const { member: page } = fixture;
    await page.goto(`/keys/${key.id}/rotate`);
    await expectHeading(page, `Rotate key “${key.name}”`);
    await page.getByRole('radio', { name: overlap }).check();
    await page.getByRole('button', { name: 'Rotate key' }).click();
    await expectHeading(page, 'Copy your replacement key');
  }

  it('after creating a key: revoke it and create another', async () => {
    const { member: page } = fixture;
    await page.goto('/keys/new');
    await page.getByLabel('Name').fill('Reporting script');
    await page.getByRole('checkbox', { name: 'projects:read' }).check();
    await page.getByRole('button', { name: 'Create key' }).click();
    await expectHeading(page, 'Copy your new key');
    expect(await warning()).toMatch(/Only a hash of it is stored; if you lose it, revoke it and create another\.$/);
  });

  it('after a rotation with an overlap: revoke the replacement and rotate the previous key again, which is accepted', async () => {
    const { member: page, accountId } = fixture;
    await revokeAll();
    const first = (await createKey(fixture.keygate.runtime, { accountId, name: 'production' }, 'admin-api')).key;
    await rotate(first, '24 hours');
    expect(await warning()).toMatch(
      new RegExp(`Only a hash of it is stored; if you lose it, revoke it and rotate the previous key ${first.hint.replace(/[.…]/g, '\\$&')} again while that key still works; once it has stopped, rotate this one\\.$`),
    );

    // The advice, followed: the lost replacement revoked, the previous key rotated again.
    const lost = await replacementOf(first);
    await page.goto(`/keys/${lost.id}/revoke`);
    await page.getByRole('button', { name: 'Revoke key' }).click();
    await page.waitForURL((url) => url.pathname === '/keys');
    await rotate(first, '24 hours');
    expect((await replacementOf(first)).id).not.toBe(lost.id);
  });

  it('after a rotation without an overlap: rotate the replacement, which is accepted', async () => {
    const { accountId } = fixture;
    await revokeAll();
    const first = (await createKey(fixture.keygate.runtime, { accountId, name: 'staging' }, 'admin-api')).key;
    await rotate(first, 'No overlap: the current key stops working now');
    expect(await warning()).toMatch(/Only a hash of it is stored; if you lose it, rotate it to get another\.$/);

    const lost = await replacementOf(first);
    await rotate(lost, '24 hours');
    expect((await replacementOf(lost)).name).toBe('staging');
  });
});
