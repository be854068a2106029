/**
 * The audit log's What column at 1280 px beside an account named with a long word: what
 * each event did ("Joined (set a password)") reads on one line, or two, not one word to a
 * line. The account's name, which breaks anywhere, took the room (its widest line is 200
 * characters) and squeezed What to its longest word.
 */
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, DESKTOP, expectHeading, horizontalOverflow, MEMBER, newAccount, OPERATOR, screenshot, signedInPage, useDashboard } from './support.js';

const LONG_NAME = `Unicorn-${'z'.repeat(192)}`;

describe.skipIf(!chromiumAvailable())('dashboard: the audit log’s What column', () => {
  const fixture = useDashboard('keygate-dashboard-audit-what-column');
  let operator: Page;

  beforeAll(async () => {
    const accountId = await newAccount(fixture, LONG_NAME);
    await signedInPage(fixture, fixture.browser, MEMBER, accountId);
    operator = await signedInPage(fixture, fixture.browser, OPERATOR, null, { role: 'operator' });
  });

  /** Each What cell's text and how many lines it takes on the screen. */
  function whatCells(page: Page): Promise<{ text: string; lines: number }[]> {
    return page.evaluate(() =>
      [...document.querySelectorAll('td[data-label="What"]')].map((cell) => {
        const range = document.createRange();
        range.selectNodeContents(cell);
        return { text: cell.textContent ?? '', lines: new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size };
      }),
    );
  }

  it('keeps what each event did to at most two lines at 1280 px, the long name wrapping beside it', async () => {
    await operator.setViewportSize(DESKTOP);
    await operator.goto('/audit');
    await expectHeading(operator, 'Audit log');
    await screenshot(operator, 'audit-what-column');
    const cells = await whatCells(operator);
    expect(cells.map((c) => c.text)).toContain('Joined (set a password)');
    expect(cells.filter((c) => c.lines > 2)).toEqual([]);
    // The name still breaks in its cell, and the table fits the window.
    const name = operator.getByRole('link', { name: LONG_NAME }).first();
    expect(await name.evaluate((a) => new Set([...a.getClientRects()].map((r) => Math.round(r.top))).size)).toBeGreaterThan(1);
    expect(await horizontalOverflow(operator)).toBe(0);
    expect(await operator.locator('.table-wrap').first().evaluate((el) => el.scrollWidth - el.clientWidth)).toBe(0);
  });
});
