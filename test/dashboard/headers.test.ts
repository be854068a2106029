/**
 * The dashboard over plain HTTP (no browser needed): cookie attributes with
 * `dashboard.secureCookies` on, the security headers every answer carries, assets that
 * load only from the dashboard itself, and no dashboard at all when it is disabled.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptInvitation, inviteMember } from '../../src/operations/members.js';
import { createAccount } from '../../src/operations/accounts.js';
import { startDemoUpstream, startKeygate, type TestKeygate } from '../support/keygate.js';
import { tempDir } from '../support/temp.js';
import { dashboardProfile, PASSWORD } from './support.js';

/** `name=value` pairs from Set-Cookie headers, for sending back. */
function cookieJar(response: Response): string {
  return response.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
}

describe('dashboard: cookies and headers', () => {
  const dir = tempDir('keygate-dashboard-headers');
  const offDir = tempDir('keygate-dashboard-off');
  let upstream: Awaited<ReturnType<typeof startDemoUpstream>>;
  let keygate: TestKeygate;

  beforeAll(async () => {
    upstream = await startDemoUpstream();
    const profile = dashboardProfile(upstream.url);
    keygate = await startKeygate({ ...profile, dashboard: { enabled: true, secureCookies: true, sessionTtl: '2h' } }, { dir });
    const rt = keygate.runtime;
    const account = await createAccount(rt, { name: 'Acme' }, 'test');
    const { token } = await inviteMember(rt, { email: 'ada@acme.example', accountId: account.id }, 'test');
    await acceptInvitation(rt, token, PASSWORD);
  });

  afterAll(async () => {
    await keygate?.close();
    await upstream?.close();
  });

  it('sets Secure, HttpOnly, SameSite cookies with the __Host- prefix when secureCookies is on', async () => {
    const form = await fetch(`${keygate.dashboardUrl}/sign-in`);
    expect(form.status).toBe(200);
    const formCookie = form.headers.getSetCookie().find((c) => c.startsWith('__Host-kg_form='));
    expect(formCookie).toMatch(/; Path=\//);
    expect(formCookie).toMatch(/; HttpOnly/);
    expect(formCookie).toMatch(/; Secure/);
    expect(formCookie).toMatch(/; SameSite=Strict/);
    const token = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1] as string;

    const signIn = await fetch(`${keygate.dashboardUrl}/sign-in`, {
      method: 'POST',
      headers: { cookie: cookieJar(form), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: token, email: 'ada@acme.example', password: PASSWORD }),
      redirect: 'manual',
    });
    expect(signIn.status).toBe(303);
    const session = signIn.headers.getSetCookie().find((c) => c.startsWith('__Host-kg_session='));
    expect(session).toBeDefined();
    expect(session).toMatch(/; Max-Age=7200/);
    expect(session).toMatch(/; Path=\//);
    expect(session).toMatch(/; HttpOnly/);
    expect(session).toMatch(/; Secure/);
    expect(session).toMatch(/; SameSite=Lax/);
    expect(session).not.toMatch(/Domain=/);

    const keys = await fetch(`${keygate.dashboardUrl}/keys`, { headers: { cookie: cookieJar(signIn) } });
    expect(keys.status).toBe(200);
    expect(await keys.text()).toContain('<h1>API keys</h1>');
  });

  it('sends security headers with every page and keeps pages out of caches', async () => {
    const page = await fetch(`${keygate.dashboardUrl}/sign-in`);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('referrer-policy')).toBe('same-origin');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('cache-control')).toBe('no-store');
    const html = await page.text();
    // Everything the page loads comes from the dashboard itself.
    const sources = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string);
    expect(sources.filter((s) => /^(https?:)?\/\//.test(s))).toEqual([]);

    for (const asset of ['/assets/dashboard.css', '/assets/dashboard.js']) {
      const response = await fetch(`${keygate.dashboardUrl}${asset}`);
      expect(response.status, asset).toBe(200);
      expect(response.headers.get('cache-control'), asset).toMatch(/^public, max-age=/);
    }
  });

  it('sends visitors who are not signed in to the sign-in page, which leads back to the page they asked for', async () => {
    for (const [path, back] of [['/', ''], ['/keys', '?next=%2Fkeys'], ['/usage', '?next=%2Fusage'], ['/accounts', '?next=%2Faccounts'], ['/audit?action=key.created', '?next=%2Faudit%3Faction%3Dkey.created'], ['/nowhere', '?next=%2Fnowhere']]) {
      const response = await fetch(`${keygate.dashboardUrl}${path}`, { redirect: 'manual' });
      expect(response.status, path).toBe(303);
      expect(response.headers.get('location'), path).toBe(`/sign-in${back}`);
    }
  });

  it('does not listen at all when the profile disables the dashboard', async () => {
    const off = await startKeygate({ ...dashboardProfile(upstream.url), dashboard: { enabled: false } }, { dir: offDir });
    try {
      expect(off.dashboardUrl).toBeUndefined();
    } finally {
      await off.close();
    }
  });
});
