/**
 * An account whose plan the profile no longer defines (taken out of keygate.yaml; its keys
 * are refused as api_disabled): the operator's account page shows it on that plan, with no
 * other plan looking chosen (a Change plan sent unnoticed would have moved it to the
 * first), and its usage says the plan is no longer offered, not that it has no quotas;
 * its create-key form says a key made now is refused until the account is moved, and so
 * does its member's API keys page.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';
import { newAccount, startDashboard, type DashboardFixture } from './support.js';
import { addMember, signedInOperator, Visitor } from './visitor.js';

describe('dashboard: an account on a plan the profile no longer has', () => {
  const dir = tempDir('keygate-dashboard-removed-plan');
  let fixture: DashboardFixture;
  let operator: Visitor;
  let accountId: string;

  beforeAll(async () => {
    fixture = await startDashboard(dir);
    const rt = fixture.keygate.runtime;
    accountId = await newAccount(fixture, 'Oldplan Ltd');
    // As a profile from before left it: the store holds the plan's id, the profile no plan by it.
    await rt.store.updateAccount(accountId, { planId: 'legacy' });
    operator = await signedInOperator(fixture, '/accounts');
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('shows the account on that plan, offers the profile’s plans, and chooses none of them', async () => {
    const page = await operator.get(`/accounts/${accountId}`);
    expect(page.status).toBe(200);
    const select = /<select id="plan" name="plan" required>(.*?)<\/select>/s.exec(page.html)?.[1] ?? '';
    const options = [...select.matchAll(/<option value="([^"]*)"([^>]*)>([^<]*)<\/option>/g)].map(([, value, attributes, text]) => ({ value, chosen: / selected/.test(attributes ?? ''), text }));
    expect(options[0]).toEqual({ value: '', chosen: true, text: 'legacy (not in this profile: choose a plan)' });
    expect(options.slice(1).map((o) => o.value)).toEqual(Object.keys(fixture.keygate.runtime.config.plans));
    expect(options.filter((o) => o.chosen)).toHaveLength(1);
    expect(page.html).toContain('The account’s plan, legacy, is no longer offered: its keys are refused until the account is moved to another plan.');
    expect(page.html).not.toContain('plan has no metered quotas');
    // Not "until API access is turned back on": the switch is on; the plan is what is missing.
    expect(page.html).toContain('API access is off for Oldplan Ltd: a key created now is refused until the account is moved to another plan.');
    const formId = /action="\/accounts\/[^"]+\/keys"[\s\S]*?name="form_id" value="([0-9A-Za-z]{22})"/.exec(page.html)?.[1] as string;
    const made = await operator.post(`/accounts/${accountId}/keys`, [['name', 'On the old plan'], ['scope', 'projects:read'], ['form_id', formId]]);
    // Made, as `keygate keys create` makes it (with a warning), and said to be refused until then.
    expect([made.status, made.heading]).toEqual([201, 'Copy your new key']);
    expect(made.html).toContain('API access is off for Oldplan Ltd (the plan is not available): requests with this key are refused until the account is moved to another plan.');
  });

  it('tells its member on the API keys page that requests are refused until the account is moved to another plan, not until a switch is turned back on', async () => {
    await addMember(fixture.keygate.runtime, 'mo@oldplan.example', accountId, 'member');
    const member = await Visitor.signedIn(fixture.dashboardUrl, 'mo@oldplan.example', '/keys');
    const page = await member.get('/keys');
    expect(page.status).toBe(200);
    expect(page.html).toContain('API access is off for this account (the plan is not available). You can manage keys, but requests are refused until the account is moved to another plan.');
  });
});
