/**
 * The operator's invitation form takes an address by the rule the admin API and the CLI
 * use (members/email.ts): `<b>@x.com` or `a b@c` is refused beside the form, naming the
 * field without repeating the value, and no one is invited. A member saved before under the
 * looser rule still signs in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/members/password.js';
import { tempDir } from '../support/temp.js';
import { newAccount, PASSWORD, startDashboard, type DashboardFixture } from './support.js';
import { signedInOperator, Visitor } from './visitor.js';

const REFUSAL = 'The email is not an address such as name@example.com (no spaces; none of " ( ) , : ; < > [ \\ ]; a dot in the domain).';

describe('dashboard: the address an invitation is for', () => {
  const dir = tempDir('keygate-dashboard-invite-email');
  let fixture: DashboardFixture;
  let operator: Visitor;
  let accountId: string;

  beforeAll(async () => {
    fixture = await startDashboard(dir);
    accountId = await newAccount(fixture, 'Acme Analytics');
    operator = await signedInOperator(fixture, `/accounts/${accountId}`);
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('refuses what is not local@domain beside the form, shown as typed and escaped, inviting no one', async () => {
    for (const odd of ['<b>@x.com', 'a b@c', 'ana@acme']) {
      const page = await operator.post(`/accounts/${accountId}/invite`, { email: odd });
      expect({ status: page.status, alert: page.alert }, odd).toEqual({ status: 400, alert: REFUSAL });
      // The field holds it as typed, escaped: no element is made of it.
      expect(page.html).toContain(`id="invite-email" name="email" type="email" required value="${odd.replace('<', '&lt;').replace('>', '&gt;')}"`);
      expect(page.html).not.toContain('<b>@');
    }
    expect(await fixture.keygate.runtime.store.listMembers({ accountId })).toEqual([]);
  });

  it('lets a member saved before under the looser rule sign in', async () => {
    const email = '<i>@x.com';
    await fixture.keygate.runtime.store.createMember({ id: 'mem_legacy0000000001', accountId, email, passwordHash: await hashPassword(PASSWORD), role: 'member', inviteHash: null, inviteExpiresAt: null, failedLogins: 0, lockedUntil: null, createdAt: Date.now() });
    const member = await Visitor.signedIn(fixture.dashboardUrl, email, '/keys');
    expect((await member.get('/keys')).heading).toBe('API keys');
  });
});
