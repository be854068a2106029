/**
 * DNS rebinding: a page on `rebound.example` whose DNS turns to the dashboard's address is
 * of the same origin as the dashboard reached by that name, so its cookies, CSRF token,
 * Sec-Fetch-Site and Origin all look like the dashboard's own. The dashboard answers only
 * to the names it is known by (publicUrl's host, allowedHosts, IP literals, localhost),
 * read from the Host, or a trusted proxy's X-Forwarded-Host; any other gets 421 and no
 * cookie, whatever the method or path. Over real HTTP, with the Host set by hand as a
 * browser would set it after the rebinding.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptInvitation, inviteMember } from '../../src/operations/members.js';
import { createAccount } from '../../src/operations/accounts.js';
import { startDemoUpstream, startKeygate, type TestKeygate } from '../support/keygate.js';
import { tempDir } from '../support/temp.js';
import { dashboardProfile, PASSWORD } from './support.js';

const EMAIL = 'ada@acme.example';
const PUBLIC_URL = 'http://keys.example.test';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The `name=value` of each cookie set, for sending back. */
  cookies: string[];
}

/** One request to the dashboard at `url`, its Host (and any other header) as given: fetch would not send a Host of ours. */
function send(url: string, path: string, options: { method?: string; host?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  const { hostname, port } = new URL(url);
  const { method = 'GET', host = new URL(url).host, headers = {}, body } = options;
  return new Promise((resolve, reject) => {
    const sent = httpRequest({ hostname, port, path, method, headers: { ...headers, host, ...(body === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)) }) } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          text: Buffer.concat(chunks).toString('utf8'),
          cookies: (response.headers['set-cookie'] ?? []).map((cookie) => cookie.split(';')[0] as string),
        }),
      );
    });
    sent.on('error', reject);
    sent.end(body);
  });
}

/**
 * Signs in as a browser on `origin` would (Host and Origin of that origin, Sec-Fetch-Site:
 * same-origin, the form's cookie and token): the sign-in form's answer, the POST's, and
 * the keys page's with the session it set.
 */
async function signInAs(url: string, host: string, headers: Record<string, string> = {}, origin = `http://${host}`): Promise<{ form: Answer; signIn: Answer; keys: Answer }> {
  const form = await send(url, '/sign-in', { host, headers });
  const token = /name="_csrf" value="([^"]+)"/.exec(form.text)?.[1] ?? '';
  const signIn = await send(url, '/sign-in', {
    method: 'POST',
    host,
    headers: { ...headers, origin, 'sec-fetch-site': 'same-origin', cookie: form.cookies.join('; ') },
    body: new URLSearchParams({ _csrf: token, email: EMAIL, password: PASSWORD }).toString(),
  });
  const keys = await send(url, '/keys', { host, headers: { ...headers, cookie: signIn.cookies.join('; ') } });
  return { form, signIn, keys };
}

/** The session cookie of a sign-in by the dashboard's own address. */
async function sessionCookie(url: string): Promise<string> {
  const { signIn } = await signInAs(url, new URL(url).host);
  const session = signIn.cookies.find((cookie) => cookie.startsWith('kg_session='));
  expect(session).toBeDefined();
  return session as string;
}

describe('dashboard: answers only the host names it is known by (DNS rebinding)', () => {
  let upstream: Awaited<ReturnType<typeof startDemoUpstream>>;
  /** No publicUrl: the names it answers to are IP literals and localhost. */
  let plain: TestKeygate;
  /** publicUrl, a proxy it trusts on 127.0.0.1, a name that proxy passes as Host, and a wildcard for a proxy of many subdomains. */
  let named: TestKeygate;

  beforeAll(async () => {
    upstream = await startDemoUpstream();
    const profile = dashboardProfile(upstream.url);
    plain = await startKeygate({ ...profile, dashboard: { enabled: true } }, { dir: tempDir('keygate-dashboard-host-names') });
    named = await startKeygate(
      { ...profile, trustedProxies: ['127.0.0.1'], dashboard: { enabled: true, publicUrl: PUBLIC_URL, allowedHosts: ['keygate', '*.tenants.example.test'] } },
      { dir: tempDir('keygate-dashboard-host-names-public') },
    );
    for (const keygate of [plain, named]) {
      const account = await createAccount(keygate.runtime, { name: 'Acme' }, 'test');
      const { token } = await inviteMember(keygate.runtime, { email: EMAIL, accountId: account.id }, 'test');
      await acceptInvitation(keygate.runtime, token, PASSWORD);
    }
  });

  afterAll(async () => {
    await plain?.close();
    await named?.close();
    await upstream?.close();
  });

  it('refuses a rebound name (421, no cookie): the sign-in form, signing in with its own Origin and Sec-Fetch-Site, and a signed-in page', async () => {
    const url = plain.dashboardUrl as string;
    const rebound = `rebound.example:${new URL(url).port}`;
    const { form, signIn, keys } = await signInAs(url, rebound);
    for (const answer of [form, signIn, keys]) {
      expect(answer.status).toBe(421);
      expect(answer.cookies).toEqual([]);
    }
    expect(form.text).toContain('The dashboard does not answer to this name');
    expect(form.text).toContain(`<code>dashboard.publicUrl: http://${rebound}</code>`);
    expect(form.headers['cache-control']).toBe('no-store');
    // Nor with a session the visitor already has (sent to the rebound name, as the browser sends it now).
    const withSession = await send(url, '/keys', { host: rebound, headers: { cookie: await sessionCookie(url) } });
    expect(withSession.status).toBe(421);
    expect(withSession.text).not.toContain('API keys');
  });

  it('refuses it for every method and path: HEAD, PUT, assets, the favicon, a page that is not there, an address that cannot be read', async () => {
    const url = plain.dashboardUrl as string;
    for (const [method, path] of [['HEAD', '/sign-in'], ['PUT', '/keys'], ['DELETE', '/'], ['GET', '/assets/dashboard.css'], ['GET', '/assets/dashboard.js'], ['GET', '/favicon.ico'], ['GET', '/no-such-page'], ['POST', '/sign-out'], ['GET', '/keys/%zz']] as const) {
      const answer = await send(url, path, { method, host: 'rebound.example' });
      expect([method, path, answer.status, answer.cookies]).toEqual([method, path, 421, []]);
      if (method === 'HEAD') expect(answer.text).toBe('');
    }
  });

  it('logs the refused name, once a minute at most', async () => {
    for (let i = 0; i < 3; i++) await send(plain.dashboardUrl as string, '/sign-in', { host: `rebound-${i}.example` });
    const refused = plain.logs.lines.filter((line) => line.includes('a name it is not known by'));
    // These and the earlier tests' refusals came within the minute: one line in all, naming the first name refused.
    expect(refused).toHaveLength(1);
    expect(JSON.parse(refused[0] as string)).toMatchObject({ level: 40, host: expect.stringMatching(/^rebound[-.]/) });
    expect(refused[0]).toMatch(/set dashboard\.publicUrl: http:\/\/rebound/);
  });

  it('answers IP addresses and localhost without publicUrl: 127.0.0.1, [::1], localhost, *.localhost', async () => {
    const url = plain.dashboardUrl as string;
    const { port } = new URL(url);
    for (const host of [`127.0.0.1:${port}`, `[::1]:${port}`, `localhost:${port}`, `LOCALHOST.:${port}`, `app.localhost:${port}`, '127.0.0.1']) {
      const { form, signIn, keys } = await signInAs(url, host);
      expect([host, form.status, signIn.status, keys.status]).toEqual([host, 200, 303, 200]);
      expect(signIn.cookies.some((cookie) => cookie.startsWith('kg_session='))).toBe(true);
      expect(keys.text).toContain('API keys');
    }
  });

  it("with publicUrl, answers its host (any case, any port) and refuses another, GETs included", async () => {
    const url = named.dashboardUrl as string;
    const { signIn, keys } = await signInAs(url, 'keys.example.test', {}, PUBLIC_URL);
    expect([signIn.status, keys.status]).toEqual([303, 200]);
    expect((await send(url, '/sign-in', { host: 'KEYS.Example.test:80' })).status).toBe(200);
    const other = await send(url, '/sign-in', { host: 'rebound.example' });
    expect([other.status, other.cookies]).toEqual([421, []]);
    // The fix it names is the one for the name it was asked by.
    expect(other.text).toContain('<code>dashboard.publicUrl: http://rebound.example</code>');
  });

  it("behind a trusted proxy, judges the host it says the visitor used (X-Forwarded-Host), and a name in allowedHosts that it passes as Host", async () => {
    const url = named.dashboardUrl as string;
    const forwarded = (host: string) => ({ 'x-forwarded-proto': 'https', 'x-forwarded-host': host });
    // (The Origin check wants publicUrl's origin, http://: that of the proxy's scheme is not judged here.)
    const via = await signInAs(url, '10.0.0.5:8082', { 'x-forwarded-host': 'keys.example.test' }, PUBLIC_URL);
    expect([via.signIn.status, via.keys.status]).toEqual([303, 200]);
    // The proxy passed on a rebound name: refused, whatever its own Host.
    const rebound = await send(url, '/sign-in', { host: '127.0.0.1', headers: forwarded('rebound.example') });
    expect([rebound.status, rebound.cookies]).toEqual([421, []]);
    expect(rebound.text).toContain('<code>dashboard.publicUrl: https://rebound.example</code>');
    // A proxy that passes its own Host (nginx's proxy_pass http://keygate:8082) and no X-Forwarded-Host.
    const own = await signInAs(url, 'keygate:8082', {}, PUBLIC_URL);
    expect([own.form.status, own.signIn.status, own.keys.status]).toEqual([200, 303, 200]);
  });

  it('answers every name below a wildcard in allowedHosts (*.tenants.example.test), not that name itself nor one that only ends like it', async () => {
    const url = named.dashboardUrl as string;
    for (const host of ['acme.tenants.example.test', 'EU.Acme.tenants.example.test:8443', 'acme.tenants.example.test.']) {
      const { form, signIn, keys } = await signInAs(url, host, {}, PUBLIC_URL);
      expect([host, form.status, signIn.status, keys.status]).toEqual([host, 200, 303, 200]);
      expect(keys.text).toContain('API keys');
    }
    for (const host of ['tenants.example.test', 'eviltenants.example.test', 'acme.tenants.example.test.rebound.example', '.tenants.example.test']) {
      const answer = await send(url, '/sign-in', { host });
      expect([host, answer.status, answer.cookies]).toEqual([host, 421, []]);
    }
    // From a trusted proxy, the name it says the visitor used is judged the same way.
    const forwarded = (host: string) => send(url, '/sign-in', { host: '10.0.0.5:8082', headers: { 'x-forwarded-host': host } });
    expect([(await forwarded('acme.tenants.example.test')).status, (await forwarded('tenants.example.test')).status]).toEqual([200, 421]);
  });

  it("takes no X-Forwarded-Host from a client it does not trust: the Host is judged", async () => {
    const url = plain.dashboardUrl as string;
    const claimed = await send(url, '/sign-in', { host: 'rebound.example', headers: { 'x-forwarded-host': '127.0.0.1' } });
    expect(claimed.status).toBe(421);
  });
});
