/**
 * The operator in the dashboard, in real Chromium: every account, an account's keys,
 * members and usage; changing its plan and API access (the gateway follows at once),
 * inviting a member, revoking a key, creating an account, and the audit log naming the
 * operator for each change, a page at a time.
 */
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createKey } from '../../src/operations/keys.js';
import { accountBlockId, keyBlockId } from '../../src/counters/counters.js';
import { updateAccount } from '../../src/operations/accounts.js';
import { acceptInvitation } from '../../src/operations/members.js';
import { ACCOUNTS_PER_PAGE } from '../../src/dashboard/pages/accounts.js';
import { chromiumAvailable, expectHeading, invite, join, newAccount, newContext, PASSWORD, screenshot, shown, signedInPage, textOf, useDashboard } from './support.js';

const OPERATOR = 'olga@ops.example';

describe.skipIf(!chromiumAvailable())('dashboard: the operator manages accounts', () => {
  const fixture = useDashboard('keygate-dashboard-operator');
  let page: Page;
  let acmeId: string;
  let secret: string;
  let keyId: string;
  /** The first of the two accounts named Globex (a test below makes the second). */
  let globexId: string;

  const callGateway = () => fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } });

  beforeAll(async () => {
    acmeId = await newAccount(fixture, 'Acme Analytics');
    globexId = await newAccount(fixture, 'Globex', 'free');
    const issued = await createKey(fixture.keygate.runtime, { accountId: acmeId, name: 'Acme production', scopes: ['*'] }, 'admin-api');
    secret = issued.secret;
    keyId = issued.key.id;
    expect((await callGateway()).status).toBe(200);
    page = await signedInPage(fixture, fixture.browser, OPERATOR, null, { role: 'operator' });
  });

  it('lists every account with its plan, API access, usage of its main meter, blocks and keys', async () => {
    expect(new URL(page.url()).pathname).toBe('/accounts');
    await expectHeading(page, 'Accounts');
    expect(await page.getByRole('navigation', { name: 'Main' }).getByRole('link').allInnerTexts()).toEqual(['Accounts', 'Audit log', 'Address blocks']);
    // Acme's one request so far spent a unit of its 1,000.
    const acme = await textOf(page.locator('tr', { hasText: 'Acme Analytics' }));
    expect(acme).toMatch(/^Acme Analytics\s+Pro\s+On\s+1 \/ 1,000 units\s+No\s+1\s+0\s/);
    const globex = await textOf(page.locator('tr', { hasText: 'Globex' }));
    expect(globex).toMatch(/^Globex\s+Free\s+Off\s+no meters\s+No\s+0\s+0\s/);
    expect(await textOf(page.getByRole('table', { name: 'Plans' }))).toContain('Not included');
    await screenshot(page, 'accounts');

    // An operator without an account of their own has no keys page.
    expect((await page.goto('/keys'))?.status()).toBe(404);
  });

  it('turns API access off after a confirmation, and on in one click; the gateway follows on the next request', async () => {
    await page.goto('/accounts');
    await page.getByRole('link', { name: 'Acme Analytics' }).click();
    await expectHeading(page, 'Acme Analytics');
    expect(await textOf(page.getByRole('table', { name: 'Keys in use of Acme Analytics' }))).toContain('Acme production');

    // The first click only asks, saying what happens; Cancel changes nothing.
    await page.getByRole('link', { name: 'Turn API access off' }).click();
    await expectHeading(page, 'Turn API access off for Acme Analytics?');
    expect(await textOf(page.locator('.notice.warning'))).toBe(
      'Every key of Acme Analytics is refused, with api_disabled, from its next request, in every process, until API access is turned on again. The keys are not revoked: turned on again, they work again (as far as the plan includes API access).',
    );
    expect(await textOf(page.locator('.facts'))).toMatch(/Keys in use\s+1/);
    expect((await callGateway()).status).toBe(200);
    await page.getByRole('link', { name: 'Cancel' }).click();
    await expectHeading(page, 'Acme Analytics');
    expect((await callGateway()).status).toBe(200);

    await page.getByRole('link', { name: 'Turn API access off' }).click();
    await expectHeading(page, 'Turn API access off for Acme Analytics?');
    await page.getByRole('button', { name: 'Turn API access off' }).click();
    expect(await textOf(page.getByRole('status'))).toBe('API access is off for “Acme Analytics”: the account’s key in use, which worked until now, is refused from its next request (api_disabled) until API access is turned back on.');
    const refused = await callGateway();
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('api_disabled');

    // Its address again (Back), once it is off: nothing to confirm.
    await page.goto(`/accounts/${acmeId}/api-access`);
    await expectHeading(page, 'API access is already off for Acme Analytics');
    expect(await page.getByRole('button', { name: 'Turn API access off' }).count()).toBe(0);

    await page.goto(`/accounts/${acmeId}`);
    await page.getByRole('button', { name: 'Turn API access on' }).click();
    expect(await textOf(page.getByRole('status'))).toBe('API access is on for “Acme Analytics” (if its plan includes it).');
    expect((await callGateway()).status).toBe(200);
  });

  it('changes an account’s plan', async () => {
    await page.goto(`/accounts/${acmeId}`);
    await page.getByLabel('Plan', { exact: true }).selectOption('free');
    await page.getByRole('button', { name: 'Change plan' }).click();
    expect(await textOf(page.getByRole('status'))).toBe('“Acme Analytics” is now on the Free plan. It does not include API access: the account’s key in use, which worked until now, is refused from its next request (api_disabled) until the account is on a plan that includes API access.');
    expect(await textOf(page.locator('.facts'))).toMatch(/API access\s+Off\s+— the Free plan does not include API access/);
    expect((await callGateway()).status).toBe(403);

    await page.getByLabel('Plan', { exact: true }).selectOption('pro');
    await page.getByRole('button', { name: 'Change plan' }).click();
    expect(await textOf(page.getByRole('status'))).toBe('“Acme Analytics” is now on the Pro plan.');
    expect((await callGateway()).status).toBe(200);
  });

  it('ends an account’s plan on a day, and renews it', async () => {
    await page.goto(`/accounts/${acmeId}`);
    expect(await page.getByLabel(/^Plan ends/).inputValue()).toBe('');
    await page.getByLabel(/^Plan ends/).fill('2020-01-31');
    await page.getByRole('button', { name: 'Change plan' }).click();
    expect(await textOf(page.getByRole('status'))).toBe('“Acme Analytics” stays on the Pro plan, which now ends 2020-01-31. That day has passed: the account’s key in use, which worked until now, is refused from its next request (plan_expired) until the plan is renewed.');
    const ended = await callGateway();
    expect(ended.status).toBe(403);
    expect(((await ended.json()) as { error: { code: string } }).error.code).toBe('plan_expired');
    expect(await page.getByLabel(/^Plan ends/).inputValue()).toBe('2020-01-31');

    const nextYear = `${new Date().getUTCFullYear() + 1}-06-30`;
    await page.getByLabel(/^Plan ends/).fill(nextYear);
    await page.getByRole('button', { name: 'Change plan' }).click();
    expect(await textOf(page.getByRole('status'))).toBe(`“Acme Analytics” stays on the Pro plan, which now ends ${nextYear}.`);
    expect((await callGateway()).status).toBe(200);

    // Typed key by key as the dashboard writes days, the day is the one sent (a browser's
    // date field, month first, took no such day and did not send the form); shown back the same way.
    const typed = `${new Date().getUTCFullYear() + 1}-06-12`;
    await page.getByLabel(/^Plan ends/).clear();
    await page.getByLabel(/^Plan ends/).pressSequentially(typed);
    await page.getByRole('button', { name: 'Change plan' }).click();
    expect(await textOf(page.getByRole('status'))).toBe(`“Acme Analytics” stays on the Pro plan, which now ends ${typed}.`);
    expect((await fixture.keygate.runtime.store.getAccount(acmeId))?.planExpiresAt).toBe(Date.parse(`${typed}T00:00:00Z`));
    expect(await page.getByLabel(/^Plan ends/).inputValue()).toBe(typed);
    expect(await page.getByLabel(/^Plan ends/).evaluate((field: HTMLInputElement) => field.type)).toBe('text');

    // A day in another order is not sent: the browser says the field wants another format, with its title.
    await page.getByLabel(/^Plan ends/).fill('06/12/2027');
    await page.getByRole('button', { name: 'Change plan' }).click();
    expect(await page.getByLabel(/^Plan ends/).evaluate((field: HTMLInputElement) => [field.validity.patternMismatch, field.title])).toEqual([true, 'A day as YYYY-MM-DD, e.g. 2027-01-31']);
    expect((await fixture.keygate.runtime.store.getAccount(acmeId))?.planExpiresAt).toBe(Date.parse(`${typed}T00:00:00Z`));

    // Not a day, though shaped like one: refused beside the field, which keeps what was typed (and the plan chosen), marked and focused.
    await page.getByLabel('Plan', { exact: true }).selectOption('free');
    await page.getByLabel(/^Plan ends/).fill('2027-02-30');
    await page.getByRole('button', { name: 'Change plan' }).click();
    const planForm = page.locator('form[action$="/plan"]');
    expect(await textOf(planForm.getByRole('alert'))).toBe('Plan ends: “2027-02-30” is not a day. Write it as YYYY-MM-DD, such as 2027-01-31, or leave the field empty for a plan that never ends.');
    expect(await page.getByRole('alert').count()).toBe(1);
    expect(await page.getByLabel(/^Plan ends/).inputValue()).toBe('2027-02-30');
    expect(await page.getByLabel(/^Plan ends/).getAttribute('aria-invalid')).toBe('true');
    expect(await page.getByLabel(/^Plan ends/).evaluate((field) => field === document.activeElement)).toBe(true);
    expect(await page.getByLabel('Plan', { exact: true }).inputValue()).toBe('free');
    expect(await fixture.keygate.runtime.store.getAccount(acmeId)).toMatchObject({ planId: 'pro', planExpiresAt: Date.parse(`${typed}T00:00:00Z`) });
    await page.getByLabel('Plan', { exact: true }).selectOption('pro');

    // Empty: the plan never ends.
    await page.getByLabel(/^Plan ends/).fill('');
    await page.getByRole('button', { name: 'Change plan' }).click();
    expect(await textOf(page.getByRole('status'))).toBe('“Acme Analytics” stays on the Pro plan, which now has no end.');
    expect((await fixture.keygate.runtime.store.getAccount(acmeId))?.planExpiresAt).toBeNull();
  });

  it('invites a member, who can then sign in and see the account’s keys', async () => {
    await page.goto(`/accounts/${acmeId}`);
    await page.getByLabel('Invite a member by email').fill('dan@acme.example');
    await page.getByRole('button', { name: 'Create invitation link' }).click();
    await expectHeading(page, 'Invitation for dan@acme.example');
    const link = await page.getByLabel('Invitation link').inputValue();
    expect(link).toMatch(/\/invite\/[\w-]{32}$/);
    await screenshot(page, 'invitation-link');
    // The same form sent again (a reload of that page) makes no second invitation: the link shown still works.
    await page.goto(`/accounts/${acmeId}`);
    const fields = Object.fromEntries(await page.locator('form[action$="/invite"] input[type="hidden"]').evaluateAll((inputs) => inputs.map((i) => [(i as HTMLInputElement).name, (i as HTMLInputElement).value])));
    const send = (email = 'erin@acme.example') => page.request.post(`/accounts/${acmeId}/invite`, { form: { ...fields, email }, maxRedirects: 0 });
    const first = await send();
    expect(first.status()).toBe(201);
    const erinLink = /value="([^"]*\/invite\/[^"]+)"/.exec(await first.text())?.[1] as string;
    const again = await send();
    expect(again.status()).toBe(409);
    const shownText = async (response: { text(): Promise<string> }) => {
      await page.setContent(await response.text());
      return textOf(page.getByRole('status'));
    };
    expect(await shownText(again)).toMatch(/^It created the invitation for erin@acme\.example on \d{4}-\d\d-\d\d \d\d:\d\d UTC\. No other invitation was made: the link shown then still works\.$/);
    expect((await page.request.get(new URL(erinLink).pathname)).status()).toBe(200);
    // Once an invitation to another account replaced it, the form says that link no longer works, and brings it back no more.
    const secondGlobexId = await newAccount(fixture, 'Globex');
    await invite(fixture, 'erin@acme.example', secondGlobexId);
    const late = await send();
    expect(late.status()).toBe(409);
    expect(await shownText(late)).toContain('but that link no longer works (it was replaced, it expired, or its member was removed)');
    expect((await page.request.get(new URL(erinLink).pathname)).status()).toBe(404);
    // The same form with another address is another invitation.
    const fay = await send('fay@acme.example');
    expect(fay.status()).toBe(201);
    // Once its link is used, the form sent again says so.
    const fayToken = /value="[^"]*\/invite\/([^"]+)"/.exec(await fay.text())?.[1] as string;
    await acceptInvitation(fixture.keygate.runtime, fayToken, PASSWORD);
    const used = await send('fay@acme.example');
    expect(used.status()).toBe(409);
    expect(await shownText(used)).toContain('and its link has been used: fay@acme.example has chosen a password and can sign in.');

    const member = await (await newContext(fixture.browser, fixture.dashboardUrl)).newPage();
    await join(member, fixture.dashboardUrl + new URL(link).pathname, 'dan@acme.example');
    expect(await textOf(member.locator('tr', { hasText: 'Acme production' }))).toContain('Active');
    await member.context().close();

    await page.goto(`/accounts/${acmeId}`);
    expect(await textOf(page.locator('tr', { hasText: 'dan@acme.example' }))).toContain('Active');
  });

  it('shows a key that is blocked for exceeding its rate limit, until when, on the account and in the list of accounts, and lifts the block', async () => {
    // Blocked as the counters block it (three refusals in a row with after: 2).
    const { counters } = fixture.keygate.runtime;
    const now = fixture.clock.now();
    const window = { id: `k:${keyId}:1000:1:test`, name: 'burst', limit: 1, windowMs: 1_000 };
    const policy = { after: 2, within: 60_000, duration: 300_000, factor: 2, max: 3_600_000, forgetAfter: 86_400_000, scope: 'key' as const };
    for (let i = 0; i < 3; i++) await counters.admit({ now, windows: [window], block: { id: keyBlockId(keyId), policy } });
    await page.goto(`/accounts/${acmeId}`);
    const row = page.locator(`tr[data-key-id="${keyId}"]`);
    expect(await textOf(row.locator('.badge.blocked'))).toBe('Blocked, ends in 5 min');
    // The exact end on hover, to the second and rounded up, as the CLI shows it.
    const ends = Date.parse((await row.locator('.badge.blocked time').getAttribute('datetime')) as string);
    const shownEnd = new Date(Math.ceil(ends / 1000) * 1000).toISOString().replace('T', ' ').slice(0, 19);
    expect(await row.locator('.badge.blocked').getAttribute('title')).toBe(`Refused until ${shownEnd} UTC for exceeding the rate limit repeatedly`);
    await screenshot(page, 'account-key-blocked');
    // The list of accounts says so too, for an operator scanning it.
    const blockedCell = page.locator('tr', { hasText: 'Acme Analytics' }).locator('td[data-label="Blocked"]');
    await page.goto('/accounts');
    expect(await textOf(blockedCell)).toBe('Blocked, ends in 5 min');
    await screenshot(page, 'accounts-key-blocked');
    await page.goto(`/accounts/${acmeId}`);
    await row.getByRole('button', { name: 'Unblock Acme production' }).click();
    expect(await textOf(page.getByRole('status'))).toMatch(/^The block of key “Acme production” \(rk_live_…\w{4}\) is lifted; its requests are admitted again\.$/);
    expect(await row.locator('.badge.blocked').count()).toBe(0);
    expect(await row.getByRole('button', { name: /^Unblock/ }).count()).toBe(0);
    expect((await counters.blocksInForce([keyBlockId(keyId)], fixture.clock.now())).size).toBe(0);
    await page.goto('/accounts');
    expect(await textOf(blockedCell)).toBe('No');

    // A block of the whole account stops its key too.
    const accountWindow = { id: `a:${acmeId}:1000:1:test`, name: 'burst', limit: 1, windowMs: 1_000 };
    for (let i = 0; i < 3; i++) await counters.admit({ now, windows: [accountWindow], block: { id: accountBlockId(acmeId), policy: { ...policy, scope: 'account' } } });
    await page.reload();
    expect(await textOf(blockedCell)).toBe('Blocked, ends in 5 min');
    await counters.liftBlocks([accountBlockId(acmeId)], fixture.clock.now());
  });

  it('revokes a key of any account after a confirmation', async () => {
    await page.goto(`/accounts/${acmeId}`);
    await screenshot(page, 'account');
    await page.getByRole('link', { name: 'Revoke Acme production' }).click();
    await expectHeading(page, 'Revoke key “Acme production”?');
    await page.getByRole('button', { name: 'Revoke key' }).click();
    expect(await textOf(page.getByRole('status'))).toMatch(/^Key “Acme production” \(rk_live_…\w{4}\) of Acme Analytics is revoked\.$/);
    expect((await callGateway()).status).toBe(401);
  });

  it('creates an account', async () => {
    await page.goto('/accounts');
    await page.getByLabel('Name').fill('Initech');
    await page.getByRole('button', { name: 'Create account' }).click();
    await expectHeading(page, 'Initech');
    expect(await textOf(page.getByRole('status'))).toBe('Account “Initech” created. Invite its first member below.');
    await shown(page.getByText('No keys in use.'));
  });

  it('shows the audit log, with the operator as the actor of each change', async () => {
    await page.goto('/audit');
    await expectHeading(page, 'Audit log');
    const rows = page.locator('tbody tr', { hasText: OPERATOR });
    const texts = await rows.allInnerTexts();
    const joined = texts.join('\n');
    expect(joined).toContain('Changed the account');
    expect(joined).toMatch(/API access on → off/);
    // The plan by its name, its id beside it; what it was, then what it became.
    expect(joined).toMatch(/plan Pro pro → Free free\b/);
    expect(joined).not.toMatch(/plan → free/);
    expect(joined).toMatch(/Invited a member\s+Acme Analytics\s+dan@acme\.example \(member\)/);
    expect(joined).toMatch(/Revoked a key\s+Acme Analytics\s+“Acme production” rk_live_…\w{4}/);
    expect(joined).toMatch(/Created the account\s+Initech\s+“Initech” on the Pro pro plan/);
    // The member's own actions name the member.
    expect(await textOf(page.locator('tbody tr', { hasText: 'Joined' }).first())).toContain('dan@acme.example');
    // From where: the browser's address for a change made in the dashboard.
    expect(await textOf(rows.filter({ hasText: 'Revoked a key' }).first().locator('td[data-label="From"]'))).toBe('127.0.0.1');
    await screenshot(page, 'audit');

    // Two accounts are named Globex now: each is offered with its id.
    await page.getByLabel('Account').selectOption({ label: `Globex (${globexId})` });
    await page.getByRole('button', { name: 'Show' }).click();
    expect(new URL(page.url()).search).toMatch(/^\?account=acc_/);
    expect(await page.locator('tbody tr').allInnerTexts()).toEqual([expect.stringContaining('Created the account')]);
  });

  it('answers a refused invitation beside the form: the error says why, and the address typed is still there', async () => {
    const otherId = await newAccount(fixture, 'Other Co');
    const token = new URL(await invite(fixture, 'Other@Example.com', otherId)).pathname.split('/').pop() as string;
    await acceptInvitation(fixture.keygate.runtime, token, PASSWORD);
    await page.goto(`/accounts/${acmeId}`);
    const form = page.locator('form[action$="/invite"]');
    // Kept as typed, not as the gateway writes the address (lower case).
    const typed = 'Other@Example.com';
    const email = form.getByLabel('Invite a member by email');
    await email.fill(typed);
    await form.getByRole('button', { name: 'Create invitation link' }).click();
    await expectHeading(page, 'Acme Analytics');
    // The page's one alert is in the form, and the field points at it.
    expect(await page.getByRole('alert').count()).toBe(1);
    expect(await textOf(form.getByRole('alert'))).toBe('other@example.com is already a member of “Other Co”.');
    expect(await email.inputValue()).toBe(typed);
    expect(await email.getAttribute('aria-invalid')).toBe('true');
    expect(await email.evaluate((input) => (input.getAttribute('aria-describedby') ?? '').split(' ').map((id) => document.getElementById(id)?.getAttribute('role')))).toContain('alert');
    // The keyboard is on the field, and the form in view, not two key tables further down.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('invite-email');
    expect(await email.evaluate((input) => { const box = input.getBoundingClientRect(); return box.top >= 0 && box.bottom <= window.innerHeight; })).toBe(true);

    // Not an address (sent from a hand-edited form; the browser's email field stops it first): it comes back as typed, escaped.
    const odd = 'ada"><b>bold</b>@acme';
    await email.evaluate((input, value) => Object.assign(input as HTMLInputElement, { type: 'text', value }), odd);
    await form.getByRole('button', { name: 'Create invitation link' }).click();
    await expectHeading(page, 'Acme Analytics');
    expect(await textOf(form.getByRole('alert'))).toBe('The email is not an address such as name@example.com (no spaces; none of " ( ) , : ; < > [ \\ ]; a dot in the domain).');
    expect(await email.inputValue()).toBe(odd);
    expect(await page.locator('b', { hasText: 'bold' }).count()).toBe(0);
  });

  it('removes a member through the admin API: signed out at once, and the password no longer signs in', async () => {
    const email = 'rita@acme.example';
    const memberPage = await (await newContext(fixture.browser, fixture.dashboardUrl)).newPage();
    try {
      await join(memberPage, await invite(fixture, email, acmeId), email);
      await expectHeading(memberPage, 'API keys');
      const listed = (await (await fixture.keygate.admin(`/v1/members?accountId=${acmeId}`)).json()) as { id: string; email: string }[];
      const id = listed.find((m) => m.email === email)?.id;
      expect((await fixture.keygate.admin(`/v1/members/${id}`, { method: 'DELETE' })).status).toBe(204);
      expect((await fixture.keygate.admin(`/v1/members/${id}`, { method: 'DELETE' })).status).toBe(404);

      await memberPage.reload();
      expect(new URL(memberPage.url()).pathname).toBe('/sign-in');
      await memberPage.getByLabel('Email').fill(email);
      await memberPage.getByLabel('Password').fill(PASSWORD);
      await memberPage.getByRole('button', { name: 'Sign in' }).click();
      await shown(memberPage.getByText('The email or password is incorrect.'));

      await page.goto('/audit');
      expect(await textOf(page.locator('tbody tr', { hasText: 'Removed a member' }).first())).toContain(`${email} (member)`);
    } finally {
      await memberPage.context().close();
    }
  });

  it('lists accounts a page at a time, with their own keys and members counted, and finds them by name or id', async () => {
    const before = (await fixture.keygate.runtime.store.listAccounts()).length;
    // Enough for a second page; the last one created has a key in use.
    let lastId = '';
    for (let i = before; i < ACCOUNTS_PER_PAGE + 3; i++) lastId = await newAccount(fixture, `Bulk ${String(i).padStart(3, '0')}`, 'free');
    await createKey(fixture.keygate.runtime, { accountId: lastId, name: 'bulk key' }, 'test');
    const total = ACCOUNTS_PER_PAGE + 3;

    await page.goto('/accounts');
    const rows = page.getByRole('table', { name: 'Accounts' }).locator('tbody tr');
    // A name two accounts share (Globex) is followed by the account's id: the name alone is compared.
    const names = async () => (await rows.allInnerTexts()).map((row) => row.split('\t')[0]?.trim().replace(/ acc_\w+$/, ''));
    expect(await rows.count()).toBe(ACCOUNTS_PER_PAGE);
    expect(await textOf(rows.first())).toContain('Acme Analytics');
    expect(await page.getByRole('link', { name: 'First page' }).count()).toBe(0);
    const firstPage = await names();

    await page.getByRole('link', { name: `Next ${ACCOUNTS_PER_PAGE} accounts` }).click();
    expect(await rows.count()).toBe(total - ACCOUNTS_PER_PAGE);
    // Every account once, over the two pages (accounts made in the same millisecond are ordered by id).
    const every = (await fixture.keygate.runtime.store.listAccounts()).map((a) => a.name);
    expect([...firstPage, ...(await names())].sort()).toEqual(every.sort());
    expect(await page.getByRole('link', { name: /^Next/ }).count()).toBe(0);
    await page.getByRole('link', { name: 'First page' }).click();
    expect(await textOf(rows.first())).toContain('Acme Analytics');

    // Found by a part of the name, either case, or by id; keys and members counted as on any page.
    const search = page.getByRole('search', { name: 'Accounts' });
    await search.getByLabel('Search accounts').fill('bULK 10');
    await search.getByRole('button', { name: 'Search' }).click();
    expect(new URL(page.url()).search).toBe('?q=bULK+10');
    expect((await names()).sort()).toEqual(['Bulk 100', 'Bulk 101', 'Bulk 102']);
    expect(await textOf(page.locator('tr', { hasText: `Bulk ${String(total - 1).padStart(3, '0')}` }))).toMatch(/Free\s+Off\s+no meters\s+No\s+1\s+0/);
    await page.goto(`/accounts?q=${acmeId}`);
    expect(await rows.allInnerTexts()).toEqual([expect.stringContaining('Acme Analytics')]);
    await page.goto('/accounts?q=%3Cb%3Enobody');
    await shown(page.getByText('No account has “<b>nobody” in its name or as its id.'));

    // A cursor keygate did not give is the operator's mistake, said in words.
    expect((await page.goto('/accounts?after=not-a-cursor'))?.status()).toBe(400);
    await shown(page.getByText('After: not a cursor keygate gave (take the one the previous page ended with).'));
  });

  it('pages the audit log, newest first, and takes an account id once there are too many accounts to list', async () => {
    // More than a page of events: the bulk accounts above were created, and each is moved to another plan.
    const bulk = await fixture.keygate.runtime.store.listAccounts({ search: 'Bulk' });
    for (const account of bulk) await updateAccount(fixture.keygate.runtime, account.id, { planId: 'pro' }, 'test');
    const total = (await fixture.keygate.runtime.store.listAudit({ limit: 100_000 })).length;
    expect(total).toBeGreaterThan(200);

    await page.goto('/audit');
    const rows = page.getByRole('table', { name: 'Audit log' }).locator('tbody tr');
    expect(await rows.count()).toBe(200);
    expect(await textOf(rows.first())).toMatch(/Changed the account\s+Bulk \d+\s+plan .+ → Pro pro\b/);
    expect(await page.getByRole('link', { name: 'Newest events' }).count()).toBe(0);
    const newest = await rows.allInnerTexts();
    await page.getByRole('link', { name: 'Older events' }).click();
    expect(await rows.count()).toBe(total - 200);
    // The oldest event of all comes last, and none is on both pages.
    expect(await textOf(rows.last())).toMatch(/Created the account\s+Acme Analytics/);
    expect((await rows.allInnerTexts()).filter((row) => newest.includes(row))).toEqual([]);
    expect(await page.getByRole('link', { name: 'Older events' }).count()).toBe(0);
    await page.getByRole('link', { name: 'Newest events' }).click();
    expect(await rows.count()).toBe(200);

    // Too many accounts for a list to choose from: the filter takes an account's id.
    await page.getByLabel('Account id').fill(acmeId);
    await page.getByRole('button', { name: 'Show' }).click();
    expect(new URL(page.url()).search).toBe(`?account=${acmeId}`);
    const accounts = await page.getByRole('table', { name: 'Audit log of Acme Analytics' }).locator('td[data-label="Account"]').allInnerTexts();
    expect(accounts.length).toBeGreaterThan(0);
    expect(new Set(accounts)).toEqual(new Set(['Acme Analytics']));
    await page.goto('/audit?account=acc_nobody');
    await shown(page.getByText('No account has the id “acc_nobody”: these are every account’s events.'));
  });
});
