/**
 * The page that shows an operator a new invitation link, once: as the page of a new key
 * does, it opens with the keyboard on the link (one Tab to Copy link), the field described
 * by the warning that it is shown only now, at a desktop's width and a phone's.
 */
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, DESKTOP, expectHeading, invite, join, newAccount, newContext, shown, tabTo, useDashboard } from './support.js';

describe.skipIf(!chromiumAvailable())('dashboard: a new invitation link, shown once', () => {
  const fixture = useDashboard('keygate-dashboard-invitation-link');
  let accountId: string;

  beforeAll(async () => {
    accountId = await newAccount(fixture, 'Acme Analytics');
  });

  async function operatorPage(viewport: typeof DESKTOP, email: string): Promise<Page> {
    const page = await (await newContext(fixture.browser, fixture.dashboardUrl, viewport)).newPage();
    await join(page, await invite(fixture, email, null, 'operator'), email);
    return page;
  }

  for (const [width, viewport] of [['a desktop', DESKTOP], ['a phone', { width: 390, height: 844 }]] as const) {
    it(`opens with the keyboard on the link, described by its warning, one Tab from Copy link (${width})`, async () => {
      const page = await operatorPage(viewport, `olga-${viewport.width}@ops.example`);
      await page.goto(`/accounts/${accountId}`);
      await page.getByLabel('Invite a member by email').fill(`dan-${viewport.width}@acme.example`);
      await page.getByRole('button', { name: 'Create invitation link' }).click();
      await expectHeading(page, `Invitation for dan-${viewport.width}@acme.example`);

      // It was on the page's body: the operator tabbed through the header's links to reach the link.
      await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe('invite-link');
      const field = page.getByLabel('Invitation link');
      expect(await field.getAttribute('aria-describedby')).toBe('invite-warning');
      expect(await page.locator('#invite-warning').innerText()).toMatch(/^This link is shown only now\. Send it to dan-\d+@acme\.example;/);
      const link = await field.inputValue();
      expect(link).toMatch(/\/invite\/[\w-]{32}$/);

      await tabTo(page, 'the copy button', (el) => el.tag === 'button' && el.text === 'Copy link', 1);
      await page.keyboard.press('Enter');
      await shown(page.getByRole('status').filter({ hasText: 'Copied to the clipboard.' }));
      expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(link);
    });
  }
});
