/**
 * How the audit log's Details cell wraps on a desktop: at spaces, an email kept whole
 * where the column has room for it; only a word too long for any column (a 200-character
 * account name) breaks anywhere, and the table still fits the window. `anywhere` on the
 * whole cell let the table squeeze the column below an email's width and break it mid-word.
 */
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, DESKTOP, expectHeading, horizontalOverflow, invite, newAccount, OPERATOR, PHONE, screenshot, signedInPage, useDashboard } from './support.js';

const EMAIL = 'margaret.hamilton@apollo-guidance.example';
const LONG_NAME = 'Acme'.repeat(50);

describe.skipIf(!chromiumAvailable())('dashboard: the audit log’s Details wrapping', () => {
  const fixture = useDashboard('keygate-dashboard-audit-details-wrap');
  let operator: Page;

  beforeAll(async () => {
    const accountId = await newAccount(fixture, LONG_NAME);
    await invite(fixture, EMAIL, accountId);
    operator = await signedInPage(fixture, fixture.browser, OPERATOR, null, { role: 'operator' });
  });

  /** How many lines `text` takes in the first Details cell that holds it. */
  function linesOf(page: Page, text: string): Promise<number> {
    return page.evaluate((text) => {
      const cell = [...document.querySelectorAll('td.details')].find((td) => td.textContent?.includes(text));
      if (!cell) throw new Error(`no Details cell holds ${text}`);
      const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const at = node.textContent?.indexOf(text) ?? -1;
        if (at === -1) continue;
        const range = document.createRange();
        range.setStart(node, at);
        range.setEnd(node, at + text.length);
        return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
      }
      throw new Error(`${text} is split across elements`);
    }, text);
  }

  it('keeps an email whole on a desktop, breaks a 200-character word, and fits the window', async () => {
    await operator.setViewportSize(DESKTOP);
    await operator.goto('/audit');
    await expectHeading(operator, 'Audit log');
    await screenshot(operator, 'audit-details-wrap');
    expect(await linesOf(operator, EMAIL)).toBe(1);
    expect(await linesOf(operator, LONG_NAME)).toBeGreaterThan(1);
    expect(await horizontalOverflow(operator)).toBe(0);
    const box = operator.locator('.table-wrap').first();
    expect(await box.evaluate((el) => el.scrollWidth - el.clientWidth)).toBe(0);
  });

  it('on a phone, breaks the 200-character word within its card', async () => {
    await operator.setViewportSize(PHONE);
    try {
      await operator.goto('/audit');
      expect(await linesOf(operator, LONG_NAME)).toBeGreaterThan(1);
      expect(await horizontalOverflow(operator)).toBe(0);
    } finally {
      await operator.setViewportSize(DESKTOP);
    }
  });
});
