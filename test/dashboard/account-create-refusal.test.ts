/**
 * A refused Create an account form (a name of spaces only, one too long for the store) is
 * answered in the form itself, as the invitation and plan forms are: the refusal above the
 * fields, the Name field marked, described by it and focused, the plan chosen still chosen;
 * no account is made.
 */
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, expectHeading, invite, join, newContext, OPERATOR, PAGE_TIMEOUT, textOf, useDashboard } from './support.js';

describe.skipIf(!chromiumAvailable())('dashboard: a refused Create an account form', () => {
  const fixture = useDashboard('keygate-dashboard-account-create-refusal');
  let operator: Page;

  beforeAll(async () => {
    operator = await (await newContext(fixture.browser, fixture.dashboardUrl)).newPage();
    await join(operator, await invite(fixture, OPERATOR, null, 'operator'), OPERATOR);
  });

  it('says why beside the form, with the keyboard on the name and the plan chosen kept', async () => {
    await operator.goto('/accounts');
    const form = operator.locator('form[action="/accounts"]');
    await form.getByLabel('Name').fill('   ');
    await form.getByLabel('Plan').selectOption('free');
    await form.getByRole('button', { name: 'Create account' }).click();
    await expectHeading(operator, 'Accounts');
    await operator.waitForFunction(() => document.activeElement?.id === 'account-name', undefined, { timeout: PAGE_TIMEOUT });

    const alert = form.getByRole('alert');
    expect(await textOf(alert)).toBe('An account needs a name.');
    const name = form.getByLabel('Name');
    expect(await name.getAttribute('aria-invalid')).toBe('true');
    expect(await name.getAttribute('aria-describedby')).toBe(await alert.getAttribute('id'));
    expect(await form.getByLabel('Plan').inputValue()).toBe('free');
    // Not said at the page's top as well.
    expect(await operator.locator('main > .notice').count()).toBe(0);
    expect(await fixture.keygate.runtime.store.listAccounts({ limit: 10 })).toEqual([]);

    // Corrected in place, the same form makes the account.
    await name.fill('Acme Analytics');
    await form.getByRole('button', { name: 'Create account' }).click();
    await expectHeading(operator, 'Acme Analytics');
    expect((await fixture.keygate.runtime.store.listAccounts({ limit: 10 })).map((a) => [a.name, a.planId])).toEqual([['Acme Analytics', 'free']]);
  });

  it('marks and focuses the Plan instead when a hand-edited form sends a plan the profile does not have', async () => {
    await operator.goto('/accounts');
    const form = operator.locator('form[action="/accounts"]');
    await form.getByLabel('Name').fill('Globex');
    await form.getByLabel('Plan').evaluate((select) => {
      (select as HTMLSelectElement).options[0]!.value = 'constructor';
    });
    await form.getByRole('button', { name: 'Create account' }).click();
    await operator.waitForFunction(() => document.activeElement?.id === 'account-plan', undefined, { timeout: PAGE_TIMEOUT });
    expect(await textOf(form.getByRole('alert'))).toBe('No such plan; plans are: pro, free.');
    expect(await form.getByLabel('Plan').getAttribute('aria-invalid')).toBe('true');
    expect(await form.getByLabel('Name').getAttribute('aria-invalid')).toBeNull();
    expect(await form.getByLabel('Name').inputValue()).toBe('Globex');
  });
});
