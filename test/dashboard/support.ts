/**
 * Shared set-up for the dashboard's browser tests: Debian's Chromium driven by
 * playwright-core (never a downloaded browser), keygate with the dashboard on in front
 * of the demo upstream with a clock the test can move, and small page helpers.
 *
 * Without /usr/bin/chromium the tests are skipped with a printed reason, unless
 * CI=true, where that is a failure.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import axe from 'axe-core';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { createAccount } from '../../src/operations/accounts.js';
import { startDemoUpstream, startKeygate, type TestKeygate } from '../support/keygate.js';
import { IN_CI } from '../support/services.js';
import { tempDir } from '../support/temp.js';

export const CHROMIUM_PATH = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
/**
 * Where the tests write their screenshots: test-results/screenshots (not tracked). To
 * refresh the ones the docs show: KEYGATE_SCREENSHOTS=docs/screenshots npx vitest run test/dashboard
 */
export const SCREENSHOTS = path.resolve(import.meta.dirname, '../..', process.env.KEYGATE_SCREENSHOTS ?? 'test-results/screenshots');
export const PASSWORD = 'correct horse battery staple';
export const PHONE = { width: 375, height: 812 };
export const DESKTOP = { width: 1280, height: 800 };

/** Whether the browser tests can run; prints why not, or throws under CI. Synchronous for describe.skipIf. */
export function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM_PATH)) return true;
  if (IN_CI) throw new Error(`${CHROMIUM_PATH} is missing, and CI=true requires it (apt-get install chromium)`);
  console.warn(`[skip] ${CHROMIUM_PATH} is missing: the dashboard browser tests are skipped (apt-get install chromium; CI=true makes this a failure)`);
  return false;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true });
}

/**
 * A Ranksy-like profile: Bearer rk_live_/rk_test_ keys, scopes, a metered Pro plan and a
 * Free plan without API access. Its id, "ranksy", gives the name pages show: "Ranksy".
 */
export function dashboardProfile(upstreamUrl: string): ConfigInput {
  return {
    name: 'ranksy',
    basePath: '/v1',
    upstream: { url: upstreamUrl, timeout: '10s' },
    keys: { format: 'prefixed', prefix: { live: 'rk_live_', test: 'rk_test_' } },
    auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }] },
    errors: { envelope: 'typed', realm: 'ranksy' },
    scopes: ['projects:read', 'rankings:read'],
    plans: {
      pro: { name: 'Pro', maxKeys: 3, meters: { units: { limit: 1000, unit: 'units' } } },
      free: { name: 'Free', apiAccess: false },
    },
    defaultPlan: 'pro',
    routes: [
      { method: 'GET', path: '/v1/projects', scopes: ['projects:read'], cost: { meter: 'units', perRequest: 1 } },
      { method: 'GET', path: '/v1/rankings', scopes: ['rankings:read'], cost: { meter: 'units', perRecord: 1, records: { header: 'X-Record-Count' }, reserveFromQuery: 'limit' } },
    ],
    dashboard: { enabled: true },
  };
}

/** Real time plus an offset the test moves forward. */
export class TestClock {
  offsetMs = 0;
  readonly now = (): number => Date.now() + this.offsetMs;
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

/** keygate with the dashboard on, as the page helpers below use it. */
export interface Dashboard {
  keygate: TestKeygate;
  clock: TestClock;
  dashboardUrl: string;
}

export interface DashboardFixture extends Dashboard {
  close(): Promise<void>;
}

/** `adjust` changes the profile (a profile switch under test, say). */
export async function startDashboard(dir: string, adjust: (profile: ConfigInput) => ConfigInput = (profile) => profile): Promise<DashboardFixture> {
  const upstream = await startDemoUpstream();
  const clock = new TestClock();
  const keygate = await startKeygate(adjust(dashboardProfile(upstream.url)), { dir, clock: clock.now });
  if (!keygate.dashboardUrl) throw new Error('the dashboard did not start');
  return {
    keygate,
    clock,
    dashboardUrl: keygate.dashboardUrl,
    async close() {
      await keygate.close();
      await upstream.close();
    },
  };
}

/** What useDashboard gives its describe block: the running dashboard and Chromium. */
export interface DashboardSuite extends Dashboard {
  readonly browser: Browser;
  /** The temporary folder the dashboard's database (keygate.db) is in. */
  readonly dir: string;
}

/** Who useDashboard's `signedIn` signs in: MEMBER (of SIGNED_IN_ACCOUNT) or OPERATOR (of no account). */
export type Viewer = 'member' | 'operator';

/** The account useDashboard's `signedIn` makes (on the default plan, Pro) and signs MEMBER in to. */
export const SIGNED_IN_ACCOUNT = 'Acme Analytics';

export interface DashboardOptions<V extends Viewer> {
  /** Changes the profile, as startDashboard takes it. */
  adjust?: (profile: ConfigInput) => ConfigInput;
  /** Who is signed in, each in a browser context of their own (memberAndOperator's, at DESKTOP), once SIGNED_IN_ACCOUNT is made. */
  signedIn: readonly V[];
}

/** useDashboard's suite with `signedIn`: the account made and a page for each viewer asked for, left on their home. */
export type SignedInSuite<V extends Viewer> = DashboardSuite & { readonly accountId: string } & Pick<{ readonly member: Page; readonly operator: Page }, V>;

/**
 * The set-up most browser test files share, registered in the calling describe block: a
 * temporary folder (`label`, its name's start), the dashboard on it (`adjust` changes the
 * profile, as startDashboard takes it) and Chromium, started before the block's own
 * beforeAll hooks (so call it first) and closed after its tests. With `signedIn`, also
 * before those hooks: the account SIGNED_IN_ACCOUNT (`accountId`) and, as memberAndOperator
 * signs them in, MEMBER of it (`member`) and OPERATOR (`operator`), the ones asked for.
 *
 * @example
 * describe.skipIf(!chromiumAvailable())('dashboard: …', () => {
 *   const fixture = useDashboard('keygate-dashboard-example', { signedIn: ['member', 'operator'] });
 *   it('…', async () => {
 *     const { member, operator, accountId } = fixture;
 *     await member.goto('/keys');
 *     await operator.goto(`/accounts/${accountId}`);
 *   });
 * });
 */
export function useDashboard(label: string, adjust?: (profile: ConfigInput) => ConfigInput): DashboardSuite;
export function useDashboard<V extends Viewer>(label: string, options: DashboardOptions<V>): SignedInSuite<V>;
export function useDashboard(label: string, adjustOrOptions?: ((profile: ConfigInput) => ConfigInput) | DashboardOptions<Viewer>): SignedInSuite<Viewer> {
  const { adjust, signedIn = [] } = typeof adjustOrOptions === 'function' ? { adjust: adjustOrOptions } : (adjustOrOptions ?? {});
  const dir = tempDir(label);
  let fixture: DashboardFixture | undefined;
  let browser: Browser | undefined;
  let accountId: string | undefined;
  const pages = new Map<Viewer, Page>();
  beforeAll(async () => {
    fixture = await startDashboard(dir, adjust);
    browser = await launchChromium();
    if (signedIn.length === 0) return;
    accountId = await newAccount(fixture, SIGNED_IN_ACCOUNT);
    // memberAndOperator's order: the member first.
    if (signedIn.includes('member')) pages.set('member', await signedInPage(fixture, browser, MEMBER, accountId));
    if (signedIn.includes('operator')) pages.set('operator', await signedInPage(fixture, browser, OPERATOR, null, { role: 'operator' }));
  });
  afterAll(async () => {
    await browser?.close();
    await fixture?.close();
  });
  // Read at collection time (outside a hook or a test), they would be undefined: say so instead.
  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is not started yet: read it in a hook or a test of the describe block that called useDashboard`);
    return value;
  };
  const signedInAs = (viewer: Viewer): Page => {
    if (!signedIn.includes(viewer)) throw new Error(`the ${viewer} is not signed in: ask useDashboard for it with signedIn: ['${viewer}']`);
    return started(pages.get(viewer), `the ${viewer}'s page`);
  };
  return {
    dir,
    get keygate() {
      return started(fixture, 'the dashboard').keygate;
    },
    get clock() {
      return started(fixture, 'the dashboard').clock;
    },
    get dashboardUrl() {
      return started(fixture, 'the dashboard').dashboardUrl;
    },
    get browser() {
      return started(browser, 'Chromium');
    },
    get accountId() {
      if (signedIn.length === 0) throw new Error('no account is made: ask useDashboard for one with signedIn');
      return started(accountId, 'the signed-in account');
    },
    get member() {
      return signedInAs('member');
    },
    get operator() {
      return signedInAs('operator');
    },
  };
}

export async function newAccount(fixture: Dashboard, name: string, planId = 'pro'): Promise<string> {
  return (await createAccount(fixture.keygate.runtime, { name, planId }, 'test')).id;
}

/** Invites through the admin API, as an operator's script would; returns the link on the running dashboard. */
export async function invite(fixture: Dashboard, email: string, accountId: string | null, role: 'member' | 'operator' = 'member'): Promise<string> {
  const response = await fixture.keygate.admin('/v1/members/invitations', { method: 'POST', body: JSON.stringify({ email, accountId, role }) });
  expect(response.status).toBe(201);
  const { url } = (await response.json()) as { url: string };
  return fixture.dashboardUrl + new URL(url).pathname;
}

/** Accepts an invitation (or a reset link) in the page, which signs in; leaves the page on the viewer's home. */
export async function join(page: Page, inviteUrl: string, email: string, password = PASSWORD): Promise<void> {
  await page.goto(inviteUrl);
  await page.getByLabel('New password', { exact: true }).fill(password);
  await page.getByLabel('Confirm new password').fill(password);
  await page.getByRole('button', { name: 'Set password' }).click();
  // Signed in at once: no sign-in form to type the password into again.
  await page.waitForURL((url) => !url.pathname.startsWith('/invite/') && !url.pathname.startsWith('/sign-in'));
  expect(await textOf(page.getByRole('status'))).toMatch(new RegExp(`^Your (?:new )?password is set\\. You are signed in as ${email.replace(/[.+]/g, '\\$&')}\\.$`));
}

/** The dashboard tests' member of an account and operator of none (memberAndOperator's and signedInVisitors', unless told otherwise; signedInOperator's). */
export const MEMBER = 'ada@acme.example';
export const OPERATOR = 'olga@ops.example';

/**
 * A member of `accountId` and an operator, each signed in in a browser context of their
 * own (`viewport`, `bypassCSP` as newContext takes them) by accepting an invitation in the
 * page (join): each page left on its viewer's home.
 */
export async function memberAndOperator(
  fixture: Dashboard,
  browser: Browser,
  accountId: string,
  options: { member?: string; operator?: string; viewport?: typeof DESKTOP; bypassCSP?: boolean } = {},
): Promise<{ member: Page; operator: Page }> {
  const { member: memberEmail = MEMBER, operator: operatorEmail = OPERATOR, viewport = DESKTOP, bypassCSP = false } = options;
  const member = await signedInPage(fixture, browser, memberEmail, accountId, { viewport, bypassCSP });
  const operator = await signedInPage(fixture, browser, operatorEmail, null, { role: 'operator', viewport, bypassCSP });
  return { member, operator };
}

/**
 * `email`, invited to `accountId` as `role` (an operator: of no account, null), signed in
 * in a browser context of their own (`viewport`, `bypassCSP` as newContext takes them) by
 * accepting the invitation in the page (join): the page left on their home.
 */
export async function signedInPage(
  fixture: Dashboard,
  browser: Browser,
  email: string,
  accountId: string | null,
  options: { role?: 'member' | 'operator'; viewport?: typeof DESKTOP; bypassCSP?: boolean } = {},
): Promise<Page> {
  const { role = 'member', viewport = DESKTOP, bypassCSP = false } = options;
  const page = await (await newContext(browser, fixture.dashboardUrl, viewport, { bypassCSP })).newPage();
  await join(page, await invite(fixture, email, accountId, role), email);
  return page;
}

export async function signIn(page: Page, email: string, password = PASSWORD): Promise<void> {
  if (new URL(page.url()).pathname !== '/sign-in') await page.goto(`${new URL(page.url()).origin}/sign-in`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => !url.pathname.startsWith('/sign-in'));
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/**
 * How long a page action or wait may take before it fails. A fresh-clone CI run (2026-12-07)
 * saw the invitation's Set password click, a POST that spends a scrypt and redirects, still
 * waiting for its navigation after 10 s on a loaded host; 30 s ends a page that never
 * arrives without failing a slow one.
 */
export const PAGE_TIMEOUT = 30_000;

/** `bypassCSP`: lets a test inject a script of its own (axe-core); the pages have no inline style it would let in. */
export async function newContext(browser: Browser, baseURL: string, viewport = DESKTOP, options: { bypassCSP?: boolean } = {}): Promise<BrowserContext> {
  const phone = viewport.width <= PHONE.width;
  const context = await browser.newContext({ baseURL, viewport, reducedMotion: 'reduce', colorScheme: 'light', locale: 'en-US', hasTouch: phone, isMobile: phone, bypassCSP: options.bypassCSP ?? false });
  context.setDefaultTimeout(PAGE_TIMEOUT);
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: baseURL });
  return context;
}

/** Presses Tab until the focused element matches (at most `limit` times); fails if it never does. */
export async function tabTo(page: Page, describe: string, matches: (el: { tag: string; text: string; label: string; name: string; type: string }) => boolean, limit = 40): Promise<void> {
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const el = document.activeElement as HTMLElement | null;
      if (!el) return null;
      const input = el as HTMLInputElement;
      const labelText = input.labels?.[0]?.textContent ?? el.getAttribute('aria-label') ?? '';
      return { tag: el.tagName.toLowerCase(), text: (el.textContent ?? '').trim(), label: labelText.trim(), name: input.name ?? '', type: input.type ?? '' };
    });
    if (focused && matches(focused)) return;
  }
  throw new Error(`could not reach ${describe} with the Tab key`);
}

/** The focus ring of the focused element: it must be visible for keyboard users. */
export async function focusOutline(page: Page): Promise<string> {
  return page.evaluate(() => {
    const el = document.activeElement as HTMLElement;
    const style = getComputedStyle(el);
    return `${style.outlineStyle} ${style.outlineWidth}`;
  });
}

/** The visible text of the first match, once it is there (Playwright's own waiting). */
export async function textOf(locator: Locator): Promise<string> {
  return (await locator.first().innerText({ timeout: PAGE_TIMEOUT })).trim();
}

/** Waits until the first match is visible; throws if it never is. */
export async function shown(locator: Locator): Promise<void> {
  await locator.first().waitFor({ state: 'visible', timeout: PAGE_TIMEOUT });
}

/**
 * Waits (up to PAGE_TIMEOUT) for the page's heading to read `expected` — a click that submits a
 * form returns before the next page has arrived — and fails with the heading it saw.
 */
export async function expectHeading(page: Page, expected: string): Promise<void> {
  const heading = page.locator('h1');
  try {
    await page.waitForFunction((text) => document.querySelector('h1')?.textContent?.trim() === text, expected, { timeout: PAGE_TIMEOUT });
  } catch {
    const seen = await heading.first().textContent({ timeout: 1_000 }).catch(() => null);
    throw new Error(`expected the page heading "${expected}", saw ${seen === null ? 'no heading' : `"${seen.trim()}"`} at ${page.url()}`);
  }
}

/** What the axe-core audit holds every page to: WCAG 2.0 and 2.1 at levels A and AA, and axe's best practices. */
export const AXE_RULESETS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'];

/** One rule a page breaks, as axe-core reports it: `targets`, the selectors of the elements that break it. */
export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  targets: string[];
}

/**
 * Runs axe-core on the page as it is now. axe is injected as an inline script, which the
 * dashboard's Content-Security-Policy refuses: the page's context needs `bypassCSP`.
 */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  await page.addScriptTag({ content: axe.source });
  return page.evaluate(
    async (rulesets) => {
      const { violations } = await (window as unknown as { axe: typeof axe }).axe.run(document, {
        runOnly: rulesets,
        // Only the violations are read: axe then keeps no more than one node of the other result types.
        resultTypes: ['violations'],
      });
      return violations.map((v) => ({ id: v.id, impact: v.impact ?? null, help: v.help, targets: v.nodes.map((node) => node.target.join(' ')) }));
    },
    AXE_RULESETS,
  );
}

/** A violation on one line, for a failure message: `/keys (phone): color-contrast, serious, 2 elements (what the rule asks): .muted | footer`. */
export function axeViolationLine(where: string, violation: AxeViolation): string {
  const count = violation.targets.length;
  return `${where}: ${violation.id}, ${violation.impact ?? 'no impact given'}, ${count} element${count === 1 ? '' : 's'} (${violation.help}): ${violation.targets.join(' | ')}`;
}

/**
 * Posts a form from inside the page (same origin, with its cookies), optionally with the
 * page's own CSRF token (a `_csrf` in `fields` is sent as given). `redirected`: answered
 * with a redirect, which fetch does not follow here and whose status it hides.
 */
export async function postFromPage(
  page: Page,
  url: string,
  fields: Record<string, string>,
  options: { withToken: boolean; contentType?: string },
): Promise<{ status: number; redirected: boolean; text: string }> {
  return page.evaluate(
    async ({ url, fields, withToken, contentType }) => {
      const body = new URLSearchParams(fields);
      const token = document.querySelector<HTMLInputElement>('input[name="_csrf"]')?.value;
      if (withToken && token) body.set('_csrf', token);
      const response = await fetch(url, {
        method: 'POST',
        body: contentType === 'application/json' ? JSON.stringify(Object.fromEntries(body)) : body,
        headers: contentType ? { 'content-type': contentType } : {},
        redirect: 'manual',
      });
      return { status: response.status, redirected: response.type === 'opaqueredirect', text: await response.text() };
    },
    { url, fields, withToken: options.withToken, contentType: options.contentType },
  );
}

/** How far the page is wider than the window (0: nothing to scroll sideways). */
export function horizontalOverflow(page: Page): Promise<number> {
  return page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
}
