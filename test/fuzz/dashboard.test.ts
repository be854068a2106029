/**
 * Property-based fuzzing of the dashboard's sign-in and forms, over raw HTTP: arbitrary
 * form bodies (the fields the forms have with any values, unknown and repeated fields,
 * bodies that are not forms), arbitrary cookies (the dashboard's own names with any
 * values), posted signed out and signed in, with the page's CSRF token or without.
 * Whatever is sent: an answer below 500, nothing logged as an error, and a member can
 * still sign in afterwards.
 *
 * A failure prints fast-check's seed and path: see fuzz-settings.ts to replay it.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';
import { newAccount, startDashboard, type DashboardFixture } from '../dashboard/support.js';
import { signedInVisitors, Visitor } from '../dashboard/visitor.js';
import { exchange, type RawAnswer, type RawRequest } from './raw-http.js';
import { fuzzSettings } from './fuzz-settings.js';

const RUNS = 100;
const MEMBER = 'member@fuzz.example';
const OPERATOR = 'operator@fuzz.example';

/** The fields the dashboard's forms read. */
const FIELD_NAMES = ['email', 'password', 'next', 'name', 'mode', 'scope', 'expiry', 'overlap', 'form_id', 'current', 'confirm', 'plan', 'apiAccess', 'rateLimits', 'meter.units', 'role', '_csrf'];
const COOKIE_NAMES = ['kg_session', '__Host-kg_session', 'kg_form', '__Host-kg_form', 'kg_notice'];

const anyText = (maxLength: number) => fc.string({ unit: 'binary', maxLength });
const fieldValue = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 1, arbitrary: anyText(30) },
  { weight: 1, arbitrary: fc.constantFrom('', 'live', 'test', '*', 'never', '24h', '0', '-1', '1e999', 'NaN', 'pro', 'free', 'on', 'off', '10-per-1s', '5000000', '//evil.example', 'javascript:alert(1)', '/keys', '\u0000') },
  // Long, mostly under the dashboard's 16 KB body limit (past it: 413 before any form is read).
  { weight: 2, arbitrary: fc.integer({ min: 100, max: 20_000 }).map((n) => 'x'.repeat(n)) },
);
/** A form body as sent: fields urlencoded (repeated names allowed), or bytes that are not one. */
const formBody = (csrf: () => string) =>
  fc.oneof(
    // The sign-in form's own fields, each any value, with the token.
    { weight: 3, arbitrary: fc.tuple(fieldValue, fieldValue, fc.option(fieldValue)).map(([email, password, next]) => new URLSearchParams([['email', email], ['password', password], ...(next === null ? [] : [['next', next] as [string, string]]), ['_csrf', csrf()]]).toString()) },
    {
      weight: 5,
      arbitrary: fc
        .tuple(fc.array(fc.tuple(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...FIELD_NAMES) }, { weight: 1, arbitrary: fc.string({ maxLength: 10 }) }), fieldValue), { maxLength: 6 }), fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }))
        .map(([pairs, withToken]) => new URLSearchParams([...pairs, ...(withToken ? [['_csrf', csrf()] as [string, string]] : [])]).toString()),
    },
    { weight: 1, arbitrary: anyText(60) },
    { weight: 1, arbitrary: fc.constantFrom('%', '%zz=1', '=&=&', '&&&', 'a=%FF%FE', '_csrf', '_csrf=&_csrf=x', 'email[]=a', 'email[a]=b', '__proto__=x&constructor=y') },
  );
const contentType = fc.oneof({ weight: 6, arbitrary: fc.constant('application/x-www-form-urlencoded') }, { weight: 1, arbitrary: fc.constantFrom('application/json', 'multipart/form-data; boundary=x', 'text/plain', 'application/x-www-form-urlencoded; charset=latin1', '') });
const cookieHeader = (real: () => string) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constant(real()) },
    { weight: 3, arbitrary: fc.array(fc.tuple(fc.oneof(fc.constantFrom(...COOKIE_NAMES), fc.string({ maxLength: 8 })), fc.oneof(fc.string({ maxLength: 60 }), fc.constantFrom('', '"', 'a.b', 's:x.y', '%', '%zz', 'x'.repeat(5_000)))), { maxLength: 4 }).map((pairs) => pairs.map(([n, v]) => `${n}=${v}`).join('; ')) },
    { weight: 1, arbitrary: fc.tuple(fc.constant(real()), fc.string({ maxLength: 30 })).map(([r, extra]) => `${r}; ${extra}`) },
  );

describe('fuzzing the dashboard', () => {
  const dir = tempDir('fuzz-dashboard');
  let fixture: DashboardFixture;
  let member: Visitor;
  let operator: Visitor;
  let accountId: string;
  let errorLinesBefore = 0;

  beforeAll(async () => {
    fixture = await startDashboard(dir);
    accountId = await newAccount(fixture, 'Fuzz');
    ({ member, operator } = await signedInVisitors(fixture, accountId, { member: MEMBER, operator: OPERATOR }));
  });

  afterAll(async () => {
    await fixture?.close();
  });

  async function send(request: RawRequest): Promise<RawAnswer> {
    // A second and more between requests: the sign-in throttle's pauses have passed.
    fixture.clock.advance(61_000);
    const answer = await exchange(fixture.dashboardUrl, request);
    expect(answer.status, `${request.method} ${request.target} ${(request.body ?? '').slice(0, 200)} → ${answer.head.split('\r\n')[0]}\n${answer.body.slice(0, 500)}`).toBeGreaterThanOrEqual(200);
    expect(answer.status, `${request.method} ${request.target} ${(request.body ?? '').slice(0, 200)} → ${answer.head.split('\r\n')[0]}\n${answer.body.slice(0, 500)}`).toBeLessThan(500);
    return answer;
  }

  async function stillWorks(): Promise<void> {
    const lines = fixture.keygate.logs.lines;
    const errors = lines.slice(errorLinesBefore).filter((line) => (JSON.parse(line) as { level: number }).level >= 50);
    errorLinesBefore = lines.length;
    expect(errors).toEqual([]);
    await Visitor.signedIn(fixture.dashboardUrl, MEMBER, '/keys');
  }

  /** The visitor's cookie header and CSRF token, as its last page left them. */
  const cookiesOf = (visitor: Visitor) => (visitor as unknown as { cookieHeader(): string }).cookieHeader();
  const tokenOf = (visitor: Visitor) => (visitor as unknown as { token: string }).token;

  it('sign-in: any form body and any cookies get an answer below 500', async () => {
    const signedOut = new Visitor(fixture.dashboardUrl);
    await signedOut.get('/sign-in');
    await fc.assert(
      fc.asyncProperty(formBody(() => tokenOf(signedOut)), contentType, cookieHeader(() => cookiesOf(signedOut)), fc.oneof({ weight: 4, arbitrary: fc.constant('/sign-in') }, { weight: 1, arbitrary: fc.constantFrom('/sign-in?next=%2Fkeys', '/sign-in?next=//evil.example', '/sign-out', '/invite/abc', '/password') }), async (body, type, cookie, target) => {
        await send({ method: 'POST', target, headers: [['Content-Type', type], ['Cookie', cookie]], body });
      }),
      fuzzSettings({ numRuns: RUNS }),
    );
    await stillWorks();
  });

  it("signed in: any form body to every form, with the page's token or without, gets an answer below 500", async () => {
    const keyId = async () => {
      const page = await member.get('/keys');
      return /\/keys\/([^/"]+)\/revoke/.exec(page.html)?.[1] ?? 'none';
    };
    const someKey = await keyId();
    const memberTargets = ['/keys', '/password', `/keys/${someKey}/revoke`, `/keys/${someKey}/rotate`, `/keys/${someKey}/limits`, `/keys/${someKey}/edit`, '/keys/nope/revoke', '/keys/%zz/rotate', '/keys/nope/limits', '/keys/nope/edit'];
    const operatorTargets = ['/accounts', `/accounts/${accountId}/plan`, `/accounts/${accountId}/limits`, `/accounts/${accountId}/api-access`, `/accounts/${accountId}/invite`, '/accounts/nope/plan', `/accounts/${accountId}/keys/nope/revoke`, `/accounts/${accountId}/keys/${someKey}/edit`];
    const request = fc.oneof(
      fc.tuple(fc.constant(member), fc.constantFrom(...memberTargets)),
      fc.tuple(fc.constant(operator), fc.constantFrom(...operatorTargets)),
    );
    await fc.assert(
      fc.asyncProperty(
        request.chain(([visitor, target]) => fc.tuple(fc.constant(target), formBody(() => tokenOf(visitor)), contentType, cookieHeader(() => cookiesOf(visitor)))),
        async ([target, body, type, cookie]) => {
          await send({ method: 'POST', target, headers: [['Content-Type', type], ['Cookie', cookie]], body });
        },
      ),
      fuzzSettings({ numRuns: RUNS }),
    );
    await stillWorks();
  });

  it('any cookies on every page get an answer below 500', async () => {
    const pages = ['/', '/sign-in', '/keys', '/keys/new', '/usage', '/password', '/accounts', `/accounts/${accountId}`, '/audit', '/audit?after=%zz', '/nope', '/assets/dashboard.css'];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...pages), fc.oneof(cookieHeader(() => cookiesOf(member)), cookieHeader(() => cookiesOf(operator))), async (target, cookie) => {
        await send({ method: 'GET', target, headers: [['Cookie', cookie]] });
      }),
      fuzzSettings({ numRuns: RUNS }),
    );
    await stillWorks();
  });
});
