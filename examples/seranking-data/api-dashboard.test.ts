/**
 * shared/seeds/003, "Creating an API Key", done where the document says: "Navigate to
 * Profile & Preferences → API Dashboard. Click the Create API Key button and then copy the
 * generated key value ... You can issue a single key per account." The API Dashboard is
 * the example's dashboard: the shipped examples/seranking-data profile and upstream, real
 * Chromium, and the key used over real HTTP against the gateway (both methods of
 * "Authentication"), then its balance read where the document says to monitor it.
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, expectHeading, shown, textOf } from '../../test/dashboard/support.js';
import { createKeyInDashboard, startExampleDashboard, type ExampleDashboard } from '../support/dashboard.js';
import { read, type AccountOut, type RunningExample } from '../support/example.js';

interface Subscription {
  subscription_info: { status: string; units_limit: number; units_left: number };
}

/** -H 'Authorization: Token YOUR_API_KEY' */
const token = (key: string, init: RequestInit = {}): RequestInit => ({ ...init, headers: { authorization: `Token ${key}`, ...(init.headers as Record<string, string>) } });

describe.skipIf(!chromiumAvailable())('SE Ranking Data "Creating an API Key": from the API Dashboard (the dashboard) of examples/seranking-data', () => {
  let settings: ExampleDashboard;
  let ex: RunningExample;
  let account: AccountOut;
  let page: Page;
  let secret = '';

  beforeAll(async () => {
    settings = await startExampleDashboard('seranking-data', { name: 'Acme SEO' });
    ({ ex, account, page } = settings);
  });

  afterAll(async () => {
    await settings?.close();
  });

  it('"Click the Create API Key button and then copy the generated key value": a 40-hex key, shown once, that works by both methods', async () => {
    secret = await createKeyInDashboard(page, 'Data API');
    expect(secret).toMatch(/^[0-9a-f]{40}$/);
    await shown(page.getByText('This is the only time this key is shown.'));
    expect(await textOf(page.locator('main p', { hasText: 'Send it with each request' }))).toBe('Send it with each request in the header Authorization: Token <your key>.');

    // Method 1 (the header) and Method 2 (the apikey parameter): "A 200 OK response confirms that your key is working correctly."
    for (const [how, answer] of [
      ['Authorization: Token', await read(await ex.call('/v1/account/subscription', token(secret)))],
      ['?apikey=', await read(await ex.call(`/v1/account/subscription?apikey=${secret}`))],
    ] as const) {
      expect(answer.status, how).toBe(200);
      expect((answer.body as Subscription).subscription_info, how).toMatchObject({ status: 'active', units_limit: 1_000_000, units_left: 1_000_000 });
    }

    // "Treat this key like a password": the list names it by its hint, and no page holds it again.
    await page.goto('/keys');
    expect(await textOf(page.locator('tr', { hasText: 'Data API' }))).toContain(secret.slice(-4));
    expect(await page.content()).not.toContain(secret);
  });

  it('"You can issue a single key per account": no Create API Key once the key exists, the form refuses a second, and the one key still works', async () => {
    await page.goto('/keys');
    await expectHeading(page, 'API keys');
    expect(await page.getByRole('link', { name: 'Create a key' }).count()).toBe(0);
    await shown(page.getByText('1 of 1 key in use on the 1M units plan: revoke a key to create another, or rotate one to replace it.'));

    // The form's address (a bookmark, another tab) offers no form either, and says why.
    await page.goto('/keys/new');
    await expectHeading(page, 'No room for another key');
    await shown(page.getByText('1 of 1 key in use on the 1M units plan: revoke a key to create another, or rotate one to replace it.'));
    expect(await page.getByLabel('Name').count()).toBe(0);
    expect(await page.getByText('Copy your new key').count()).toBe(0);
    expect(await ex.cliJson<{ name: string }[]>(['keys', 'list', '--account', account.id])).toEqual([expect.objectContaining({ name: 'Data API' })]);
    expect((await ex.call('/v1/account/subscription', token(secret))).status).toBe(200);
  });

  it('"Monitoring Your Balance": right after a charged request, the subscription endpoint and the dashboard\'s usage page both show what is left', async () => {
    const summary = await ex.call('/v1/backlinks/summary', token(secret, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"target":"seranking.com","mode":"host"}' }));
    expect(summary.status).toBe(200);
    await summary.arrayBuffer();
    const info = ((await read(await ex.call('/v1/account/subscription', token(secret)))).body as Subscription).subscription_info;
    expect(info).toMatchObject({ units_limit: 1_000_000, units_left: 999_900 });

    await page.goto('/usage');
    await expectHeading(page, 'Usage');
    // The meter's row: used, limit, remaining.
    expect(await textOf(page.locator('main'))).toContain('units\t100\t1,000,000\t999,900');
  });
});
