/**
 * The title of a page (what a tab, the history and a screen reader's first words say)
 * says what its heading says: the revoke and rotate pages of a key that no longer works
 * (opened by Back after revoking it, or from an old tab) say it is revoked or cannot be
 * rotated, not "Revoke …" or "Rotate …" above a heading that says otherwise.
 */
import { describe, expect, it } from 'vitest';
import { createKey } from '../../src/operations/keys.js';
import { chromiumAvailable, expectHeading, useDashboard } from './support.js';

describe.skipIf(!chromiumAvailable())('dashboard: the titles of a stopped key’s pages', () => {
  const fixture = useDashboard('keygate-dashboard-stopped-key-titles', { signedIn: ['member', 'operator'] });

  it('names a revoked key’s revoke page “… is already revoked” and its rotate page “… cannot be rotated”, for a member and an operator', async () => {
    const { member, operator, accountId } = fixture;
    const key = (await createKey(fixture.keygate.runtime, { accountId, name: 'production' }, 'admin-api')).key;
    await member.goto(`/keys/${key.id}/revoke`);
    await expectHeading(member, 'Revoke key “production”?');
    expect(await member.title()).toBe('Revoke production · Ranksy');
    await member.getByRole('button', { name: 'Revoke key' }).click();
    await member.waitForURL((url) => url.pathname === '/keys');

    // Back to the confirmation, as a member who revoked it would go.
    await member.goBack();
    await expectHeading(member, 'Key “production” is already revoked');
    expect(await member.title()).toBe('production is already revoked · Ranksy');

    await member.goto(`/keys/${key.id}/rotate`);
    await expectHeading(member, 'Key “production” cannot be rotated');
    expect(await member.title()).toBe('production cannot be rotated · Ranksy');

    await operator.goto(`/accounts/${accountId}/keys/${key.id}/revoke`);
    await expectHeading(operator, 'Key “production” is already revoked');
    expect(await operator.title()).toBe('production is already revoked · Ranksy');
  });
});
