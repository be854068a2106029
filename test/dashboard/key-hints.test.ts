/**
 * A key's hint (rk_live_…ghuI) is read character by character against the key a member
 * holds: wherever a page names one it is set in the monospace font the keys table uses,
 * where I and l, O and 0 differ. In real Chromium: the notice after a revoke (a member's
 * and an operator's) and the audit log's details.
 */
import type { Locator } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { createKey } from '../../src/operations/keys.js';
import { chromiumAvailable, expectHeading, textOf, useDashboard } from './support.js';

/** The font the page draws the element in, as Chromium computes it. */
function fontOf(locator: Locator): Promise<string> {
  return locator.evaluate((el) => getComputedStyle(el).fontFamily);
}

describe.skipIf(!chromiumAvailable())('dashboard: key hints are set in monospace wherever a page names one', () => {
  const fixture = useDashboard('keygate-dashboard-key-hints', { signedIn: ['member', 'operator'] });
  /** The font the keys table sets a hint in: the one every other hint should match. */
  let tableFont: string;

  it("the notice after a member revokes a key shows the key's hint as the keys table does", async () => {
    const { member, accountId } = fixture;
    const { key } = await createKey(fixture.keygate.runtime, { accountId, name: 'Nightly export', scopes: ['*'] }, 'test');
    await member.goto('/keys');
    const listed = member.locator('tr', { hasText: 'Nightly export' }).locator('code', { hasText: key.hint });
    tableFont = await fontOf(listed);
    expect(tableFont).toMatch(/mono/i);
    await member.getByRole('link', { name: 'Revoke Nightly export' }).click();
    await member.getByRole('button', { name: 'Revoke key' }).click();
    await expectHeading(member, 'API keys');
    const notice = member.getByRole('status');
    expect(await textOf(notice)).toBe(`Key “Nightly export” (${key.hint}) is revoked. Requests with it are refused from now on.`);
    expect(await fontOf(notice.locator('code', { hasText: key.hint }))).toBe(tableFont);
  });

  it("the notice after an operator revokes a key shows the key's hint as the keys table does", async () => {
    const { operator, accountId } = fixture;
    const { key } = await createKey(fixture.keygate.runtime, { accountId, name: 'Acme production', scopes: ['*'] }, 'test');
    await operator.goto(`/accounts/${accountId}`);
    await operator.getByRole('link', { name: 'Revoke Acme production' }).click();
    await operator.getByRole('button', { name: 'Revoke key' }).click();
    await expectHeading(operator, 'Acme Analytics');
    const notice = operator.getByRole('status');
    expect(await textOf(notice)).toBe(`Key “Acme production” (${key.hint}) of Acme Analytics is revoked.`);
    expect(await fontOf(notice.locator('code', { hasText: key.hint }))).toBe(tableFont);
  });

  it("the audit log's details show each key's hint as the keys table does", async () => {
    const { operator } = fixture;
    await operator.goto('/audit');
    await expectHeading(operator, 'Audit log');
    const keys = await fixture.keygate.runtime.store.listKeys({});
    expect(keys).toHaveLength(2);
    for (const key of keys) {
      const rows = operator.locator('tbody tr', { hasText: key.hint });
      // Created and revoked: each row's details name the key by its hint, in monospace.
      expect(await rows.count()).toBe(2);
      for (const row of await rows.all()) {
        expect(await fontOf(row.locator('td[data-label="Details"] code', { hasText: key.hint }))).toBe(tableFont);
      }
    }
  });
});
