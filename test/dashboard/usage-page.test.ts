/**
 * How the usage page's charts read, in real Chromium: each day's label sits under that
 * day's bar however many days the period has shown so far (1, 2, 3, 7, 30), and the
 * table of a chart's numbers draws one even line under each day. And its table of
 * requests by key, for the member and on the operator's view of the account.
 */
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { keyBlockId } from '../../src/counters/counters.js';
import { createKey, revokeKey } from '../../src/operations/keys.js';
import { updateAccount } from '../../src/operations/accounts.js';
import { chromiumAvailable, expectHeading, horizontalOverflow, newAccount, PHONE, screenshot, signedInPage, textOf, useDashboard } from './support.js';

/** Noon of a day of January 2027, whose period (a calendar month) starts on the 1st. */
const jan = (day: number) => Date.UTC(2027, 0, day, 12);
const DAYS_SHOWN = [1, 2, 3, 7, 30];

interface AxisLabel {
  text: string;
  /** Horizontal centre of the label, and of the bar whose day it names (null: no such bar). */
  labelCentre: number;
  barCentre: number | null;
}

/** The x-axis labels of a chart of days, each with the centre of its day's bar (found by the bar's tooltip, "Jan 7: 1 answered"). */
function axisLabels(page: Page, chartTitle: string): Promise<AxisLabel[]> {
  return page.evaluate((title) => {
    const figure = [...document.querySelectorAll('figure.chart')].find((f) => f.querySelector('h3')?.textContent === title);
    if (!figure) throw new Error(`no chart "${title}"`);
    const centre = (r: DOMRect) => r.left + r.width / 2;
    const bars = [...figure.querySelectorAll('svg rect')].map((rect) => ({ day: (rect.querySelector('title')?.textContent ?? '').split(':')[0], centre: centre(rect.getBoundingClientRect()) }));
    return [...figure.querySelectorAll('.x span')]
      .filter((span) => (span.textContent ?? '').trim() !== '')
      .map((span) => {
        const text = (span.textContent ?? '').trim();
        return { text, labelCentre: centre(span.getBoundingClientRect()), barCentre: bars.find((bar) => bar.day === text)?.centre ?? null };
      });
  }, chartTitle);
}

describe.skipIf(!chromiumAvailable())('dashboard: the usage page’s charts', () => {
  // Sessions that outlast the month the test walks through.
  const fixture = useDashboard('keygate-dashboard-usage', (profile) => ({ ...profile, dashboard: { enabled: true, sessionTtl: '60d' } }));
  let desktop: Page;
  let phone: Page;
  let secret = '';

  beforeAll(async () => {
    const accountId = await newAccount(fixture, 'Acme Analytics');
    secret = (await createKey(fixture.keygate.runtime, { accountId, name: 'Production', scopes: ['*'] }, 'test')).secret;
    desktop = await signedInPage(fixture, fixture.browser, 'ada@acme.example', accountId);
    phone = await signedInPage(fixture, fixture.browser, 'bob@acme.example', accountId, { viewport: PHONE });
  });

  it('puts each day’s label under its bar, with 1, 2, 3, 7 and 30 days shown, on a desktop and a phone', async () => {
    for (let day = 1; day <= Math.max(...DAYS_SHOWN); day++) {
      fixture.clock.offsetMs = jan(day) - Date.now();
      // A request a day (one unit), so every day has a bar in both charts.
      expect((await fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } })).status).toBe(200);
      if (!DAYS_SHOWN.includes(day)) continue;
      const middle = Math.floor((day + 1) / 2);
      const expected = [...new Set([1, middle, day])].map((d) => `Jan ${d}`);
      const where = (viewport: string, chart = 'the page') => `${chart}, ${day} day(s), ${viewport}`;
      for (const [name, page] of [['desktop', desktop], ['phone', phone]] as const) {
        await page.goto('/usage');
        await expectHeading(page, 'Usage');
        for (const chart of ['Requests per day', 'Units per day']) {
          const labels = await axisLabels(page, chart);
          expect(labels.map((l) => l.text), where(name, chart)).toEqual(expected);
          for (const label of labels) expect(Math.abs(label.labelCentre - (label.barCentre ?? Infinity)), `${where(name, chart)}: ${label.text}`).toBeLessThan(1.5);
        }
        // The first and last labels, wider than a day's cell of 30, spill past the plot but not off the screen.
        expect(await horizontalOverflow(page), where(name)).toBe(0);
        if (day === 3 || day === 30) await screenshot(page, `usage-${day}-days-${name}`);
      }
    }
  });

  it('labels a refusal for a cost above what is left by what it is, while units remain: not as a used-up quota', async () => {
    // A per-record route reserves its `?limit=` records up front: 5,000 units, with fewer than 1,000 left.
    const refused = await fixture.keygate.call('/v1/rankings?limit=5000', { headers: { authorization: `Bearer ${secret}` } });
    expect(refused.status).toBe(402);
    await refused.text();
    await desktop.goto('/usage');
    expect(Number((await textOf(desktop.locator('table.data tr', { hasText: 'units' }).locator('td[data-label="Remaining"]'))).replace(/,/g, ''))).toBeGreaterThan(0);
    const denials = desktop.locator('figure.chart', { has: desktop.getByRole('heading', { name: 'Denials by reason' }) });
    expect(await textOf(denials.locator('li'))).toMatch(/^Not enough units left\s+1$/);
  });

  it('says how many of the account’s keys a block refuses, in the singular for one', async () => {
    const [blockedKey] = await fixture.keygate.runtime.store.listKeys();
    await createKey(fixture.keygate.runtime, { accountId: blockedKey!.accountId as string, name: 'Reporting', scopes: ['*'] }, 'test');
    await createKey(fixture.keygate.runtime, { accountId: blockedKey!.accountId as string, name: 'Staging', scopes: ['*'] }, 'test');
    const { counters } = fixture.keygate.runtime;
    // Blocked as the counters block it (three refusals in a row with after: 2).
    const window = { id: `k:${blockedKey!.id}:1000:1:test`, name: 'burst', limit: 1, windowMs: 1_000 };
    const policy = { after: 2, within: 60_000, duration: 300_000, factor: 2, max: 3_600_000, forgetAfter: 86_400_000, scope: 'key' as const };
    try {
      for (let i = 0; i < 3; i++) await counters.admit({ now: fixture.clock.now(), windows: [window], block: { id: keyBlockId(blockedKey!.id), policy } });
      await desktop.goto('/usage');
      expect(await textOf(desktop.locator('dl.facts div', { hasText: 'API access' }))).toMatch(/— 1 of 3 keys is refused for exceeding the rate limit repeatedly$/);
    } finally {
      await counters.liftBlocks([keyBlockId(blockedKey!.id)], fixture.clock.now());
    }
  });

  it('gives the limit the account is held to: its own where the operator set one, the plan’s again once cleared', async () => {
    const [key] = await fixture.keygate.runtime.store.listKeys();
    const accountId = key!.accountId as string;
    const limitCell = () => textOf(desktop.locator('table.data tr', { hasText: 'units' }).locator('td[data-label="Limit"]'));
    try {
      await updateAccount(fixture.keygate.runtime, accountId, { limits: { meters: { units: 250_000 } } }, 'test');
      await desktop.goto('/usage');
      expect(await limitCell()).toMatch(/^250,000/);
    } finally {
      await updateAccount(fixture.keygate.runtime, accountId, { limits: null }, 'test');
    }
    await desktop.goto('/usage');
    expect(await limitCell()).toMatch(/^1,000/);
  });

  it('draws the same line under a day’s row header as under its figures in the table of numbers', async () => {
    for (const [name, page] of [['desktop', desktop], ['phone', phone]] as const) {
      await page.goto('/usage');
      const table = page.locator('details.numbers').first();
      await table.locator('summary').click();
      await screenshot(page, `usage-numbers-${name}`);
      const lines = await table.locator('tbody tr').first().evaluate((row) => [...row.children].map((cell) => getComputedStyle(cell).borderBottomWidth));
      expect(lines).toEqual(lines.map(() => '1px'));
      // The column headings keep their heavier line.
      expect(await table.locator('thead th').first().evaluate((th) => getComputedStyle(th).borderBottomWidth)).toBe('2px');
    }
  });

  it('lists each key’s requests this period with its last use, a revoked key’s too, for the member and the operator', async () => {
    const rt = fixture.keygate.runtime;
    const [production] = await rt.store.listKeys();
    const accountId = production!.accountId as string;
    // Staging, revoked without a request this period, is left out; its place (the plan allows 3) goes to Batch.
    const staging = (await rt.store.listKeys({ accountId })).find((key) => key.name === 'Staging');
    await revokeKey(rt, staging!.id, 'test');
    const batch = await createKey(rt, { accountId, name: 'Batch', scopes: ['*'] }, 'test');
    for (let i = 0; i < 2; i++) expect((await fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${batch.secret}` } })).status).toBe(200);
    await revokeKey(rt, batch.key.id, 'test');
    const operator = await signedInPage(fixture, fixture.browser, 'olga@ops.example', null, { role: 'operator' });

    for (const [who, page, path] of [['member', desktop, '/usage'], ['operator', operator, `/accounts/${accountId}`]] as const) {
      await page.goto(path);
      const table = page.locator('table', { has: page.locator('caption', { hasText: 'Requests by key this period' }) });
      const rows = await table.locator('tbody tr').evaluateAll((trs) =>
        trs.map((tr) => ({
          key: tr.querySelector('.key-name')?.textContent,
          hint: tr.querySelector('code.hint')?.textContent,
          revoked: tr.querySelector('.badge.revoked') !== null,
          requests: tr.querySelector('td[data-label="Requests this period"]')?.textContent,
          lastUsed: tr.querySelector('td[data-label="Last used (UTC)"]')?.textContent,
        })),
      );
      // Production made one request a day of January's 30; Reporting none.
      expect(rows.map(({ key, revoked, requests }) => ({ key, revoked, requests })), who).toEqual([
        { key: 'Production', revoked: false, requests: '30' },
        { key: 'Batch', revoked: true, requests: '2' },
        { key: 'Reporting', revoked: false, requests: '0' },
      ]);
      expect(rows[1]?.hint, who).toBe(batch.key.hint);
      expect(rows.map((row) => row.lastUsed?.replace(/\d\d:\d\d$/, 'hh:mm')), who).toEqual(['2027-01-30 hh:mm', '2027-01-30 hh:mm', 'Never']);
    }
    await screenshot(desktop, 'usage-requests-by-key');
  });

  it('names the time zone of the day a meter resets, as the other dates on the page name theirs', async () => {
    await desktop.goto('/usage');
    await expectHeading(desktop, 'Usage');
    const meters = desktop.getByRole('table').filter({ has: desktop.getByRole('columnheader', { name: 'Meter' }) });
    expect(await meters.getByRole('columnheader').allInnerTexts()).toContain('RESETS (UTC)');
    // On a phone each cell says what it is, with the zone too.
    await phone.goto('/usage');
    const cell = phone.locator('tr', { hasText: 'units' }).first().locator('td').last();
    expect(await cell.evaluate((td) => getComputedStyle(td, '::before').content)).toBe('"Resets (UTC)"');
    expect(await textOf(cell)).toMatch(/^\d{4}-\d\d-01$/);
  });
});
