/**
 * Forms from browsers that send no Sec-Fetch-Site (Safari before 16.4), over plain HTTP:
 * a POST whose Origin is another origin than the dashboard's is refused as the
 * Sec-Fetch-Site check refuses it. The dashboard's origin is `dashboard.publicUrl`'s; without
 * one, the request's Host with the scheme it came by (from a trusted proxy, the ones its
 * X-Forwarded-Host and X-Forwarded-Proto say). A POST without Origin (curl) is left to the token.
 * (Whichever host that is must be one the dashboard answers to: host-names.test.ts.)
 */
import { createServer } from 'node:net';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptInvitation, inviteMember } from '../../src/operations/members.js';
import { createAccount } from '../../src/operations/accounts.js';
import { startDemoUpstream, startKeygate, type TestKeygate } from '../support/keygate.js';
import { tempDir } from '../support/temp.js';
import { chromiumAvailable, dashboardProfile, expectHeading, launchChromium, newContext, PASSWORD, signIn } from './support.js';

const PUBLIC_URL = 'http://keys.example.test';
const EMAIL = 'ada@acme.example';

/** `name=value` pairs from Set-Cookie headers, for sending back. */
function cookieJar(response: Response): string {
  return response.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
}

/** A sign-in form posted with its own cookie and token, as a browser without Sec-Fetch-Site sends it. */
async function signInFrom(dashboardUrl: string, origin: string | undefined, headers: Record<string, string> = {}): Promise<{ status: number; text: string; signedIn: boolean }> {
  const form = await fetch(`${dashboardUrl}/sign-in`);
  const token = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1] as string;
  const answer = await fetch(`${dashboardUrl}/sign-in`, {
    method: 'POST',
    headers: { ...headers, cookie: cookieJar(form), 'content-type': 'application/x-www-form-urlencoded', ...(origin === undefined ? {} : { origin }) },
    body: new URLSearchParams({ _csrf: token, email: EMAIL, password: PASSWORD }),
    redirect: 'manual',
  });
  return { status: answer.status, text: await answer.text(), signedIn: answer.headers.getSetCookie().some((c) => c.startsWith('kg_session=')) };
}

describe('dashboard: forms with an Origin and no Sec-Fetch-Site', () => {
  let upstream: Awaited<ReturnType<typeof startDemoUpstream>>;
  let withPublicUrl: TestKeygate;
  let withoutPublicUrl: TestKeygate;
  let behindProxy: TestKeygate;

  beforeAll(async () => {
    upstream = await startDemoUpstream();
    const profile = dashboardProfile(upstream.url);
    withPublicUrl = await startKeygate({ ...profile, dashboard: { enabled: true, publicUrl: PUBLIC_URL } }, { dir: tempDir('keygate-dashboard-origin') });
    withoutPublicUrl = await startKeygate({ ...profile, dashboard: { enabled: true } }, { dir: tempDir('keygate-dashboard-origin-none') });
    // The name its proxy forwards is one it answers to (host-names.test.ts): no publicUrl, so that the Origin is judged by the forwarded scheme and host.
    behindProxy = await startKeygate({ ...profile, trustedProxies: ['127.0.0.1'], dashboard: { enabled: true, allowedHosts: ['keys.example.test'] } }, { dir: tempDir('keygate-dashboard-origin-proxy') });
    for (const keygate of [withPublicUrl, withoutPublicUrl, behindProxy]) {
      const account = await createAccount(keygate.runtime, { name: 'Acme' }, 'test');
      const { token } = await inviteMember(keygate.runtime, { email: EMAIL, accountId: account.id }, 'test');
      await acceptInvitation(keygate.runtime, token, PASSWORD);
    }
  });

  afterAll(async () => {
    await withPublicUrl?.close();
    await withoutPublicUrl?.close();
    await behindProxy?.close();
    await upstream?.close();
  });

  it('refuses a form whose Origin is not publicUrl\'s (403, no one signed in), and takes one from publicUrl or with no Origin', async () => {
    const url = withPublicUrl.dashboardUrl as string;
    for (const origin of ['http://127.0.0.1:9999', `${new URL(url).origin}`, 'https://keys.example.test', 'null']) {
      const refused = await signInFrom(url, origin);
      expect([refused.status, refused.signedIn], origin).toEqual([403, false]);
      expect(refused.text).toContain('This form could not be accepted');
    }
    expect(await signInFrom(url, PUBLIC_URL)).toMatchObject({ status: 303, signedIn: true });
    expect(await signInFrom(url, undefined)).toMatchObject({ status: 303, signedIn: true });
  });

  it('without publicUrl, refuses a form whose Origin is not the one its Host names (another port, another name, null), and takes its own or none', async () => {
    const url = withoutPublicUrl.dashboardUrl as string;
    const { port } = new URL(url);
    // A page on another port of the same host, the same port by another name or scheme, a sandboxed frame.
    for (const origin of ['http://127.0.0.1:9999', `http://localhost:${port}`, `https://127.0.0.1:${port}`, 'null']) {
      const refused = await signInFrom(url, origin);
      expect([refused.status, refused.signedIn], origin).toEqual([403, false]);
      expect(refused.text).toContain('This form could not be accepted');
    }
    // The dashboard's own page; curl, which sends neither Origin nor Sec-Fetch-Site.
    expect(await signInFrom(url, new URL(url).origin)).toMatchObject({ status: 303, signedIn: true });
    expect(await signInFrom(url, undefined)).toMatchObject({ status: 303, signedIn: true });
    // A client's X-Forwarded-* count for nothing where trustedProxies does not list it.
    const claimed = await signInFrom(url, 'https://keys.example.test', { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'keys.example.test' });
    expect([claimed.status, claimed.signedIn]).toEqual([403, false]);
  });

  it('without publicUrl, behind a trusted proxy, compares the Origin with the scheme and host the proxy says the visitor used', async () => {
    const url = behindProxy.dashboardUrl as string;
    const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'keys.example.test' };
    expect(await signInFrom(url, 'https://keys.example.test', forwarded)).toMatchObject({ status: 303, signedIn: true });
    for (const origin of ['http://keys.example.test', new URL(url).origin, 'https://evil.example.test']) {
      const refused = await signInFrom(url, origin, forwarded);
      expect([refused.status, refused.signedIn], origin).toEqual([403, false]);
    }
  });

  it('behind a chain of proxies, takes the first of the X-Forwarded-* lists (the visitor\'s), written as a browser writes an origin', async () => {
    const url = behindProxy.dashboardUrl as string;
    const chained = { 'x-forwarded-proto': 'https, http', 'x-forwarded-host': 'keys.example.test, 10.0.0.5:8080' };
    expect(await signInFrom(url, 'https://keys.example.test', chained)).toMatchObject({ status: 303, signedIn: true });
    const refused = await signInFrom(url, 'http://10.0.0.5:8080', chained);
    expect([refused.status, refused.signedIn]).toEqual([403, false]);
    // Upper case and the scheme's default port, as a Host may carry them; an IPv6 host in brackets.
    expect(await signInFrom(url, 'https://keys.example.test', { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'KEYS.Example.test:443' })).toMatchObject({ status: 303, signedIn: true });
    expect(await signInFrom(url, 'https://[::1]:8443', { 'x-forwarded-proto': 'https', 'x-forwarded-host': '[::1]:8443' })).toMatchObject({ status: 303, signedIn: true });
  });

  // Behind a proxy that rewrites Host (or with publicUrl), the Referer names the visitor's
  // address, not the Host keygate was sent: its page was taken for another host's.
  it('leads a form sent after its session ended back to its page by the Referer of the dashboard\'s origin: publicUrl\'s, or the one a trusted proxy names', async () => {
    const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'keys.example.test' };
    const sentWithoutSession = async (url: string, referer: string, headers: Record<string, string> = {}) =>
      (await fetch(`${url}/keys`, { method: 'POST', headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin', referer }, body: 'name=x', redirect: 'manual' })).headers.get('location');
    expect(await sentWithoutSession(withPublicUrl.dashboardUrl as string, `${PUBLIC_URL}/keys/new`)).toBe('/sign-in?next=%2Fkeys%2Fnew');
    expect(await sentWithoutSession(behindProxy.dashboardUrl as string, 'https://keys.example.test/keys/new', forwarded)).toBe('/sign-in?next=%2Fkeys%2Fnew');
    expect(await sentWithoutSession(withoutPublicUrl.dashboardUrl as string, `${withoutPublicUrl.dashboardUrl as string}/keys/new`)).toBe('/sign-in?next=%2Fkeys%2Fnew');
    // A page of another origin (another host, the other scheme) leads to the plain sign-in page.
    expect(await sentWithoutSession(withPublicUrl.dashboardUrl as string, 'http://elsewhere.example/keys/new')).toBe('/sign-in');
    expect(await sentWithoutSession(behindProxy.dashboardUrl as string, 'http://keys.example.test/keys/new', forwarded)).toBe('/sign-in');
  });

  // Without Secure, a browser that reached the dashboard over HTTPS sends its session to
  // http:// on the same host too (port 80's redirect to https, say), in clear.
  it('without publicUrl, behind a trusted proxy that says https, sets every cookie Secure; reached over http, or through a proxy it does not trust, not', async () => {
    /** Each cookie the sign-in form, signing in and signing out set, by name, with whether it is Secure. */
    async function cookiesVia(url: string, headers: Record<string, string>): Promise<Record<string, boolean>> {
      const secure: Record<string, boolean> = {};
      const keep = (response: Response) => {
        for (const cookie of response.headers.getSetCookie()) secure[cookie.slice(0, cookie.indexOf('='))] = /;\s*Secure(;|$)/i.test(cookie);
      };
      const form = await fetch(`${url}/sign-in`, { headers });
      keep(form);
      const signIn = await fetch(`${url}/sign-in`, {
        method: 'POST',
        headers: { ...headers, cookie: cookieJar(form), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1] as string, email: EMAIL, password: PASSWORD }),
        redirect: 'manual',
      });
      expect(signIn.status).toBe(303);
      keep(signIn);
      const keys = await fetch(`${url}/keys`, { headers: { ...headers, cookie: cookieJar(signIn) } });
      const signOut = await fetch(`${url}/sign-out`, {
        method: 'POST',
        headers: { ...headers, cookie: cookieJar(signIn), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: /name="_csrf" value="([^"]+)"/.exec(await keys.text())?.[1] as string }),
        redirect: 'manual',
      });
      expect(signOut.status).toBe(303);
      keep(signOut);
      return secure;
    }
    const https = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'keys.example.test' };
    expect(await cookiesVia(behindProxy.dashboardUrl as string, https)).toEqual({ kg_form: true, kg_session: true, kg_notice: true });
    expect(await cookiesVia(behindProxy.dashboardUrl as string, {})).toEqual({ kg_form: false, kg_session: false, kg_notice: false });
    // Anyone can send the header: from a peer not in trustedProxies it says nothing.
    expect(await cookiesVia(withoutPublicUrl.dashboardUrl as string, https)).toEqual({ kg_form: false, kg_session: false, kg_notice: false });
  });
});

/** A port nothing listens on now, for a dashboard whose publicUrl must name it before it starts. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe.skipIf(!chromiumAvailable())('dashboard: a real browser\'s own forms carry the dashboard\'s origin', () => {
  let upstream: Awaited<ReturnType<typeof startDemoUpstream>>;
  let browser: Browser;
  const keygates: TestKeygate[] = [];

  beforeAll(async () => {
    upstream = await startDemoUpstream();
    browser = await launchChromium();
    const port = await freePort();
    const profile = dashboardProfile(upstream.url);
    keygates.push(await startKeygate({ ...profile, dashboard: { enabled: true, publicUrl: `http://127.0.0.1:${port}` } }, { dir: tempDir('keygate-dashboard-origin-browser'), ports: { dashboard: port } }));
    keygates.push(await startKeygate({ ...profile, dashboard: { enabled: true } }, { dir: tempDir('keygate-dashboard-origin-browser-none') }));
    for (const keygate of keygates) {
      const account = await createAccount(keygate.runtime, { name: 'Acme' }, 'test');
      const { token } = await inviteMember(keygate.runtime, { email: EMAIL, accountId: account.id }, 'test');
      await acceptInvitation(keygate.runtime, token, PASSWORD);
    }
  });

  afterAll(async () => {
    await browser?.close();
    for (const keygate of keygates) await keygate.close();
    await upstream?.close();
  });

  // Under Referrer-Policy: no-referrer a browser sends `Origin: null` with a page's own
  // forms: every one of them was refused with publicUrl set, and would be without it.
  it('signs in from the sign-in page, with publicUrl set to its address and without one', async () => {
    for (const keygate of keygates) {
      const context = await newContext(browser, keygate.dashboardUrl as string);
      const page = await context.newPage();
      await page.goto('/sign-in');
      await signIn(page, EMAIL);
      await expectHeading(page, 'API keys');
      await context.close();
    }
  });
});
