/**
 * Property-based fuzzing of the admin API (its own listener, the admin token), in front
 * of three example profiles: arbitrary JSON bodies (fields it takes with values of every
 * type and size, unknown fields, `fc.json()` text, JSON that is not an object, bodies that
 * are not JSON) to the routes that create and change accounts, keys, gauges, members and
 * forecasts; arbitrary ids in their paths. Whatever is sent: no 5xx, every 4xx is
 * problem details (RFC 9457) with its status, nothing is logged as an error, and the
 * store still works afterwards (an account and a key are made, read and listed).
 *
 * A failure prints fast-check's seed and path: see fuzz-settings.ts to replay it.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExample, type RunningExample } from '../../examples/support/example.js';
import { ADMIN_TOKEN } from '../support/keygate.js';
import { exchange, type RawAnswer, type RawRequest } from './raw-http.js';
import { fuzzSettings } from './fuzz-settings.js';

const RUNS = 200;

/** Values of every JSON type and a few that stress stores and parsers, for any field. */
const wild = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(null, '', 0, -1, -0, 1.5, 1e308, -1e308, 2 ** 53, 2 ** 63, 'NaN', 'Infinity', '1e999', [], {}, '\u0000', 'x\u0000y', '__proto__', 'constructor', ' ', '\ud83d\udd11'),
  fc.integer({ min: 1_000, max: 70_000 }).map((n) => 'x'.repeat(n)),
  fc.string({ unit: 'binary', maxLength: 40 }),
);
const oddDates = fc.constantFrom('2027-01-31', '2027-01-31T12:00:00Z', '2027-01-31T12:00:00+14:00', '1970-01-01', '0000-01-01', '9999-12-31', '2027-02-30', '+275760-09-13', '2027-01-31T25:00:00Z', '2020-01-01T00:00:00.123456789Z');
const dates = fc.oneof({ weight: 3, arbitrary: fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }).map((d) => d.toISOString()) }, { weight: 1, arbitrary: oddDates });
const amounts = fc.oneof(fc.integer({ min: -5, max: 1_000_000 }), fc.constantFrom(0, 1, 1.5, 999_999_999_999_999, 1e15, 1e16, 2 ** 53 + 1, -0, Number.MAX_VALUE, Number.MIN_VALUE));
const windows = fc.oneof(fc.constantFrom('1s', '10m', '1h', '24h', '7d', '0s', '-1s', '1e9s', '999999999d', '1.5s', 's', '', '1 s', '1S'), fc.integer({ min: -10, max: 10 ** 12 }), fc.double());

/** A field with a value of its own kind most of the time, anything now and then. */
const either = <T,>(own: fc.Arbitrary<T>) => fc.oneof({ weight: 12, arbitrary: own }, { weight: 1, arbitrary: wild });

/** A body of these fields: the required ones mostly there, any of the others, and now and then any subset. */
function fields<M extends Record<string, fc.Arbitrary<unknown>>>(model: M, required: (keyof M & string)[] = []): fc.Arbitrary<Record<string, unknown>> {
  return fc.oneof({ weight: 4, arbitrary: fc.record(model, { requiredKeys: required }) }, { weight: 1, arbitrary: fc.record(model, { requiredKeys: [] }) }) as fc.Arbitrary<Record<string, unknown>>;
}

describe.each(['ranktracker', 'ranksy', 'seranking-data'])('fuzzing the admin API of examples/%s', (name) => {
  let ex: RunningExample;
  let accountIds: string[];
  let keyIds: string[];
  let errorLinesBefore = 0;

  beforeAll(async () => {
    ex = await startExample(name);
    const plan = name === 'trakkr' ? 'scale' : undefined;
    const accounts = [await ex.createAccount('Fuzz one', plan), await ex.createAccount('Fuzz two', plan)];
    accountIds = accounts.map((a) => a.id);
    keyIds = [(await ex.createKey(accountIds[0] as string, 'fuzz', name === 'ranksy' ? { scopes: ['*'] } : {})).id];
  });

  afterAll(async () => {
    await ex?.close();
  });

  async function send(request: RawRequest): Promise<RawAnswer> {
    const answer = await exchange(ex.kg.adminUrl, request);
    const what = `${request.method} ${request.target} ${(request.body ?? '').slice(0, 300)} → ${answer.head.split('\r\n')[0]} ${answer.body.slice(0, 300)}`;
    expect(answer.status, what).toBeGreaterThanOrEqual(200);
    expect(answer.status, what).toBeLessThan(500);
    if (answer.status >= 400 && request.method !== 'HEAD') {
      expect(answer.headers['content-type'], what).toMatch(/^application\/problem\+json/);
      const problem = JSON.parse(answer.body) as Record<string, unknown>;
      expect(problem, what).toMatchObject({ type: expect.any(String), title: expect.any(String), status: answer.status, detail: expect.any(String) });
    }
    return answer;
  }

  /** Nothing logged as an error, and the store still makes, reads and lists accounts and keys. */
  async function storeStillWorks(): Promise<void> {
    const lines = ex.kg.logs.lines;
    const errors = lines.slice(errorLinesBefore).filter((line) => (JSON.parse(line) as { level: number }).level >= 50);
    errorLinesBefore = lines.length;
    expect(errors).toEqual([]);
    const account = await ex.createAccount(`After ${Date.now()}`, name === 'trakkr' ? 'scale' : undefined);
    const key = await ex.createKey(account.id, 'after', name === 'ranksy' ? { scopes: ['*'] } : {});
    expect((await ex.kg.admin(`/v1/keys/${key.id}`)).status).toBe(200);
    expect((await ex.kg.admin(`/v1/accounts?q=${account.id}`)).status).toBe(200);
    accountIds.push(account.id);
    keyIds.push(key.id);
  }

  const json = { 'content-type': 'application/json' };
  const headersOf = (type: string | undefined): [string, string][] => [['Authorization', `Bearer ${ADMIN_TOKEN}`], ...(type === undefined ? [] : ([['Content-Type', type]] as [string, string][]))];

  it('any JSON body to the routes that create and change things: no 5xx, problem details for every refusal', async () => {
    const planIds = Object.keys(ex.shipped.config.plans);
    const meters = [...new Set(Object.values(ex.shipped.config.plans).flatMap((p) => Object.keys(p.meters ?? {})))];
    const scopes = ex.shipped.config.scopes;
    const id = (ids: () => string[]) => fc.oneof({ weight: 8, arbitrary: fc.nat().map((i) => ids()[i % ids().length] as string) }, { weight: 1, arbitrary: fc.string({ maxLength: 30 }) });
    const accountId = id(() => accountIds);
    const keyId = id(() => keyIds);
    const limits = fc.oneof(
      fc.constant(null),
      fc.record(
        {
          rateLimits: either(fc.oneof(fc.constant(null), fc.array(fc.record({ name: either(fc.string()), limit: either(amounts), window: either(windows), scope: either(fc.constantFrom('key', 'account', 'team')) }, { requiredKeys: [] }), { maxLength: 4 }))),
          meters: either(fc.dictionary(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...meters, 'nope', '__proto__') }, { weight: 1, arbitrary: fc.string() }), fc.oneof(amounts, fc.constant(null)), { maxKeys: 3 })),
        },
        { requiredKeys: [] },
      ),
    );
    const scopeList = fc.array(fc.oneof(fc.constantFrom('*', ...scopes), fc.string({ maxLength: 20 })), { maxLength: 4 });
    const account = {
      name: either(fc.oneof(fc.string({ minLength: 1, maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 210 }))),
      planId: either(fc.constantFrom(...planIds, 'nope', '')),
      apiAccess: either(fc.boolean()),
      overage: either(fc.option(fc.boolean())),
      planExpiresAt: either(fc.option(dates)),
      limits: either(limits),
    };
    const key = {
      accountId: either(accountId),
      name: either(fc.oneof(fc.string({ minLength: 1, maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 110 }))),
      mode: either(fc.constantFrom('live', 'test', 'LIVE', '')),
      scopes: either(scopeList),
      expiresAt: either(fc.option(dates)),
    };
    /** Each route, its path with ids filled in, and the body fields it takes. */
    const routes = fc.oneof(
      fc.record({ method: fc.constant('POST'), path: fc.constant('/v1/accounts'), body: fields(account, ['name']) }),
      fc.record({ method: fc.constant('PATCH'), path: accountId.map((a) => `/v1/accounts/${encodeURIComponent(a)}`), body: fields(account) }),
      fc.record({ method: fc.constant('POST'), path: fc.constant('/v1/keys'), body: fields(key, ['accountId', 'name']) }),
      fc.record({
        method: fc.constant('POST'),
        path: fc.constant('/v1/keys/import'),
        body: fields({ ...key, secret: either(fc.oneof(fc.string({ maxLength: 300 }), fc.stringMatching(/^[0-9a-f]{40}$/), fc.stringMatching(/^(tkn_usr_|rk_live_|rk_test_)[0-9A-Za-z]{30}$/))) }, ['accountId', 'name', 'secret']),
      }),
      fc.record({ method: fc.constant('PATCH'), path: keyId.map((k) => `/v1/keys/${encodeURIComponent(k)}`), body: fields({ name: key.name, scopes: key.scopes }) }),
      fc.record({ method: fc.constant('POST'), path: keyId.map((k) => `/v1/keys/${encodeURIComponent(k)}/rotate`), body: fields({ overlap: either(windows) }) }),
      fc.record({ method: fc.constantFrom('POST'), path: keyId.map((k) => `/v1/keys/${encodeURIComponent(k)}/${['revoke', 'unblock'][k.length % 2]}`), body: fc.oneof(fc.constant({}), fc.record({ reason: wild })) }),
      fc.record({
        method: fc.constant('PUT'),
        path: fc.tuple(accountId, fc.oneof(fc.constantFrom(...meters, 'nope'), fc.string({ maxLength: 10 }))).map(([a, m]) => `/v1/accounts/${encodeURIComponent(a)}/gauges/${encodeURIComponent(m)}`),
        body: fields({ value: either(amounts) }, ['value']),
      }),
      fc.record({
        method: fc.constant('POST'),
        path: fc.constant('/v1/forecast'),
        body: fields(
          {
            accountId: either(accountId),
            calls: either(fc.array(fc.record({ method: either(fc.constantFrom('GET', 'POST', 'get', '')), path: either(fc.oneof(fc.constantFrom('/', '/v1/backlinks/all?limit=10', '/api/v1/apps', '/v1/domains?limit=1e9'), fc.string())), count: either(amounts), records: either(amounts) }, { requiredKeys: ['method', 'path', 'count'] }), { minLength: 1, maxLength: 3 })),
          },
          ['calls'],
        ),
      }),
      fc.record({ method: fc.constant('POST'), path: fc.constant('/v1/members/invitations'), body: fields({ email: either(fc.oneof(fc.emailAddress(), fc.string())), accountId: either(fc.option(accountId)), role: either(fc.constantFrom('member', 'operator', 'admin')) }, ['email']) }),
      fc.record({ method: fc.constant('POST'), path: fc.constant('/v1/members/password-resets'), body: fields({ email: either(fc.oneof(fc.emailAddress(), fc.string())) }, ['email']) }),
    );
    /** The body as sent: the object, with an unknown field, as other JSON, or not JSON at all. */
    const text = (body: unknown) =>
      fc.oneof(
        { weight: 6, arbitrary: fc.constant(JSON.stringify(body)) },
        { weight: 1, arbitrary: fc.tuple(fc.string({ maxLength: 10 }), wild).map(([field, value]) => JSON.stringify({ ...(body as object), [field]: value })) },
        { weight: 1, arbitrary: fc.json({ maxDepth: 3 }) },
        { weight: 1, arbitrary: fc.constantFrom('', ' ', 'null', '[]', '"x"', '{', '{"name":', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}', '{"name":"a","name":"b"}', '\ufeff{}', '{"name":"\\ud800"}') },
        { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 50 }) },
      );
    const type = fc.oneof({ weight: 8, arbitrary: fc.constant(json['content-type']) }, { weight: 1, arbitrary: fc.constantFrom(undefined, 'application/json; charset=latin1', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=UTF-8', 'application/merge-patch+json', '') });
    const request = routes.chain((r) => fc.tuple(fc.constant(r), text(r.body), type));
    await fc.assert(
      fc.asyncProperty(request, async ([route, body, contentType]) => {
        const answer = await send({ method: route.method, target: route.path, headers: headersOf(contentType), body });
        // What was made is used again: later runs act on created keys and accounts.
        if (answer.status === 201 && route.path === '/v1/keys') keyIds.push((JSON.parse(answer.body) as { id: string }).id);
        if (answer.status === 201 && route.path === '/v1/accounts') accountIds.push((JSON.parse(answer.body) as { id: string }).id);
      }),
      fuzzSettings({ numRuns: RUNS }),
    );
    await storeStillWorks();
  });

  it('any id in a path, to every route that takes one: no 5xx, problem details for every refusal', async () => {
    const rawId = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 40 }).map(encodeURIComponent),
      fc.constantFrom('', '.', '..', '%2e%2e', '%2F', '%00', '%', '%zz', '%ff', '%C0%AF', 'null', 'undefined', '__proto__', 'constructor', '0', '-1', '1e999', "'; DROP TABLE keys; --", '*', '%20', '+'),
      fc.integer({ min: 100, max: 9_000 }).map((n) => 'k'.repeat(n)),
      fc.stringMatching(/^[\x21-\x7e]{1,20}$/).filter((s) => !s.includes('#') && !s.includes('?')),
    );
    const route = fc.constantFrom(
      ['GET', '/v1/accounts/{}'],
      ['DELETE', '/v1/accounts/{}'],
      ['GET', '/v1/accounts/{}/usage'],
      ['GET', '/v1/accounts/{}/usage/daily'],
      ['GET', '/v1/keys/{}'],
      ['POST', '/v1/keys/{}/revoke'],
      ['POST', '/v1/keys/{}/unblock'],
      ['POST', '/v1/keys/{}/rotate'],
      ['DELETE', '/v1/members/{}'],
      ['POST', '/v1/members/{}/unlock'],
      ['GET', '/v1/keys?accountId={}'],
      ['GET', '/v1/accounts?q={}'],
      ['GET', '/v1/accounts?after={}&limit=2'],
      ['GET', '/v1/address-blocks?after={}&limit=2'],
      ['GET', '/v1/members?email={}'],
      ['GET', '/v1/audit?accountId={}'],
    );
    await fc.assert(
      fc.asyncProperty(route, rawId, async ([method, template], id) => {
        await send({ method, target: template.replace('{}', id), headers: headersOf(undefined) });
      }),
      fuzzSettings({ numRuns: RUNS }),
    );
    await storeStillWorks();
  });
});
