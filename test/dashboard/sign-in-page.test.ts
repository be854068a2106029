/**
 * The sign-in page is where an account's members and the gateway's operators both sign in
 * (an operator invited as members are, once their first session, from the invitation, has
 * ended): what it says addresses both, not only the API's customers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';
import { invite, PASSWORD, startDashboard, type DashboardFixture } from './support.js';
import { Visitor } from './visitor.js';

describe('dashboard: the sign-in page', () => {
  const dir = tempDir('keygate-dashboard-sign-in-page');
  let fixture: DashboardFixture;

  beforeAll(async () => {
    fixture = await startDashboard(dir);
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('speaks to an operator who joined from an invitation as well as to members', async () => {
    const invited = new Visitor(fixture.dashboardUrl);
    const link = new URL(await invite(fixture, 'olga@ops.example', null, 'operator')).pathname;
    expect((await invited.get(link)).heading).toBe('Choose your password');
    // Choosing the password signs in; the sign-in page is for the next time.
    expect((await invited.post(link, { password: PASSWORD, confirm: PASSWORD })).location).toBe('/');
    expect((await invited.get('/')).location).toBe('/accounts');
    const page = await new Visitor(fixture.dashboardUrl).get('/sign-in?email=olga%40ops.example');
    expect(page.heading).toBe('Sign in');
    const lead = /<h1>Sign in<\/h1>\s*(?:<div class="notice[^]*?<\/div>\s*)?<p class="muted">([^<]*)<\/p>/.exec(page.html)?.[1];
    expect(lead).toBe('Manage your Ranksy API keys and see your usage, or, as an operator, every account.');
  });
});
