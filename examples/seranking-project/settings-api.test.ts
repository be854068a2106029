/**
 * shared/seeds/002, "API access and keys": "To get an API key: 1. Log in to the user
 * account. 2. Go to Settings -> API. 3. Click the Generate API Key button." Settings -> API
 * is the example's dashboard: the shipped examples/seranking-project profile and upstream,
 * real Chromium, and the key used over real HTTP against the gateway, in the header and
 * in the token parameter as the document sends it.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, expectHeading, launchChromium, shown, signedInPage, TestClock, textOf, type DashboardFixture } from '../../test/dashboard/support.js';
import { read, startExample, type AccountOut, type RunningExample } from '../support/example.js';

const JSON_TYPE = 'application/json';
const BALANCE = { status: 200, type: JSON_TYPE, body: { currency: 'rur', value: 2296380.85 } };

describe.skipIf(!chromiumAvailable())('SE Ranking project "API access and keys": from Settings -> API (the dashboard) of examples/seranking-project', () => {
  let ex: RunningExample;
  let browser: Browser;
  let dashboard: DashboardFixture;
  let account: AccountOut;
  let page: Page;

  beforeAll(async () => {
    ex = await startExample('seranking-project', { dashboard: true });
    const dashboardUrl = ex.kg.dashboardUrl;
    if (dashboardUrl === undefined) throw new Error('the seranking-project profile served no dashboard');
    dashboard = { keygate: ex.kg, clock: new TestClock(), dashboardUrl, close: async () => undefined };
    account = await ex.cliJson<AccountOut>(['accounts', 'create', '--name', 'Acme SEO']);
    browser = await launchChromium();
    page = await signedInPage(dashboard, browser, 'ada@acme.example', account.id);
  });

  afterAll(async () => {
    await browser?.close();
    await ex?.close();
  });

  it('"Generate API Key": a 40-hex key, shown once, sent as Authorization: Token KEY or ?token=KEY', async () => {
    await page.goto('/keys');
    await expectHeading(page, 'API keys');
    await page.getByRole('link', { name: 'Create a key' }).click();
    await expectHeading(page, 'Create a key');
    await page.getByLabel('Name').fill('API key');
    await page.getByRole('button', { name: 'Create key' }).click();
    await expectHeading(page, 'Copy your new key');
    const secret = await page.getByLabel('Key “API key”').inputValue();
    expect(secret).toMatch(/^[0-9a-f]{40}$/);
    await shown(page.getByText('This is the only time this key is shown.'));
    expect(await textOf(page.locator('main p', { hasText: 'Send it with each request' }))).toBe('Send it with each request in the header Authorization: Token <your key>.');

    expect(await read(await ex.call('/account/balance', { headers: { authorization: `Token ${secret}` } }))).toEqual(BALANCE);
    expect(await read(await ex.call(`/account/balance?token=${secret}`))).toEqual(BALANCE);
    await page.goto('/keys');
    expect(await page.content()).not.toContain(secret);
  });

  it('a plan without the API (Essential, Pro): a key made in its settings is refused 403 No access, and the page says so', async () => {
    const essential = await ex.cliJson<AccountOut>(['accounts', 'create', '--name', 'Small Co', '--plan', 'essential']);
    const member = await signedInPage(dashboard, browser, 'bo@small.example', essential.id);
    let secret = '';
    try {
      await member.goto('/keys');
      await expectHeading(member, 'API keys');
      await shown(member.getByText('Requests are refused until the account is on a plan that includes it.', { exact: false }));
      await member.getByRole('link', { name: 'Create a key' }).click();
      await member.getByLabel('Name').fill('API key');
      await member.getByRole('button', { name: 'Create key' }).click();
      await expectHeading(member, 'Copy your new key');
      secret = await member.getByLabel('Key “API key”').inputValue();
    } finally {
      await member.context().close();
    }
    expect(await read(await ex.call('/account/balance', { headers: { authorization: `Token ${secret}` } }))).toEqual({ status: 403, type: JSON_TYPE, body: { message: 'No access' } });
  });
});
