/**
 * An operator creates a key for an account from the account's page, in real Chromium,
 * against a real gateway and upstream: the member's form (no scope ticked as it opens),
 * the secret shown once, the key admitted by the gateway as that account's (the upstream
 * answers with that account's projects), the audit log naming the operator; a reload of
 * the answer makes no second key; a member's post to the operator's form is a 404 (one
 * without the CSRF token a 403); at the
 * plan's key limit the form is not offered, and a form sent from an older page is refused
 * in the form itself; with the account's API access off, the key is made and its page
 * says it is refused for now, as `keygate keys create` warns.
 */
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createKey } from '../../src/operations/keys.js';
import { changeAccount } from '../../src/operations/accounts.js';
import { chromiumAvailable, expectHeading, newAccount, OPERATOR, postFromPage, screenshot, textOf, useDashboard } from './support.js';

describe.skipIf(!chromiumAvailable())('dashboard: an operator creates a key for an account', () => {
  const fixture = useDashboard('keygate-dashboard-operator-key', { signedIn: ['member', 'operator'] });
  let operator: Page;
  let accountId: string;

  const keysOf = async (id: string) => fixture.keygate.runtime.store.listKeys({ accountId: id });
  const createForm = (page: Page) => page.locator('form', { has: page.getByRole('button', { name: 'Create key' }) });

  beforeAll(() => {
    operator = fixture.operator;
    accountId = fixture.accountId;
  });

  it('creates a key from the account’s page: the secret once, the gateway admits it as the account’s, the audit log names the operator', async () => {
    await operator.goto('/accounts');
    await operator.getByRole('link', { name: 'Acme Analytics' }).click();
    await expectHeading(operator, 'Acme Analytics');
    expect(await operator.getByRole('heading', { name: 'Create a key for Acme Analytics' }).count()).toBe(1);
    // As the member's form: nothing ticked, so a name and Enter alone never make an all-scopes key.
    expect(await createForm(operator).getByRole('checkbox').count()).toBe(3);
    expect(await createForm(operator).locator('input[name="scope"]:checked').count()).toBe(0);
    // The account's page is not the form's own: the keyboard is not taken from the page's top.
    expect(await operator.evaluate(() => document.activeElement?.id ?? '')).not.toBe('name');

    await operator.getByLabel('Name').fill('Made by support');
    await operator.getByRole('checkbox', { name: 'projects:read' }).check();
    await screenshot(operator, 'operator-create-key');
    const [answer] = await Promise.all([operator.waitForResponse((r) => r.request().method() === 'POST'), operator.getByRole('button', { name: 'Create key' }).click()]);
    expect(answer.status()).toBe(201);
    expect(answer.headers()['cache-control']).toBe('no-store');
    await expectHeading(operator, 'Copy your new key');
    const secret = await operator.getByLabel('Key “Made by support”').inputValue();
    expect(secret).toMatch(/^rk_live_[0-9A-Za-z]{30}$/);
    expect(new URL(operator.url()).pathname).toBe(`/accounts/${accountId}/keys`);
    expect(operator.url()).not.toContain(secret);
    expect(await textOf(operator.locator('#secret-warning'))).toMatch(/^This is the only time this key is shown\./);

    // Through the gateway over HTTP: admitted, and the upstream, told the account by X-Keygate-Account, answers with that account's projects.
    const response = await fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } });
    expect(response.status).toBe(200);
    const { data } = (await response.json()) as { data: { id: string }[] };
    expect(data.map((p) => p.id)).toEqual([`prj_${accountId.slice(-6)}_1`, `prj_${accountId.slice(-6)}_2`]);

    // Back on the account's page: the key by its hint, its secret nowhere.
    await operator.getByRole('link', { name: 'I have copied it — back to Acme Analytics' }).click();
    await expectHeading(operator, 'Acme Analytics');
    const row = await textOf(operator.getByRole('table', { name: 'Keys in use of Acme Analytics' }).locator('tr', { hasText: 'Made by support' }));
    expect(row).toContain(`rk_live_…${secret.slice(-4)}`);
    expect(row).toContain('projects:read');
    expect(await operator.content()).not.toContain(secret);

    // Audited as the CLI's and admin API's key creation, under the operator's email.
    const [created] = (await fixture.keygate.runtime.store.listAudit({ accountId, limit: 50 })).filter((e) => e.action === 'key.created' && e.detail.name === 'Made by support');
    expect(created?.actor).toBe(OPERATOR);
    await operator.goto('/audit');
    expect(await textOf(operator.locator('tbody tr', { hasText: 'Made by support' }))).toMatch(/\tolga@ops\.example\t127\.0\.0\.1\tCreated a key\tAcme Analytics\t“Made by support” rk_live_…\w{4}, live, scopes projects:read$/);
  });

  it('a reload of the answer sends the form again: no second key, and the secret is not shown again', async () => {
    await operator.goto(`/accounts/${accountId}`);
    await operator.getByLabel('Name').fill('Reloaded by support');
    await operator.getByRole('checkbox', { name: 'projects:read' }).check();
    await Promise.all([operator.waitForResponse((r) => r.request().method() === 'POST'), operator.getByRole('button', { name: 'Create key' }).click()]);
    await expectHeading(operator, 'Copy your new key');
    const secret = await operator.locator('#secret').inputValue();
    const [again] = await Promise.all([operator.waitForResponse((r) => r.request().method() === 'POST'), operator.reload()]);
    expect(again.status()).toBe(409);
    await expectHeading(operator, 'This form was sent already');
    expect(await textOf(operator.getByRole('status'))).toMatch(/^It created the key “Reloaded by support” \(rk_live_…\w{4}\) on .+\. No other key was created\.$/);
    expect(await operator.content()).not.toContain(secret);
    expect(await operator.getByRole('link', { name: 'Back to Acme Analytics' }).getAttribute('href')).toBe(`/accounts/${accountId}`);
    expect((await keysOf(accountId)).filter((k) => k.name === 'Reloaded by support')).toHaveLength(1);
  });

  it('a member posting to the operator’s form gets a 404, a post without the CSRF token a 403, and no key is made', async () => {
    const { member } = fixture;
    await member.goto('/keys');
    const before = (await keysOf(accountId)).length;
    const sent = await postFromPage(member, `/accounts/${accountId}/keys`, { name: 'By a member', scope: 'projects:read', mode: 'live', form_id: 'a'.repeat(22) }, { withToken: true });
    expect(sent.status).toBe(404);
    await operator.goto(`/accounts/${accountId}`);
    const forged = await postFromPage(operator, `/accounts/${accountId}/keys`, { name: 'Forged', scope: 'projects:read', mode: 'live', form_id: 'b'.repeat(22) }, { withToken: false });
    expect(forged.status).toBe(403);
    expect((await keysOf(accountId)).length).toBe(before);
  });

  it('at the plan’s key limit: no form, what makes room instead; a form from an older page is refused in the form', async () => {
    // Pro allows 3 keys: with 2, the form is offered.
    const initech = await newAccount(fixture, 'Initech');
    for (const name of ['First', 'Second']) await createKey(fixture.keygate.runtime, { accountId: initech, name, scopes: ['projects:read'] }, 'test');
    await operator.goto(`/accounts/${initech}`);
    await operator.getByLabel('Name').fill('One too many');
    await operator.getByRole('checkbox', { name: 'projects:read' }).check();
    // Meanwhile a member (or the CLI) makes the third.
    await createKey(fixture.keygate.runtime, { accountId: initech, name: 'Third', scopes: ['projects:read'] }, 'test');

    const [refused] = await Promise.all([operator.waitForResponse((r) => r.request().method() === 'POST'), operator.getByRole('button', { name: 'Create key' }).click()]);
    expect(refused.status()).toBe(409);
    await expectHeading(operator, 'Initech');
    const form = createForm(operator);
    expect(await textOf(form.getByRole('alert'))).toBe('The Pro plan allows 3 keys per account; revoke one first.');
    // In the form, as sent, the keyboard on its first field.
    expect(await form.getByLabel('Name').inputValue()).toBe('One too many');
    expect(await form.getByRole('checkbox', { name: 'projects:read' }).isChecked()).toBe(true);
    await expect.poll(() => operator.evaluate(() => document.activeElement?.id)).toBe('name');
    expect((await keysOf(initech)).filter((k) => k.name === 'One too many')).toHaveLength(0);

    // The page itself, at the limit, offers no form and says how to make room (operators revoke; they do not rotate).
    await operator.goto(`/accounts/${initech}`);
    expect(await createForm(operator).count()).toBe(0);
    expect(await textOf(operator.locator('#no-room-for-key'))).toBe('3 of 3 keys in use on the Pro plan: revoke a key to create another.');
  });

  it('with the account’s API access off, creates the key as the CLI does and says it is refused until it is back on', async () => {
    const globex = await newAccount(fixture, 'Globex');
    await changeAccount(fixture.keygate.runtime, globex, { apiAccess: false }, 'test');
    await operator.goto(`/accounts/${globex}`);
    expect(await textOf(operator.locator('p', { hasText: 'Its secret is shown to you once' }))).toContain('API access is off for Globex: a key created now is refused until API access is turned back on.');
    // A name and Enter alone: refused in the form as the member's is (every route of this profile needs a scope).
    await operator.getByLabel('Name').fill('Before access');
    const [noScope] = await Promise.all([operator.waitForResponse((r) => r.request().method() === 'POST'), operator.getByLabel('Name').press('Enter')]);
    expect(noScope.status()).toBe(400);
    expect(await textOf(createForm(operator).getByRole('alert'))).toBe('Choose at least one scope: every route of this API needs one.');
    expect(await keysOf(globex)).toHaveLength(0);
    await createForm(operator).getByRole('checkbox', { name: 'projects:read' }).check();
    await Promise.all([operator.waitForResponse((r) => r.request().method() === 'POST'), operator.getByRole('button', { name: 'Create key' }).click()]);
    await expectHeading(operator, 'Copy your new key');
    expect(await textOf(operator.locator('.notice.warning'))).toBe('API access is off for Globex (it was turned off by the operator): requests with this key are refused until API access is turned back on.');
    const secret = await operator.locator('#secret').inputValue();
    const refused = await fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('api_disabled');
  });
});
