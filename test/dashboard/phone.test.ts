/**
 * The dashboard on a phone (375 px wide), in real Chromium: every page fits the width
 * (no sideways scrolling), tables turn into labelled cards, and the whole create-copy
 * flow works by touch-sized controls.
 */
import type { Locator, Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { keyBlockId } from '../../src/counters/counters.js';
import { chromiumAvailable, DESKTOP, expectHeading, horizontalOverflow, invite, join, newAccount, newContext, PHONE, screenshot, signedInPage, textOf, useDashboard } from './support.js';

describe.skipIf(!chromiumAvailable())('dashboard: on a phone', () => {
  const fixture = useDashboard('keygate-dashboard-phone');
  let page: Page;
  let secret = '';

  beforeAll(async () => {
    const accountId = await newAccount(fixture, 'Acme Analytics');
    page = await signedInPage(fixture, fixture.browser, 'ada@acme.example', accountId, { viewport: PHONE });
  });

  it('creates and copies a key on a 375 px screen', async () => {
    await page.goto('/keys');
    expect(await horizontalOverflow(page)).toBe(0);
    await page.getByRole('link', { name: 'Create a key' }).tap();
    await expectHeading(page, 'Create a key');
    expect(await horizontalOverflow(page)).toBe(0);
    await page.getByLabel('Name').fill('Phone app');
    await page.getByRole('checkbox', { name: 'projects:read' }).tap();
    await page.getByRole('checkbox', { name: 'rankings:read' }).tap();
    await screenshot(page, 'phone-create-key');
    await page.getByRole('button', { name: 'Create key' }).tap();
    await expectHeading(page, 'Copy your new key');
    await page.getByRole('button', { name: 'Copy key' }).tap();
    secret = await page.evaluate(() => navigator.clipboard.readText());
    expect(secret).toMatch(/^rk_live_/);
    expect(await horizontalOverflow(page)).toBe(0);
    await screenshot(page, 'phone-key-created');

    for (const path of ['/v1/projects', '/v1/rankings?limit=25']) {
      expect((await fixture.keygate.call(path, { headers: { authorization: `Bearer ${secret}` } })).status).toBe(200);
    }
  });

  it('shows keys as labelled cards that fit the screen', async () => {
    await page.goto('/keys');
    expect(await horizontalOverflow(page)).toBe(0);
    const card = page.locator('tr', { hasText: 'Phone app' });
    const box = await card.boundingBox();
    expect(box?.width).toBeLessThanOrEqual(PHONE.width);
    // Each cell says what it is, since the column headings are hidden.
    expect(await card.locator('td[data-label="Scopes"]').evaluate((td) => getComputedStyle(td, '::before').content)).toBe('"Scopes"');
    expect(await textOf(card)).toContain('projects:read');
    // Touch targets are at least 36 px high.
    const revoke = await card.getByRole('link', { name: 'Revoke Phone app' }).boundingBox();
    expect(revoke?.height).toBeGreaterThanOrEqual(36);
    await screenshot(page, 'phone-keys');
  });

  it('keeps a blocked key\'s badges beside its Status label, not under it', async () => {
    const [key] = await fixture.keygate.runtime.store.listKeys();
    const { counters } = fixture.keygate.runtime;
    const now = fixture.clock.now();
    // Blocked as the counters block it (three refusals in a row with after: 2).
    const window = { id: `k:${key!.id}:1000:1:test`, name: 'burst', limit: 1, windowMs: 1_000 };
    const policy = { after: 2, within: 60_000, duration: 300_000, factor: 2, max: 3_600_000, forgetAfter: 86_400_000, scope: 'key' as const };
    try {
      for (let i = 0; i < 3; i++) await counters.admit({ now, windows: [window], block: { id: keyBlockId(key!.id), policy } });
      await page.goto('/keys');
      const status = page.locator('tr', { hasText: 'Phone app' }).locator('td[data-label="Status"]');
      const active = await status.locator('.badge.active').boundingBox();
      const blocked = await status.locator('.badge.blocked').boundingBox();
      expect(await textOf(status.locator('.badge.blocked'))).toBe('Blocked, ends in 5 min');
      // Both in the value column, where every other field's value starts.
      const value = await page.locator('tr', { hasText: 'Phone app' }).locator('td[data-label="Created (UTC)"] time').boundingBox();
      expect(blocked?.x).toBe(value?.x);
      expect(active?.x).toBe(value?.x);
      await screenshot(page, 'phone-key-blocked');
    } finally {
      await counters.liftBlocks([keyBlockId(key!.id)], fixture.clock.now());
    }
  });

  it('shows usage and its charts within the screen', async () => {
    await page.goto('/usage');
    await expectHeading(page, 'Usage');
    expect(await horizontalOverflow(page)).toBe(0);
    expect(await textOf(page.locator('tr', { hasText: 'units' }))).toMatch(/26/);
    const chart = await page.getByRole('img', { name: /Requests per day/ }).boundingBox();
    expect(chart?.width).toBeGreaterThan(200);
    expect((chart?.x ?? 0) + (chart?.width ?? 0)).toBeLessThanOrEqual(PHONE.width);
    await screenshot(page, 'phone-usage');
  });

  it('wraps a key name of 100 characters without a space, on a phone and on a desktop', async () => {
    const [key] = await fixture.keygate.runtime.store.listKeys();
    const long = `nightly-export-${'x'.repeat(85)}`;
    await fixture.keygate.runtime.store.updateKey(key!.id, { name: long });
    const desktop = await (await newContext(fixture.browser, fixture.dashboardUrl, DESKTOP)).newPage();
    try {
      await page.goto('/keys');
      expect(await horizontalOverflow(page)).toBe(0);
      await desktop.context().addCookies(await page.context().cookies());
      await desktop.goto('/keys');
      await expect.poll(() => textOf(desktop.locator('tr', { hasText: long }))).toContain('Active');
      expect(await horizontalOverflow(desktop)).toBe(0);
      // Its status and actions are still on screen, not past a sideways scroll.
      const revoke = await desktop.getByRole('link', { name: `Revoke ${long}` }).boundingBox();
      expect((revoke?.x ?? Infinity) + (revoke?.width ?? 0)).toBeLessThanOrEqual(DESKTOP.width);
      await screenshot(desktop, 'desktop-long-key-name');
    } finally {
      await desktop.context().close();
      await fixture.keygate.runtime.store.updateKey(key!.id, { name: 'Phone app' });
    }
  });

  it('fits the sign-in, edit, rotate and revoke pages too', async () => {
    const [key] = await fixture.keygate.runtime.store.listKeys();
    for (const path of [`/keys/${key!.id}/edit`, `/keys/${key!.id}/rotate`, `/keys/${key!.id}/revoke`]) {
      await page.goto(path);
      expect(await horizontalOverflow(page), path).toBe(0);
    }
    await page.goto('/keys');
    await page.getByRole('button', { name: 'Sign out' }).tap();
    await page.waitForURL('**/sign-in');
    expect(await horizontalOverflow(page)).toBe(0);
    await screenshot(page, 'phone-sign-in');
  });

  it('keeps an email on one line in an account’s tables on a laptop, fits them on a phone, and leaves the repeated Account column out of the account’s own activity', async () => {
    const email = 'olga@ops-team.example';
    const [acme] = await fixture.keygate.runtime.store.listAccounts({ limit: 1 });
    const laptop = await (await newContext(fixture.browser, fixture.dashboardUrl, { width: 800, height: 800 })).newPage();
    /** The lines a cell's text takes (an email broken at its hyphen takes two). */
    const lines = (cell: Locator) => cell.evaluate((td) => {
      const range = document.createRange();
      range.selectNodeContents(td);
      return new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size;
    });
    try {
      await join(laptop, await invite(fixture, email, null, 'operator'), email);
      // Changes by the operator: audited under their email, beside details that take the width.
      await laptop.goto(`/accounts/${acme!.id}`);
      await laptop.getByLabel('Invite a member by email').fill('dan-the-developer@acme-analytics.example');
      await laptop.getByRole('button', { name: 'Create invitation link' }).click();
      await laptop.goto(`/accounts/${acme!.id}`);
      await laptop.getByLabel('Rate-limit windows').fill('25-per-1s, 100-per-1m, 5000-per-1h-per-account, 20000-per-1d-per-account');
      await laptop.getByRole('button', { name: 'Save limits' }).click();
      await expectHeading(laptop, 'Acme Analytics');

      const activity = laptop.getByRole('table', { name: 'Recent activity' });
      expect(await activity.locator('thead th').allTextContents()).toEqual(['When', 'Who', 'From', 'What', 'Details']);
      const byOperator = activity.locator('td[data-label="Who"]', { hasText: email });
      expect(await byOperator.count()).toBe(2);
      for (const cell of await byOperator.all()) expect(await lines(cell)).toBe(1);
      expect(await lines(laptop.getByRole('table', { name: 'Members' }).locator('td[data-label="Email"]', { hasText: 'dan-the-developer' }))).toBe(1);

      // On a phone the cards still fit the screen.
      await laptop.setViewportSize(PHONE);
      await laptop.reload();
      expect(await horizontalOverflow(laptop)).toBe(0);

      // The operator-wide log keeps the Account column: its events are of every account.
      await laptop.setViewportSize(DESKTOP);
      await laptop.goto('/audit');
      expect(await laptop.getByRole('table', { name: 'Audit log' }).locator('thead th').allTextContents()).toEqual(['When', 'Who', 'From', 'What', 'Account', 'Details']);
    } finally {
      await laptop.context().close();
    }
  });
});
