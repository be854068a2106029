/**
 * Forms from browsers that send no Sec-Fetch-Site (Safari before 16.4), over plain HTTP:
 * with `dashboard.publicUrl` set, a POST whose Origin is another origin is refused as the
 * Sec-Fetch-Site check refuses it; without one, the Origin is not compared (the token decides).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptInvitation, inviteMember } from '../../src/operations/members.js';
import { createAccount } from '../../src/operations/accounts.js';
import { startDemoUpstream, startKeygate, type TestKeygate } from '../support/keygate.js';
import { tempDir } from '../support/temp.js';
import { dashboardProfile, PASSWORD } from './support.js';

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
async function signInFrom(dashboardUrl: string, origin: string | undefined): Promise<{ status: number; text: string; signedIn: boolean }> {
  const form = await fetch(`${dashboardUrl}/sign-in`);
  const token = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1] as string;
  const answer = await fetch(`${dashboardUrl}/sign-in`, {
    method: 'POST',
    headers: { cookie: cookieJar(form), 'content-type': 'application/x-www-form-urlencoded', ...(origin === undefined ? {} : { origin }) },
    body: new URLSearchParams({ _csrf: token, email: EMAIL, password: PASSWORD }),
    redirect: 'manual',
  });
  return { status: answer.status, text: await answer.text(), signedIn: answer.headers.getSetCookie().some((c) => c.startsWith('kg_session=')) };
}

describe('dashboard: forms with an Origin and no Sec-Fetch-Site', () => {
  let upstream: Awaited<ReturnType<typeof startDemoUpstream>>;
  let withPublicUrl: TestKeygate;
  let withoutPublicUrl: TestKeygate;

  beforeAll(async () => {
    upstream = await startDemoUpstream();
    const profile = dashboardProfile(upstream.url);
    withPublicUrl = await startKeygate({ ...profile, dashboard: { enabled: true, publicUrl: PUBLIC_URL } }, { dir: tempDir('keygate-dashboard-origin') });
    withoutPublicUrl = await startKeygate({ ...profile, dashboard: { enabled: true } }, { dir: tempDir('keygate-dashboard-origin-none') });
    for (const keygate of [withPublicUrl, withoutPublicUrl]) {
      const account = await createAccount(keygate.runtime, { name: 'Acme' }, 'test');
      const { token } = await inviteMember(keygate.runtime, { email: EMAIL, accountId: account.id }, 'test');
      await acceptInvitation(keygate.runtime, token, PASSWORD);
    }
  });

  afterAll(async () => {
    await withPublicUrl?.close();
    await withoutPublicUrl?.close();
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

  it('does not compare the Origin without publicUrl (the token decides)', async () => {
    expect(await signInFrom(withoutPublicUrl.dashboardUrl as string, 'http://127.0.0.1:9999')).toMatchObject({ status: 303, signedIn: true });
  });
});
