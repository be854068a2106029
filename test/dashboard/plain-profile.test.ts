/**
 * A profile like four of the five examples: no scopes and one key mode, an id ("name")
 * and the API's name ("title"). In real Chromium the dashboard names the API by its
 * title, never its id, and says nothing about scopes or modes (a "Scopes: none" would tell a member
 * their key can call nothing, when it can call everything), and its usage page says
 * what a meter counts in, that an account whose keys are blocked is refused for now
 * although its API access is on, and draws no units chart for a plan that spends none.
 */
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { isoDay, periodBounds } from '../../src/meters/period.js';
import { chromiumAvailable, expectHeading, newAccount, newContext, signedInPage, textOf, useDashboard } from './support.js';

describe.skipIf(!chromiumAvailable())('dashboard: a profile without scopes and with one key mode', () => {
  const fixture = useDashboard('keygate-dashboard-plain', (profile) => ({
    ...profile,
    name: 'seranking-data',
    title: 'SE Ranking Data',
    keys: { format: 'prefixed', prefix: { live: 'sk_live_' } },
    // Where customers reach the API: the new key's page says it, with a curl line.
    dashboard: { ...profile.dashboard, apiUrl: 'https://api.seranking.example/v1' },
    auth: { credentials: [{ in: 'query', name: 'apikey' }, { in: 'header', name: 'Authorization', scheme: 'Bearer' }] },
    scopes: [],
    plans: {
      // Two requests a minute per account; one refusal blocks every key of the account for 10 minutes.
      pro: {
        name: 'Pro',
        rateLimits: [{ limit: 2, window: '1m', scope: 'account' }],
        block: { after: 1, within: '1m', duration: '10m', scope: 'account' },
        meters: { balance: { limit: 1000, unit: 'rur' } },
      },
      sites: { name: 'Sites', meters: { sites: { kind: 'gauge', limit: 5 } } },
    },
    defaultPlan: 'pro',
    gauges: { sites: { header: 'X-Sites' } },
    routes: [{ method: 'GET', path: '/v1/projects', cost: { meter: 'balance', perRequest: 1 } }],
  }));
  let page: Page;
  let sitesPage: Page;

  beforeAll(async () => {
    page = await signedInPage(fixture, fixture.browser, 'ada@acme.example', await newAccount(fixture, 'Acme Analytics'));
    sitesPage = await signedInPage(fixture, fixture.browser, 'grace@sites.example', await newAccount(fixture, 'Sites Ltd', 'sites'));
  });

  let secret = '';

  it('names the API by the profile\'s title in the header, the page titles and its sentences, never by its id', async () => {
    await page.goto('/keys');
    await expectHeading(page, 'API keys');
    expect(await page.title()).toBe('API keys · SE Ranking Data');
    expect(await textOf(page.locator('header .brand'))).toBe('SE Ranking Data');
    expect(await textOf(page.locator('main p').first())).toMatch(/^Keys let your programs call the SE Ranking Data API as Acme Analytics\./);
    expect(await textOf(page.locator('footer'))).toBe('SE Ranking Data · API keys and usage');
    expect(await textOf(page.locator('body'))).not.toContain('seranking-data');
    const signedOut = await (await newContext(fixture.browser, fixture.dashboardUrl)).newPage();
    try {
      await signedOut.goto('/sign-in');
      expect(await signedOut.title()).toBe('Sign in · SE Ranking Data');
      expect(await textOf(signedOut.locator('main'))).toContain('Manage your SE Ranking Data API keys and see your usage, or, as an operator, every account.');
    } finally {
      await signedOut.context().close();
    }
  });

  it('creates a key without a word about scopes or its mode', async () => {
    await page.goto('/keys/new');
    await expectHeading(page, 'Create a key');
    await page.getByLabel('Name').fill('Production');
    await page.getByRole('button', { name: 'Create key' }).click();
    await expectHeading(page, 'Copy your new key');
    secret = await page.getByLabel('Key “Production”').inputValue();
    expect(secret).toMatch(/^sk_live_/);
    const facts = await textOf(page.locator('dl.facts'));
    expect(facts).toContain('Production');
    expect(facts).not.toContain('Scopes');
    expect(facts).not.toContain('Mode');
    expect(await textOf(page.locator('main p', { hasText: 'Send it with each request' }))).toBe('Send it with each request to https://api.seranking.example/v1 as the apikey query parameter.');
    expect(await textOf(page.locator('pre.try'))).toBe("curl 'https://api.seranking.example/v1?apikey=<your key>'");
    // And the key it says nothing about reaches the API.
    expect((await fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } })).status).toBe(200);
  });

  it('lists keys without a Scopes column or a mode badge', async () => {
    await page.goto('/keys');
    await expectHeading(page, 'API keys');
    const table = page.getByRole('table', { name: 'Keys in use' });
    expect(await table.getByRole('columnheader').allTextContents()).not.toContain('Scopes');
    const row = table.locator('tr', { hasText: 'Production' });
    expect(await row.locator('td[data-label="Scopes"]').count()).toBe(0);
    expect(await row.locator('.badge.live').count()).toBe(0);
    expect(await textOf(row)).not.toMatch(/\bnone\b/);
  });

  it('says what the rotation keeps in the profile\'s terms', async () => {
    await page.goto('/keys');
    await page.getByRole('link', { name: 'Rotate Production' }).click();
    await expectHeading(page, 'Rotate key “Production”');
    const text = await textOf(page.locator('main'));
    expect(text).toContain('a replacement with the same name and end date, shown to you once');
  });

  it('names the unit a meter counts in on the usage page', async () => {
    await page.goto('/usage');
    await expectHeading(page, 'Usage');
    expect(await textOf(page.locator('tr', { hasText: 'balance' }).locator('td[data-label="Meter"]'))).toBe('balance (rur)');
    expect(await page.getByRole('figure', { name: 'Units per day' }).count()).toBe(1);
  });

  it('says that an account whose keys are blocked is refused for now, though its API access is on', async () => {
    const call = () => fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } });
    // Two requests fit in the minute (one may have been made above); the next is refused and blocks the account.
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await call()).status);
    expect(statuses[0]).toBe(200);
    expect(statuses[2]).toBe(429);
    await page.goto('/usage');
    const access = await textOf(page.locator('dl.facts div', { hasText: 'API access' }));
    expect(access).toContain('On');
    expect(access).toMatch(/Blocked, ends in (9|10) min/);
    expect(access).toContain('its key is refused for exceeding the rate limit repeatedly');
    // The units chart's summary counts in the meter's unit, as the meters table names it, not in "units".
    expect(await page.getByRole('img', { name: /^Units per day, .*: \d+ rur in all, at most \d+ in a day\.$/ }).count()).toBe(1);
    expect(await page.getByRole('img', { name: /units in all/ }).count()).toBe(0);
  });

  it('says where API access is that a used-up meter refuses the requests that spend it, until it renews', async () => {
    await page.goto('/usage');
    expect(await textOf(page.locator('dl.facts div', { hasText: 'API access' }))).not.toContain('used up');
    const accountId = (await fixture.keygate.runtime.store.listAccounts()).find((a) => a.name === 'Acme Analytics')!.id;
    const { start, endsAt } = periodBounds('month', fixture.keygate.runtime.clock());
    // The whole balance spent (as 1,000 requests would have).
    await fixture.keygate.runtime.counters.restoreMeters([{ accountId, meter: 'balance', periodStart: start, used: 1000, returned: 0 }]);
    await page.goto('/usage');
    const access = await textOf(page.locator('dl.facts div', { hasText: 'API access' }));
    expect(access).toContain('On');
    expect(access).toContain(`rur used up — requests that spend rur are refused until they renew on ${isoDay(endsAt)}`);
    // The bar says its share in figures too.
    expect(await textOf(page.locator('tr', { hasText: 'balance' }).locator('td[data-label="Share used"]'))).toContain('100%');
  });

  it('draws no units chart for a plan whose meters spend no units', async () => {
    await sitesPage.goto('/usage');
    await expectHeading(sitesPage, 'Usage');
    expect(await textOf(sitesPage.locator('tr', { hasText: 'sites' }).locator('td[data-label="Meter"]'))).toBe('sites (current count)');
    expect(await sitesPage.getByRole('figure', { name: 'Requests per day' }).count()).toBe(1);
    expect(await sitesPage.getByRole('figure', { name: 'Units per day' }).count()).toBe(0);
  });
});
