/**
 * Choosing a password from an invitation link, or from a password reset link, signs the
 * member in there and then, over plain HTTP: a session cookie as the sign-in form sets
 * it, the keys page next, and the audit log holding what it held before (`member.joined`,
 * `member.password_changed`), with no sign-in form to type the password into again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptInvitation, inviteMember, passwordResetLink } from '../../src/operations/members.js';
import { verifyPassword } from '../../src/members/password.js';
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
    const elsewhere = await Visitor.signedIn(fixture.dashboardUrl, 'bea@acme.example', '/keys');
    const browser = await Visitor.signedIn(fixture.dashboardUrl, 'cy@acme.example', '/keys');
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

  it('a link that stops working between the page\'s check and setting the password (used up in another tab, or expired) answers the page such a link opens, not a refused password', async () => {
    const rt = fixture.keygate.runtime;
    const store = rt.store;
    // The page looks the link up, then the operation looks it up again to set the password:
    // whatever happens to the link in between is done right after the page's look-up.
    const between = async (meanwhile: () => Promise<void>, send: () => Promise<Awaited<ReturnType<Visitor['post']>>>) => {
      const lookUp = store.findMemberByInvite.bind(store);
      let pending = true;
      store.findMemberByInvite = async (hash) => {
        const found = await lookUp(hash);
        if (pending) {
          pending = false;
          await meanwhile();
        }
        return found;
      };
      try {
        return await send();
      } finally {
        delete (store as Partial<typeof store>).findMemberByInvite;
      }
    };
    const opened = async (token: string) => {
      const visitor = new Visitor(fixture.dashboardUrl);
      expect((await visitor.get(`/invite/${token}`)).heading).toBe('Choose your password');
      return visitor;
    };
    // What a link that no longer works opens, as it is now.
    const { token: used } = await inviteMember(rt, { email: 'used@acme.example', accountId }, 'test');
    await acceptInvitation(rt, used, PASSWORD);
    const notWorking = await new Visitor(fixture.dashboardUrl).get(`/invite/${used}`);
    expect([notWorking.status, notWorking.heading]).toEqual([404, 'This link does not work']);
    const text = (answer: { html: string }) => /<main\b[^>]*>([\s\S]*?)<\/main>/.exec(answer.html)?.[1];

    // Used up in another tab, with a password of its own.
    const { token: twice } = await inviteMember(rt, { email: 'twice@acme.example', accountId }, 'test');
    const tab = await opened(twice);
    const late = await between(
      async () => void (await acceptInvitation(rt, twice, 'the other tab\'s passphrase')),
      () => tab.post(`/invite/${twice}`, { password: NEW_PASSWORD, confirm: NEW_PASSWORD }),
    );
    expect([late.status, late.heading, late.alert, late.location]).toEqual([404, 'This link does not work', undefined, null]);
    expect(text(late)).toBe(text(notWorking));
    // The other tab's password stands, and this one signed nobody in.
    const member = await store.findMemberByEmail('twice@acme.example');
    expect(await verifyPassword('the other tab\'s passphrase', member?.passwordHash ?? '')).toBe(true);
    expect(late.setCookies.filter((cookie) => cookie.startsWith(`${SESSION_COOKIE}=`) && !/max-age=0\b/i.test(cookie))).toEqual([]);

    // Expired meanwhile (its end reached).
    const { token: expiring, member: invited } = await inviteMember(rt, { email: 'expiring@acme.example', accountId }, 'test');
    const slow = await opened(expiring);
    const expired = await between(
      async () => void (await store.updateMember(invited.id, { inviteExpiresAt: rt.clock() })),
      () => slow.post(`/invite/${expiring}`, { password: NEW_PASSWORD, confirm: NEW_PASSWORD }),
    );
    expect([expired.status, expired.heading, expired.alert]).toEqual([404, 'This link does not work', undefined]);
    expect(text(expired)).toBe(text(notWorking));
    expect((await store.findMemberByEmail('expiring@acme.example'))?.passwordHash).toBeNull();
  });
});
