/**
 * shared/seeds/002, "API access and keys": "To get an API key: 1. Log in to the user
 * account. 2. Go to Settings -> API. 3. Click the Generate API Key button." Settings -> API
 * is the example's dashboard: the shipped examples/seranking-project profile and upstream,
 * real Chromium, and the key used over real HTTP against the gateway, in the header and
 * in the token parameter as the document sends it.
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, expectHeading, shown, signedInPage, textOf } from '../../test/dashboard/support.js';
import { createKeyInDashboard, startExampleDashboard, type ExampleDashboard } from '../support/dashboard.js';
import { read, type AccountOut, type RunningExample } from '../support/example.js';

const JSON_TYPE = 'application/json';
const BALANCE = { status: 200, type: JSON_TYPE, body: { currency: 'rur', value: 2296380.85 } };

describe.skipIf(!chromiumAvailable())('SE Ranking project "API access and keys": from Settings -> API (the dashboard) of examples/seranking-project', () => {
  let settings: ExampleDashboard;
  let ex: RunningExample;
  let page: Page;

  beforeAll(async () => {
    settings = await startExampleDashboard('seranking-project', { name: 'Acme SEO' });
    ({ ex, page } = settings);
  });

  afterAll(async () => {
    await settings?.close();
  });

  it('"Generate API Key": a 40-hex key, shown once, sent as Authorization: Token KEY or ?token=KEY', async () => {
    const secret = await createKeyInDashboard(page, 'API key');
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
    const member = await signedInPage(settings.fixture, settings.browser, 'bo@small.example', essential.id);
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
