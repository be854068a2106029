/**
 * Choosing a password from an invitation link, or from a password reset link, signs the
 * member in there and then, over plain HTTP: a session cookie as the sign-in form sets
 * it, the keys page next, and the audit log holding what it held before (`member.joined`,
 * `member.password_changed`), with no sign-in form to type the password into again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inviteMember, passwordResetLink } from '../../src/operations/members.js';
import { tempDir } from '../support/temp.js';
import { newAccount, PASSWORD, startDashboard, type DashboardFixture } from './support.js';
import { addMember, Visitor } from './visitor.js';

const SESSION_COOKIE = 'kg_session';
const NEW_PASSWORD = 'a brand new passphrase';

/** The session cookie an answer set, without its value: the attributes a browser keeps it by. */
function sessionAttributes(setCookies: readonly string[]): string | undefined {
  const cookie = setCookies.find((line) => line.startsWith(`${SESSION_COOKIE}=`) && !/max-age=0\b/i.test(line));
  return cookie?.replace(/^[^;]*/, '').replace(/; Expires=[^;]*/i, '');
}

/** The success notice a page shows. */
function noticeOf(html: string): string | undefined {
  return /<div class="notice success" role="status"><p>([\s\S]*?)<\/p>/.exec(html)?.[1];
}

describe('dashboard: a password chosen from a link signs in', () => {
  const dir = tempDir('keygate-dashboard-invite-sign-in');
  let fixture: DashboardFixture;
  let accountId: string;

  beforeAll(async () => {
    fixture = await startDashboard(dir);
    accountId = await newAccount(fixture, 'Acme Analytics');
  });

  afterAll(async () => {
    await fixture?.close();
  });

  const actions = async () => (await fixture.keygate.runtime.store.listAudit({ accountId })).map((entry) => entry.action);

  it('from an invitation: on to the keys page, signed in, with the cookie the sign-in form sets', async () => {
    const { token } = await inviteMember(fixture.keygate.runtime, { email: 'ada@acme.example', accountId }, 'test');
    const audited = await actions();
    const visitor = new Visitor(fixture.dashboardUrl);
    await visitor.get(`/invite/${token}`);
    const set = await visitor.post(`/invite/${token}`, { password: PASSWORD, confirm: PASSWORD });
    expect([set.status, set.location]).toEqual([303, '/']);
    expect((await visitor.get('/')).location).toBe('/keys');
    const keys = await visitor.get('/keys');
    expect([keys.status, keys.heading, noticeOf(keys.html)]).toEqual([200, 'API keys', 'Your password is set. You are signed in as ada@acme.example.']);

    // The same cookie as a sign-in's (HttpOnly, SameSite=Lax, its path and lifetime).
    const signedIn = new Visitor(fixture.dashboardUrl);
    await signedIn.get('/sign-in');
    const signIn = await signedIn.post('/sign-in', { email: 'ada@acme.example', password: PASSWORD });
    expect(sessionAttributes(set.setCookies)).toBe(sessionAttributes(signIn.setCookies));
    expect(sessionAttributes(set.setCookies)).toMatch(/HttpOnly/);
    // What was audited before (a sign-in is not): the member joined, once.
    expect((await actions()).slice(0, -audited.length || undefined)).toEqual(['member.joined']);
    // From the address the link was used from.
    const [joined] = await fixture.keygate.runtime.store.listAudit({ accountId, limit: 1 });
    expect(joined).toMatchObject({ actor: 'ada@acme.example', actorAddress: '127.0.0.1', action: 'member.joined' });
  });

  it('from a reset link: signed in as its member, whoever this browser was signed in as, and every older session of theirs signed out', async () => {
    const rt = fixture.keygate.runtime;
    await addMember(rt, 'bea@acme.example', accountId, 'member');
    await addMember(rt, 'cy@acme.example', accountId, 'member');
    // Bea is signed in elsewhere with the password she forgot; this browser is Cy's.
    const elsewhere = new Visitor(fixture.dashboardUrl);
    await elsewhere.signIn('bea@acme.example', '/keys');
    const browser = new Visitor(fixture.dashboardUrl);
    await browser.signIn('cy@acme.example', '/keys');
    const cysSession = browser.at(fixture.dashboardUrl);

    const { token } = await passwordResetLink(rt, 'bea@acme.example', 'test');
    const audited = await actions();
    expect((await browser.get(`/invite/${token}`)).heading).toBe('Choose a new password');
    const set = await browser.post(`/invite/${token}`, { password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect([set.status, set.location, sessionAttributes(set.setCookies) !== undefined]).toEqual([303, '/', true]);
    const keys = await browser.get('/keys');
    expect([keys.status, noticeOf(keys.html)]).toEqual([200, 'Your new password is set. You are signed in as bea@acme.example.']);
    expect(keys.html).toContain('bea@acme.example · Acme Analytics');

    // Cy's session in this browser ended, as a sign-in here would end it; Bea's old one too.
    expect((await cysSession.get('/keys')).location).toMatch(/^\/sign-in/);
    expect((await elsewhere.get('/keys')).location).toMatch(/^\/sign-in/);
    expect((await actions()).slice(0, -audited.length || undefined)).toEqual(['member.password_changed']);
  });
});
