/**
 * The operator's account search, in real Chromium: after a search, the way back to every
 * account sits on the line of the Search button, level with it, not floating by the
 * field's label above.
 */
import type { Locator, Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, expectHeading, newAccount, newContext, PHONE, screenshot, signedInPage, useDashboard } from './support.js';

/** The vertical middle of the first match, in page pixels. */
async function middle(locator: Locator): Promise<number> {
  const box = await locator.first().boundingBox();
  if (!box) throw new Error('not on screen');
  return box.y + box.height / 2;
}

describe.skipIf(!chromiumAvailable())('dashboard: the account search', () => {
  const fixture = useDashboard('keygate-dashboard-accounts-search');
  let page: Page;

  beforeAll(async () => {
    await newAccount(fixture, 'Acme Analytics');
    page = await signedInPage(fixture, fixture.browser, 'olga@ops.example', null, { role: 'operator' });
  });

  it('puts "Show every account" level with the Search button, on a desktop', async () => {
    for (const q of ['acme', 'zzz']) {
      await page.goto(`/accounts?q=${q}`);
      await expectHeading(page, 'Accounts');
      const search = page.getByRole('search', { name: 'Accounts' });
      const button = await middle(search.getByRole('button', { name: 'Search' }));
      const link = await middle(search.getByRole('link', { name: 'Show every account' }));
      expect(Math.abs(link - button), `q=${q}: the link's middle at ${link}, the button's at ${button}`).toBeLessThanOrEqual(2);
    }
    await screenshot(page, 'accounts-search-none');
  });

  it('keeps the link within the screen on a phone, not above the button', async () => {
    const phone = await (await newContext(fixture.browser, fixture.dashboardUrl, PHONE)).newPage();
    try {
      await phone.context().addCookies(await page.context().cookies());
      await phone.goto('/accounts?q=zzz');
      const search = phone.getByRole('search', { name: 'Accounts' });
      const button = await search.getByRole('button', { name: 'Search' }).boundingBox();
      const link = await search.getByRole('link', { name: 'Show every account' }).boundingBox();
      expect((link?.x ?? Infinity) + (link?.width ?? 0)).toBeLessThanOrEqual(PHONE.width);
      expect(link?.y ?? 0).toBeGreaterThanOrEqual((button?.y ?? Infinity) - 1);
    } finally {
      await phone.context().close();
    }
  });
});
