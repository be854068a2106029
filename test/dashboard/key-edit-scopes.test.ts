/**
 * A key's Edit page where its plan's scopes are not the plain case, in real Chromium
 * against the real gateway. A scope the key has that its plan no longer offers (the
 * operator moved the account to a smaller plan) is shown ticked and marked, with a note
 * saying what keeping it does; the member can keep it while changing the key's other
 * scopes (not refused for it), or untick it. Where the plan offers no scope the button and
 * the page say Rename (on the keys page and the account's page alike). `*` ticked beside
 * another scope is refused in the create form's words. axe audits each changed page.
 */
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { updateAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';
import type { KeyRecord } from '../../src/store/store.js';
import { axeViolationLine, axeViolations, chromiumAvailable, expectHeading, MEMBER, newAccount, OPERATOR, screenshot, signedInPage, textOf, useDashboard } from './support.js';

/** The create form's refusal of `*` beside other scopes (key-views.ts WILDCARD_ALONE), as a member reads it. */
const WILDCARD_REFUSAL = 'Choose either * (all scopes) or the scopes the key needs, not both: * already grants every scope.';

describe.skipIf(!chromiumAvailable())('dashboard: a key’s Edit page with scopes its plan no longer offers, with none to offer, and with * beside another', () => {
  // Pro offers both scopes, Basic one, Names none; All (no list of its own) offers * and the profile's scopes.
  const fixture = useDashboard('keygate-dashboard-key-edit-scopes', (profile) => ({
    ...profile,
    plans: {
      pro: { name: 'Pro', scopes: ['projects:read', 'rankings:read'], meters: { units: { limit: 1000, unit: 'units' } } },
      basic: { name: 'Basic', scopes: ['projects:read'], meters: { units: { limit: 1000, unit: 'units' } } },
      names: { name: 'Names', scopes: [], meters: { units: { limit: 1000, unit: 'units' } } },
      all: { name: 'All', meters: { units: { limit: 1000, unit: 'units' } } },
    },
  }));
  let operator: Page;

  beforeAll(async () => {
    operator = await signedInPage(fixture, fixture.browser, OPERATOR, null, { role: 'operator', bypassCSP: true });
  });

  const call = async (secret: string, path: string) => (await fixture.keygate.call(path, { headers: { authorization: `Bearer ${secret}` } })).status;
  const stored = async (key: KeyRecord) => (await fixture.keygate.runtime.store.getKey(key.id)) as KeyRecord;
  const axe = async (page: Page) => (await axeViolations(page)).map((v) => axeViolationLine(page.url(), v));

  /** The operator puts the account on `plan` from its page, as they would. */
  async function changePlan(accountId: string, accountName: string, plan: string, planName: string): Promise<void> {
    await operator.goto(`/accounts/${accountId}`);
    await operator.locator('#plan').selectOption(plan);
    await operator.getByRole('button', { name: 'Change plan' }).click();
    await expectHeading(operator, accountName);
    expect(await textOf(operator.getByRole('status'))).toBe(`“${accountName}” is now on the ${planName} plan.`);
  }

  it('shows a scope the plan dropped as ticked and no longer offered; the member adds another scope keeping it, then unticks it', async () => {
    const accountId = await newAccount(fixture, 'Acme Analytics', 'pro');
    const member = await signedInPage(fixture, fixture.browser, MEMBER, accountId, { bypassCSP: true });
    const { key, secret } = await createKey(fixture.keygate.runtime, { accountId, name: 'Reports', scopes: ['rankings:read'] }, 'test');
    expect(await call(secret, '/v1/rankings')).toBe(200);
    await changePlan(accountId, 'Acme Analytics', 'basic', 'Basic');
    // The gateway already refuses what the plan no longer offers, whatever the key holds.
    expect(await call(secret, '/v1/rankings')).toBe(403);
    expect(await call(secret, '/v1/projects')).toBe(403);

    await member.goto('/keys');
    await member.getByRole('link', { name: `Edit Reports (${key.hint})` }).click();
    await expectHeading(member, 'Edit key “Reports”');
    const dropped = member.getByRole('checkbox', { name: 'rankings:read' });
    expect(await member.getByRole('checkbox').count()).toBe(2);
    // Its label (what a screen reader reads) says so too.
    expect(await member.getByRole('checkbox', { name: 'rankings:read no longer offered', exact: true }).isChecked()).toBe(true);
    expect(await textOf(member.locator('#scopes-dropped'))).toBe(
      'The Basic plan no longer offers rankings:read. The key keeps it while ticked, but is refused whatever the plan does not offer; untick it to take it off the key.',
    );
    expect(await dropped.getAttribute('aria-describedby')).toBe('scopes-dropped');
    // The docs' picture of the Edit page (docs/dashboard.md): a scope to tick, and one marked as no longer offered.
    await screenshot(member, 'key-edit');
    expect(await axe(member)).toEqual([]);

    // Another scope ticked, the dropped one kept: saved, not refused for it.
    await member.getByRole('checkbox', { name: 'projects:read' }).check();
    await member.getByRole('button', { name: 'Save changes' }).click();
    await expectHeading(member, 'API keys');
    expect(await textOf(member.getByRole('status'))).toBe(`Key “Reports” (${key.hint}) has the scopes projects:read and rankings:read, from its next request.`);
    expect((await stored(key)).scopes).toEqual(['projects:read', 'rankings:read']);
    expect(await call(secret, '/v1/projects')).toBe(200);
    expect(await call(secret, '/v1/rankings')).toBe(403);
    // Kept, it works again once the plan offers it again.
    await changePlan(accountId, 'Acme Analytics', 'pro', 'Pro');
    expect(await call(secret, '/v1/rankings')).toBe(200);
    await changePlan(accountId, 'Acme Analytics', 'basic', 'Basic');

    // Unticked, it goes, and the page no longer marks anything.
    await member.goto(`/keys/${key.id}/edit`);
    await member.getByRole('checkbox', { name: 'rankings:read' }).uncheck();
    await member.getByRole('button', { name: 'Save changes' }).click();
    await expectHeading(member, 'API keys');
    expect(await textOf(member.getByRole('status'))).toBe(`Key “Reports” (${key.hint}) has the scopes projects:read, from its next request.`);
    expect((await stored(key)).scopes).toEqual(['projects:read']);
    await member.goto(`/keys/${key.id}/edit`);
    expect([await member.getByRole('checkbox').count(), await member.locator('#scopes-dropped').count()]).toEqual([1, 0]);
    // A scope the key does not have is still refused, naming what the plan offers.
    await member.locator('input[name="scope"]').evaluate((input: HTMLInputElement) => (input.value = 'rankings:read'));
    await member.getByRole('button', { name: 'Save changes' }).click();
    await expectHeading(member, 'Edit key “Reports”');
    expect(await textOf(member.getByRole('alert'))).toBe('Scope rankings:read not allowed; allowed: projects:read.');
    expect((await stored(key)).scopes).toEqual(['projects:read']);
    await member.context().close();
  });

  it('says Rename, on the keys page, the account’s page and the page itself, where the plan offers no scope to choose', async () => {
    const accountId = await newAccount(fixture, 'Plain Co', 'names');
    const member = await signedInPage(fixture, fixture.browser, 'nora@plain.example', accountId, { bypassCSP: true });
    const { key: plain } = await createKey(fixture.keygate.runtime, { accountId, name: 'Plain', scopes: [] }, 'test');

    await member.goto('/keys');
    const rename = member.getByRole('link', { name: `Rename Plain (${plain.hint})` });
    expect(await textOf(rename)).toBe('Rename');
    await rename.click();
    await expectHeading(member, 'Rename key “Plain”');
    expect([await member.title(), await member.getByRole('checkbox').count()]).toEqual([expect.stringMatching(/^Rename Plain/), 0]);
    expect(await axe(member)).toEqual([]);
    // Its button too: there is nothing but the name to save.
    expect([await member.getByRole('button', { name: 'Save changes' }).count(), await textOf(member.locator('form.stack button[type="submit"]'))]).toEqual([0, 'Rename']);
    await member.getByLabel('Name').fill('Plain (batch)');
    await member.getByRole('button', { name: 'Rename', exact: true }).click();
    await expectHeading(member, 'API keys');
    expect(await textOf(member.getByRole('status'))).toBe(`Key “Plain” (${plain.hint}) is renamed “Plain (batch)”.`);

    await operator.goto(`/accounts/${accountId}`);
    expect(await textOf(operator.getByRole('link', { name: `Rename Plain (batch) (${plain.hint})` }))).toBe('Rename');
    await member.context().close();
  });

  it('says Edit for a key holding a scope on a plan that now offers none: the scope is there to untick', async () => {
    const accountId = await newAccount(fixture, 'Moved Co', 'pro');
    const member = await signedInPage(fixture, fixture.browser, 'mo@moved.example', accountId, { bypassCSP: true });
    const { key } = await createKey(fixture.keygate.runtime, { accountId, name: 'Legacy', scopes: ['projects:read'] }, 'test');
    await updateAccount(fixture.keygate.runtime, accountId, { planId: 'names' }, 'test');

    await member.goto('/keys');
    await member.getByRole('link', { name: `Edit Legacy (${key.hint})` }).click();
    await expectHeading(member, 'Edit key “Legacy”');
    expect(await member.getByRole('checkbox', { name: 'projects:read' }).isChecked()).toBe(true);
    expect(await textOf(member.locator('#scopes-dropped'))).toBe(
      'The Names plan no longer offers projects:read. The key keeps it while ticked, but is refused whatever the plan does not offer; untick it to take it off the key.',
    );
    await member.getByRole('checkbox', { name: 'projects:read' }).uncheck();
    await member.getByRole('button', { name: 'Save changes' }).click();
    await expectHeading(member, 'API keys');
    expect((await stored(key)).scopes).toEqual([]);
    // Nothing left to choose: Rename from now on.
    expect(await textOf(member.getByRole('link', { name: `Rename Legacy (${key.hint})` }))).toBe('Rename');
    await member.context().close();
  });

  it('refuses * ticked beside another scope (400), in the create form’s words, and changes nothing', async () => {
    const accountId = await newAccount(fixture, 'Wild Co', 'all');
    const member = await signedInPage(fixture, fixture.browser, 'wanda@wild.example', accountId, { bypassCSP: true });
    const { key } = await createKey(fixture.keygate.runtime, { accountId, name: 'Everything', scopes: ['*'] }, 'test');
    const sent = async (button: string) =>
      (await Promise.all([member.waitForResponse((r) => r.request().method() === 'POST'), member.getByRole('button', { name: button }).click()]))[0].status();

    await member.goto(`/keys/${key.id}/edit`);
    expect(await member.getByRole('checkbox', { name: '* (all scopes)' }).isChecked()).toBe(true);
    await member.getByRole('checkbox', { name: 'projects:read' }).check();
    expect(await sent('Save changes')).toBe(400);
    await expectHeading(member, 'Edit key “Everything”');
    expect(await textOf(member.getByRole('alert'))).toBe(WILDCARD_REFUSAL);
    // Shown as sent, both still ticked, to untick one.
    expect([await member.getByRole('checkbox', { name: '* (all scopes)' }).isChecked(), await member.getByRole('checkbox', { name: 'projects:read' }).isChecked()]).toEqual([true, true]);
    expect(await axe(member)).toEqual([]);
    expect((await stored(key)).scopes).toEqual(['*']);

    // The create form says the same.
    await member.goto('/keys/new');
    await member.getByLabel('Name').fill('Both');
    await member.getByRole('checkbox', { name: '* (all scopes)' }).check();
    await member.getByRole('checkbox', { name: 'projects:read' }).check();
    expect(await sent('Create key')).toBe(400);
    expect(await textOf(member.getByRole('alert'))).toBe(WILDCARD_REFUSAL);
    await member.context().close();
  });
});
