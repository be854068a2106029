/**
 * The operator removes a member of an account, or withdraws an invitation, from the
 * account's page, in real Chromium: a confirmation page first (usable on a phone, no axe
 * violations), then the member is signed out and cannot sign in again, the invitation's
 * link stops working, the account's keys keep working and the audit log names the
 * operator. Another account's member, or the operator, is not found there; a form
 * without its CSRF token is refused.
 */
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createKey } from '../../src/operations/keys.js';
import {
  axeViolationLine,
  horizontalOverflow,
  postFromPage,
  axeViolations,
  chromiumAvailable,
  expectHeading,
  invite,
  join,
  newAccount,
  newContext,
  PASSWORD,
  PHONE,
  shown,
  signedInPage,
  signIn,
  textOf,
  useDashboard,
} from './support.js';

const OPERATOR = 'olga@ops.example';

describe.skipIf(!chromiumAvailable())('dashboard: the operator removes members and withdraws invitations', () => {
  const fixture = useDashboard('keygate-dashboard-member-removal');
  let operator: Page;
  let acmeId: string;
  let globexId: string;

  const memberId = async (email: string) => (await fixture.keygate.runtime.store.findMemberByEmail(email))?.id as string;
  const removalPath = (accountId: string, id: string) => `/accounts/${accountId}/members/${id}/remove`;

  beforeAll(async () => {
    acmeId = await newAccount(fixture, 'Acme Analytics');
    globexId = await newAccount(fixture, 'Globex');
    operator = await signedInPage(fixture, fixture.browser, OPERATOR, null, { role: 'operator' });
  });

  it('removes a member after a confirmation: signed out at the next page, the password no longer signs in, their key keeps working, audited', async () => {
    const email = 'rita@acme.example';
    const member = await (await newContext(fixture.browser, fixture.dashboardUrl)).newPage();
    try {
      await join(member, await invite(fixture, email, acmeId), email);
      await expectHeading(member, 'API keys');
      // A key the member made: the account's, it outlives the member.
      const { secret } = await createKey(fixture.keygate.runtime, { accountId: acmeId, name: 'Rita’s script', scopes: ['*'] }, email);
      const callGateway = () => fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } });
      expect((await callGateway()).status).toBe(200);
      const id = await memberId(email);

      await operator.goto(`/accounts/${acmeId}`);
      await operator.getByRole('link', { name: `Remove ${email}` }).click();
      await expectHeading(operator, `Remove ${email} from Acme Analytics?`);
      expect(new URL(operator.url()).pathname).toBe(removalPath(acmeId, id));
      expect(await textOf(operator.locator('.notice.warning'))).toBe(
        `${email} is signed out at once, everywhere, and can no longer sign in: their password stops working, and so does any password-reset link. This cannot be undone; to let them back in, invite them again.`,
      );
      expect(await textOf(operator.locator('.facts'))).toMatch(new RegExp(`Email\\s+${email.replace('.', '\\.')}\\s+Status\\s+Active\\s+Member since\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC\\s+Keys they created, in use\\s+1`));
      await shown(operator.getByText(`The account’s keys are the account’s, not theirs: they keep working, including the key ${email} created. Revoke any they should no longer have.`));
      await operator.getByRole('button', { name: 'Remove member' }).click();
      expect(await textOf(operator.getByRole('status'))).toBe(`${email} is removed from Acme Analytics: signed out, and can no longer sign in.`);
      await expectHeading(operator, 'Acme Analytics');
      expect(await operator.getByRole('table', { name: 'Members', exact: true }).getByText(email).count()).toBe(0);
      expect(await fixture.keygate.runtime.store.getMember(id)).toBeUndefined();

      // The member's open page: the next page load leads to the sign-in page, and the password no longer signs in.
      await member.reload();
      expect(new URL(member.url()).pathname).toBe('/sign-in');
      expect(await textOf(member.getByRole('status'))).toBe('Your session has ended. Sign in again to continue.');
      await member.getByLabel('Email').fill(email);
      await member.getByLabel('Password').fill(PASSWORD);
      await member.getByRole('button', { name: 'Sign in' }).click();
      await shown(member.getByText('The email or password is incorrect.'));
      // The key the member made is the account's: it keeps working.
      expect((await callGateway()).status).toBe(200);

      // The audit log names the operator, as for the CLI and admin API, and the address the removal came from.
      await operator.goto('/audit');
      expect(await textOf(operator.locator('tbody tr', { hasText: 'Removed a member' }).first())).toMatch(new RegExp(`${OPERATOR.replace('.', '\\.')}\\s+127\\.0\\.0\\.1\\s+Removed a member\\s+Acme Analytics\\s+${email.replace('.', '\\.')} \\(member\\)`));
      const events = await fixture.keygate.runtime.store.listAudit({ accountId: acmeId });
      expect(events.filter((e) => e.action === 'member.removed')).toEqual([expect.objectContaining({ actor: OPERATOR, detail: { email, role: 'member', memberId: id } })]);

      // Its page opened again (Back, or a second operator), or its form sent again: removed already, by whom; nothing else happens.
      const again = await operator.goto(removalPath(acmeId, id));
      expect(again?.status()).toBe(410);
      await expectHeading(operator, `${email} was removed already`);
      expect(await textOf(operator.getByRole('status'))).toMatch(new RegExp(`^${email.replace('.', '\\.')} was removed from Acme Analytics on \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC by ${OPERATOR.replace('.', '\\.')}\\. There is nothing left to remove or withdraw\\.$`));
      await operator.goto(`/accounts/${acmeId}`);
      const resent = await postFromPage(operator, removalPath(acmeId, id), {}, { withToken: true });
      expect(resent.status).toBe(410);
      expect(resent.text).toContain(`${email} was removed already`);
      expect((await fixture.keygate.runtime.store.listAudit({ accountId: acmeId })).filter((e) => e.action === 'member.removed')).toHaveLength(1);
    } finally {
      await member.context().close();
    }
  });

  it('withdraws an invitation after a confirmation: its link no longer works', async () => {
    const email = 'ivan@acme.example';
    const link = await invite(fixture, email, acmeId);
    const visitor = await (await newContext(fixture.browser, fixture.dashboardUrl)).newPage();
    try {
      await visitor.goto(link);
      await expectHeading(visitor, 'Choose your password');

      await operator.goto(`/accounts/${acmeId}`);
      await operator.getByRole('link', { name: `Withdraw the invitation of ${email}` }).click();
      await expectHeading(operator, `Withdraw the invitation of ${email}?`);
      expect(await textOf(operator.locator('.notice.warning'))).toBe(`Its link stops working at once: ${email} can no longer use it to choose a password and join Acme Analytics. To let them join later, invite them again.`);
      expect(await textOf(operator.locator('.facts'))).toMatch(/Status\s+Invited\s+Invitation link\s+works until \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
      await operator.getByRole('button', { name: 'Withdraw invitation' }).click();
      expect(await textOf(operator.getByRole('status'))).toBe(`The invitation of ${email} to Acme Analytics is withdrawn: its link no longer works.`);
      expect(await operator.getByRole('table', { name: 'Members', exact: true }).getByText(email).count()).toBe(0);
      // The audit log says what was done, as the button did (the event is member.removed all the same).
      await operator.goto('/audit');
      expect(await textOf(operator.locator('tbody tr', { hasText: email }).first())).toMatch(new RegExp(`${OPERATOR.replace('.', '\\.')}\\s+127\\.0\\.0\\.1\\s+Withdrew an invitation\\s+Acme Analytics\\s+${email.replace('.', '\\.')} \\(member\\)`));
      expect((await fixture.keygate.runtime.store.listAudit({ accountId: acmeId })).find((e) => e.action === 'member.removed' && e.detail.email === email)?.detail.invitation).toBe(true);

      // The link, opened now, or its form sent from the page opened before, sets no password.
      expect((await visitor.request.get(new URL(link).pathname)).status()).toBe(404);
      await visitor.getByLabel('New password', { exact: true }).fill(PASSWORD);
      await visitor.getByLabel('Confirm new password').fill(PASSWORD);
      await visitor.getByRole('button', { name: 'Set password' }).click();
      await expectHeading(visitor, 'This link does not work');
      expect(await fixture.keygate.runtime.store.findMemberByEmail(email)).toBeUndefined();
    } finally {
      await visitor.context().close();
    }
  });

  it('finds no member of another account, nor an operator, under an account: a 404, and nothing is removed', async () => {
    const ours = 'una@acme.example';
    const theirs = 'gus@globex.example';
    await invite(fixture, ours, acmeId);
    await invite(fixture, theirs, globexId);
    const oursId = await memberId(ours);
    const theirsId = await memberId(theirs);
    const operatorId = await memberId(OPERATOR);

    // Acme's own member is found there…
    expect((await operator.goto(removalPath(acmeId, oursId)))?.status()).toBe(200);
    await expectHeading(operator, `Withdraw the invitation of ${ours}?`);
    // …Globex's is not, to look at or to remove (a token of this session taken from the page that is).
    const token = await operator.locator('input[name="_csrf"]').first().inputValue();
    expect((await operator.goto(removalPath(acmeId, theirsId)))?.status()).toBe(404);
    await expectHeading(operator, 'Page not found');
    const posted = await postFromPage(operator, removalPath(acmeId, theirsId), { _csrf: token }, { withToken: false });
    expect(posted.status).toBe(404);
    expect(await fixture.keygate.runtime.store.getMember(theirsId)).toBeDefined();
    // Under its own account it is found.
    expect((await operator.goto(removalPath(globexId, theirsId)))?.status()).toBe(200);

    // The operator is on no account's page, and cannot remove themselves through one.
    await operator.goto(`/accounts/${acmeId}`);
    expect(await textOf(operator.getByRole('table', { name: 'Members', exact: true }))).not.toContain(OPERATOR);
    expect((await operator.goto(removalPath(acmeId, operatorId)))?.status()).toBe(404);
    expect((await postFromPage(operator, removalPath(acmeId, operatorId), { _csrf: token }, { withToken: false })).status).toBe(404);
    expect(await fixture.keygate.runtime.store.getMember(operatorId)).toBeDefined();
    // An id no member ever had.
    expect((await operator.goto(removalPath(acmeId, 'mem_nobody')))?.status()).toBe(404);
    expect((await fixture.keygate.runtime.store.listAudit()).filter((e) => e.action === 'member.removed' && e.detail.email !== 'rita@acme.example' && e.detail.email !== 'ivan@acme.example')).toEqual([]);
  });

  it('refuses a removal form sent without its CSRF token (403), and removes no one', async () => {
    const email = 'vera@acme.example';
    await invite(fixture, email, acmeId);
    const id = await memberId(email);
    await operator.goto(removalPath(acmeId, id));
    await expectHeading(operator, `Withdraw the invitation of ${email}?`);
    const without = await postFromPage(operator, removalPath(acmeId, id), {}, { withToken: false });
    expect(without.status).toBe(403);
    expect(without.text).toContain('This form could not be accepted');
    expect((await postFromPage(operator, removalPath(acmeId, id), { _csrf: 'not-the-token' }, { withToken: false })).status).toBe(403);
    expect(await fixture.keygate.runtime.store.getMember(id)).toBeDefined();
    // The page's own token carries it out.
    expect((await postFromPage(operator, removalPath(acmeId, id), {}, { withToken: true })).redirected).toBe(true);
    expect(await fixture.keygate.runtime.store.getMember(id)).toBeUndefined();
  });

  it('shows the confirmation on a phone: it fits the width, its controls are large enough to tap, Cancel leads back, and axe finds nothing', async () => {
    const email = 'pia@acme.example';
    const member = await (await newContext(fixture.browser, fixture.dashboardUrl)).newPage();
    const phone = await (await newContext(fixture.browser, fixture.dashboardUrl, PHONE, { bypassCSP: true })).newPage();
    try {
      await join(member, await invite(fixture, email, acmeId), email);
      const invited = 'quin@acme.example';
      await invite(fixture, invited, acmeId);
      await phone.goto('/sign-in');
      await signIn(phone, OPERATOR);
      await phone.goto(`/accounts/${acmeId}`);
      const row = phone.locator('tr', { hasText: email });
      const remove = row.getByRole('link', { name: `Remove ${email}` });
      expect((await remove.boundingBox())?.height).toBeGreaterThanOrEqual(36);
      await remove.tap();
      await expectHeading(phone, `Remove ${email} from Acme Analytics?`);
      expect(await horizontalOverflow(phone)).toBe(0);
      for (const control of [phone.getByRole('button', { name: 'Remove member' }), phone.getByRole('link', { name: 'Cancel' })]) {
        const box = await control.boundingBox();
        expect(box?.height).toBeGreaterThanOrEqual(36);
        expect((box?.x ?? -1) >= 0 && (box?.x ?? 0) + (box?.width ?? 0) <= PHONE.width).toBe(true);
      }
      await phone.waitForLoadState('load');
      const violations = (await axeViolations(phone)).map((v) => axeViolationLine('member removal (phone)', v));
      await phone.getByRole('link', { name: 'Cancel' }).tap();
      await expectHeading(phone, 'Acme Analytics');
      expect(await fixture.keygate.runtime.store.findMemberByEmail(email)).toBeDefined();

      // The invitation's confirmation, and the page once removed already.
      await phone.locator('tr', { hasText: invited }).getByRole('link', { name: `Withdraw the invitation of ${invited}` }).tap();
      await expectHeading(phone, `Withdraw the invitation of ${invited}?`);
      expect(await horizontalOverflow(phone)).toBe(0);
      await phone.waitForLoadState('load');
      violations.push(...(await axeViolations(phone)).map((v) => axeViolationLine('invitation withdrawal (phone)', v)));
      const withdrawal = phone.url();
      await phone.getByRole('button', { name: 'Withdraw invitation' }).tap();
      await expectHeading(phone, 'Acme Analytics');
      await phone.goto(withdrawal);
      await expectHeading(phone, `${invited} was removed already`);
      expect(await horizontalOverflow(phone)).toBe(0);
      violations.push(...(await axeViolations(phone)).map((v) => axeViolationLine('removed already (phone)', v)));
      expect(violations).toEqual([]);
    } finally {
      await member.context().close();
      await phone.context().close();
    }
  });
});
