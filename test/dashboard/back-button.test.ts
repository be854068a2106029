/**
 * Back, then the form's button again, in real Chromium: a create form makes one account
 * or one key. The dashboard's pages are `no-store`, so Back asks for the form again (a
 * new form id), and Chromium would put back what was typed into it: a create form's name
 * is not put back (autocomplete="off"), so the button sends nothing it made already.
 */
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, newAccount, signedInPage, useDashboard } from './support.js';

describe.skipIf(!chromiumAvailable())('dashboard: Back, then the button again', () => {
  const fixture = useDashboard('keygate-dashboard-back');
  let accountId: string;

  beforeAll(async () => {
    accountId = await newAccount(fixture, 'Acme Analytics');
  });

  /** The page's answer to its form's button, sent as a user sends it (a click), with whatever the form holds. */
  async function sendAgain(page: Page, button: string): Promise<void> {
    await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: button }).click()]);
  }

  it('makes no second account', async () => {
    const page = await signedInPage(fixture, fixture.browser, 'olga@ops.example', null, { role: 'operator' });
    await page.goto('/accounts');
    await page.getByLabel('Name').fill('Back Co');
    await Promise.all([page.waitForURL(/\/accounts\/acc_/), page.getByRole('button', { name: 'Create account' }).click()]);
    await page.goBack();
    // The form as new: the name typed for the account it made is not put back.
    expect(await page.getByLabel('Name').inputValue()).toBe('');
    await sendAgain(page, 'Create account');
    const named = (await fixture.keygate.runtime.store.listAccounts({ search: 'Back Co' })).filter((a) => a.name === 'Back Co');
    expect(named).toHaveLength(1);
  });

  it('makes no second key', async () => {
    const page = await signedInPage(fixture, fixture.browser, 'ada@acme.example', accountId);
    await page.goto('/keys/new');
    await page.getByLabel('Name').fill('Back key');
    // Every route of the test profile needs a scope: a key without one is refused.
    await page.getByRole('checkbox', { name: 'projects:read' }).check();
    await Promise.all([page.waitForURL(/\/keys$/), page.getByRole('button', { name: 'Create key' }).click()]);
    await expect(page.getByRole('heading', { level: 1 }).innerText()).resolves.toBe('Copy your new key');
    await page.goBack();
    expect(await page.getByLabel('Name').inputValue()).toBe('');
    await sendAgain(page, 'Create key');
    const named = (await fixture.keygate.runtime.store.listKeys({ accountId })).filter((k) => k.name === 'Back key');
    expect(named).toHaveLength(1);
  });
});
