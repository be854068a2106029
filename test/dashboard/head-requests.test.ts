/**
 * HEAD, over real HTTP: a link prefetcher, a browser's preview or a monitor asks a page with
 * HEAD before (or instead of) opening it. It is answered as a GET is (status, headers, no
 * body) but takes nothing a GET would show once: the notice a change leaves for the next
 * page ("Key … is revoked.", "Your password is set.") is still shown by the GET after it,
 * and an invitation link still works.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inviteMember } from '../../src/operations/members.js';
import { createKey } from '../../src/operations/keys.js';
import type { Runtime } from '../../src/runtime.js';
import { tempDir } from '../support/temp.js';
import { MEMBER, newAccount, PASSWORD, startDashboard, type DashboardFixture } from './support.js';
import { Visitor, addMember, type Answer } from './visitor.js';

/** The success notice a page shows, as its text. */
function notice(answer: Answer): string | undefined {
  return /<div class="notice success" role="status"><p>([\s\S]*?)<\/p>/.exec(answer.html)?.[1]?.replace(/<\/?code>/g, '');
}

/** Whether an answer set (or cleared) the notice cookie. */
function touchesNotice(answer: Answer): boolean {
  return answer.setCookies.some((cookie) => cookie.startsWith('kg_notice='));
}

describe('dashboard: HEAD answers as GET does and takes nothing a page shows once', () => {
  const dir = tempDir('keygate-dashboard-head');
  let fixture: DashboardFixture;
  let rt: Runtime;
  let acmeId: string;

  beforeAll(async () => {
    fixture = await startDashboard(dir);
    rt = fixture.keygate.runtime;
    acmeId = await newAccount(fixture, 'Acme Analytics');
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('leaves a revoked key’s notice for the GET after a HEAD of the page it leads to', async () => {
    await addMember(rt, MEMBER, acmeId, 'member');
    const member = await Visitor.signedIn(fixture.dashboardUrl, MEMBER, '/keys');
    const { key } = await createKey(rt, { accountId: acmeId, name: 'ci' }, 'test');
    await member.get(`/keys/${key.id}/revoke`);
    const revoked = await member.post(`/keys/${key.id}/revoke`, {});
    expect([revoked.status, revoked.location, touchesNotice(revoked)]).toEqual([303, '/keys', true]);

    const head = await member.ask('HEAD', '/keys');
    const get = await member.get('/keys');
    // The same answer but the body, and the notice cookie left as it was.
    expect([head.status, head.html, touchesNotice(head)]).toEqual([200, '', false]);
    expect(get.status).toBe(200);
    expect(notice(get)).toBe(`Key “ci” (${key.hint}) is revoked. Requests with it are refused from now on.`);
    // The GET shows it once, as ever.
    expect(notice(await member.get('/keys'))).toBeUndefined();
  });

  it('leaves an invitation link working, and its “password is set” notice for the GET, after HEADs of each page', async () => {
    const email = 'grace@acme.example';
    const { token } = await inviteMember(rt, { email, accountId: acmeId }, 'test');
    const visitor = new Visitor(fixture.dashboardUrl);
    expect((await visitor.ask('HEAD', `/invite/${token}`)).status).toBe(200);
    const form = await visitor.get(`/invite/${token}`);
    expect(form.heading).toBe('Choose your password');
    const joined = await visitor.post(`/invite/${token}`, { password: PASSWORD, confirm: PASSWORD });
    expect([joined.status, joined.location]).toEqual([303, '/']);

    // A prefetcher following the redirects with HEAD, then the browser with GET.
    const home = await visitor.ask('HEAD', '/');
    expect([home.status, home.location, touchesNotice(home)]).toEqual([303, '/keys', false]);
    expect(touchesNotice(await visitor.ask('HEAD', '/keys'))).toBe(false);
    expect(notice(await visitor.get('/keys'))).toBe(`Your password is set. You are signed in as ${email}.`);
  });

  it('leads a HEAD without a session to the sign-in page that leads back, as a GET', async () => {
    const visitor = new Visitor(fixture.dashboardUrl);
    for (const method of ['GET', 'HEAD']) {
      const answer = await visitor.ask(method, '/usage?period=previous');
      expect([method, answer.status, answer.location]).toEqual([method, 303, '/sign-in?next=%2Fusage%3Fperiod%3Dprevious']);
    }
  });
});
