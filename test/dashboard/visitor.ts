/**
 * A visitor without a browser, over plain HTTP: keeps its cookies and posts forms with the
 * page's CSRF token, as the page would; for tests of what hand-edited or repeated forms get.
 */
import { expect } from 'vitest';
import { acceptInvitation, inviteMember } from '../../src/operations/members.js';
import type { Runtime } from '../../src/runtime.js';
import { MEMBER, OPERATOR, PASSWORD, type DashboardFixture } from './support.js';

export type Fields = Record<string, string> | [string, string][];

export interface Answer {
  status: number;
  /** The page's h1. */
  heading: string;
  /** The error notice's text, as the page shows it. */
  alert: string | undefined;
  html: string;
  /** Where a redirect leads (null: none), and the cookies the answer set, as sent. */
  location: string | null;
  setCookies: string[];
}

/** Entities escapeHtml writes, read back as the browser shows them. */
function decode(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|#39);/g, (_, name: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[name] as string);
}

function answerOf(response: Response, html: string): Answer {
  const heading = /<h1\b[^>]*>([\s\S]*?)<\/h1>/.exec(html)?.[1];
  const alert = /<div class="notice error" role="alert"[^>]*><p>([\s\S]*?)<\/p>/.exec(html)?.[1];
  return { status: response.status, heading: decode(heading ?? ''), alert: alert === undefined ? undefined : decode(alert), html, location: response.headers.get('location'), setCookies: response.headers.getSetCookie() };
}

/** A visitor without a browser: keeps its cookies and posts forms with the page's CSRF token, as the page would. */
export class Visitor {
  private readonly cookies = new Map<string, string>();
  private token = '';

  constructor(private readonly base: string) {}

  async get(path: string): Promise<Answer> {
    const response = await fetch(this.base + path, { headers: { cookie: this.cookieHeader() }, redirect: 'manual' });
    this.keep(response);
    const html = await response.text();
    // The last form's: a page's own form comes after the header's sign-out form, whose token
    // is the session's (a public page opened while signed in, an invitation, has its own).
    this.token = [...html.matchAll(/name="_csrf" value="([^"]+)"/g)].at(-1)?.[1] ?? this.token;
    return answerOf(response, html);
  }

  /** Posts `fields` with the CSRF token of the last page read (arrays keep repeated names), and any `headers`. */
  async post(path: string, fields: Fields, headers: Record<string, string> = {}): Promise<Answer> {
    const body = new URLSearchParams(fields);
    body.set('_csrf', this.token);
    const response = await fetch(this.base + path, {
      method: 'POST',
      headers: { ...headers, cookie: this.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded' },
      body,
      redirect: 'manual',
    });
    this.keep(response);
    return answerOf(response, await response.text());
  }

  /** Asks for `path` with `method`, signed in: the status, the Allow header and the page. */
  async ask(method: string, path: string): Promise<Answer & { allow: string | null }> {
    const response = await fetch(this.base + path, { method, headers: { cookie: this.cookieHeader() }, redirect: 'manual' });
    this.keep(response);
    return { ...answerOf(response, await response.text()), allow: response.headers.get('allow') };
  }

  /** Posts a form body of raw bytes (`bytes`, then the CSRF token), as no browser would. */
  async postBytes(path: string, bytes: Buffer): Promise<Answer> {
    const body = Buffer.concat([bytes, Buffer.from(`&_csrf=${encodeURIComponent(this.token)}`)]);
    const response = await fetch(this.base + path, {
      method: 'POST',
      headers: { cookie: this.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded' },
      body,
      redirect: 'manual',
    });
    this.keep(response);
    return answerOf(response, await response.text());
  }

  /** The same browser (its cookies and CSRF token as they are now) reaching the dashboard at `base`: another keygate process, say. */
  at(base: string): Visitor {
    const twin = new Visitor(base);
    for (const [name, value] of this.cookies) twin.cookies.set(name, value);
    twin.token = this.token;
    return twin;
  }

  /** A new visitor at `base`, signed in as `email` (whose password is PASSWORD) and on `home`. */
  static async signedIn(base: string, email: string, home: string): Promise<Visitor> {
    const visitor = new Visitor(base);
    await visitor.signIn(email, home);
    return visitor;
  }

  /** Signs in and opens `home`, whose forms carry the session's CSRF token. */
  async signIn(email: string, home: string): Promise<void> {
    await this.get('/sign-in');
    expect((await this.post('/sign-in', { email, password: PASSWORD })).status).toBe(303);
    expect((await this.get(home)).status).toBe(200);
  }

  private keep(response: Response): void {
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(';');
      const at = (pair ?? '').indexOf('=');
      this.cookies.set((pair ?? '').slice(0, at), (pair ?? '').slice(at + 1));
    }
  }

  private cookieHeader(): string {
    return [...this.cookies].filter(([, value]) => value !== '').map(([name, value]) => `${name}=${value}`).join('; ');
  }
}

/** A member (or operator) who has accepted an invitation and chosen PASSWORD. */
export async function addMember(rt: Runtime, email: string, accountId: string | null, role: 'member' | 'operator'): Promise<void> {
  const { token } = await inviteMember(rt, { email, accountId, role }, 'test');
  await acceptInvitation(rt, token, PASSWORD);
}

/**
 * The operator olga@ops.example (of no account), invited, signed in over plain HTTP and on
 * `home`: where the operator's pages are what a test looks at.
 */
export async function signedInOperator(fixture: DashboardFixture, home: string): Promise<Visitor> {
  await addMember(fixture.keygate.runtime, OPERATOR, null, 'operator');
  return Visitor.signedIn(fixture.dashboardUrl, OPERATOR, home);
}

/**
 * A member of `accountId` and an operator (MEMBER and OPERATOR unless told otherwise), each
 * invited and signed in over plain HTTP as a visitor of their own: the member on
 * `memberHome` (/keys), the operator on `operatorHome` (/accounts). memberAndOperator's
 * set-up without a browser.
 */
export async function signedInVisitors(
  fixture: DashboardFixture,
  accountId: string,
  options: { member?: string; operator?: string; memberHome?: string; operatorHome?: string } = {},
): Promise<{ member: Visitor; operator: Visitor }> {
  const { member = MEMBER, operator = OPERATOR, memberHome = '/keys', operatorHome = '/accounts' } = options;
  await addMember(fixture.keygate.runtime, member, accountId, 'member');
  await addMember(fixture.keygate.runtime, operator, null, 'operator');
  return { member: await Visitor.signedIn(fixture.dashboardUrl, member, memberHome), operator: await Visitor.signedIn(fixture.dashboardUrl, operator, operatorHome) };
}
