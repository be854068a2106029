/**
 * An account named with a long word (200 characters without a space, the most a name
 * takes) wraps in its cell, as a key's name does: it does not widen the accounts table or
 * the audit log so far that every account's plan, access and usage are pushed out of view.
 */
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, DESKTOP, invite, join, newAccount, newContext, OPERATOR, useDashboard } from './support.js';

const LONG_NAME = `Unicorn-${'z'.repeat(192)}`;

describe.skipIf(!chromiumAvailable())('dashboard: an account with a long name', () => {
  const fixture = useDashboard('keygate-dashboard-long-account-name');
  let operator: Page;

  beforeAll(async () => {
    await newAccount(fixture, 'Acme Analytics');
    await newAccount(fixture, LONG_NAME);
    operator = await (await newContext(fixture.browser, fixture.dashboardUrl, DESKTOP)).newPage();
    await join(operator, await invite(fixture, OPERATOR, null, 'operator'), OPERATOR);
  });

  /** How far the first table is wider than the box it scrolls in (0: it fits). */
  const tableFit = (page: Page) =>
    page.evaluate(() => {
      const box = document.querySelector('table.data')!;
      const scroller = box.closest('.table-wrap') ?? box;
      return scroller.scrollWidth - scroller.clientWidth;
    });

  it('wraps the name in the accounts table and the audit log, which fit the window', async () => {
    await operator.goto('/accounts');
    expect(await operator.getByRole('link', { name: LONG_NAME }).count()).toBe(1);
    expect(await tableFit(operator)).toBe(0);
    const plan = operator.locator('tr', { hasText: 'Acme Analytics' }).locator('td[data-label="Plan"]');
    expect(await plan.isVisible()).toBe(true);
    const box = await plan.boundingBox();
    expect((box?.x ?? Infinity) + (box?.width ?? 0)).toBeLessThanOrEqual(DESKTOP.width);

    await operator.goto('/audit');
    expect(await operator.getByRole('link', { name: LONG_NAME }).count()).toBeGreaterThan(0);
    expect(await tableFit(operator)).toBe(0);
  });
});
