/**
 * Found in the review of the admin API's refusals (hR2): a value that was given but is of
 * the wrong kind is said so, naming the field, never "required" (as if it were missing) nor
 * zod's own "Invalid input"; a field left out is said to be required; and the OpenAPI
 * document lists what a route answers to any request. Over real HTTP against a real
 * keygate on SQLite.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, startKeygate, type TestKeygate } from './support/keygate.js';
import { startTestUpstream, type TestUpstream } from './support/upstream.js';
import { tempDir } from './support/temp.js';
import { rawAll } from './support/raw-http.js';

describe('admin API refusals of values of the wrong kind', () => {
  const dir = tempDir('review-hR2');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let accountId: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        store: `sqlite:${path.join(dir, 'keygate.db')}`,
        plans: { free: { meters: { credits: { limit: 100 } } } },
        defaultPlan: 'free',
        routes: [{ path: '/*', cost: { meter: 'credits', perRequest: 1 } }],
        // Short, so that a request that stops arriving is answered 408 within the test (30 s by default).
        admin: { listen: { requestTimeout: '2s' } },
      },
      { dir },
    );
    const account = await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'acme' }) });
    expect(account.status).toBe(201);
    accountId = ((await account.json()) as { id: string }).id;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  async function refusal(target: string, method: string, body: string): Promise<string> {
    const response = await kg.admin(target, { method, body });
    expect(response.status, body.slice(0, 200)).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    return ((await response.json()) as { detail: string }).detail;
  }

  it('says a query parameter given twice is given twice, not that a string was expected', async () => {
    const response = await kg.admin('/v1/accounts?q=a&q=b');
    expect(response.status).toBe(400);
    expect(((await response.json()) as { detail: string }).detail).toBe('querystring.q: given 2 times; give it once');
  });

  it('refuses an account or key name of invisible characters alone (a zero-width space), which would show as no name', async () => {
    const invisible = '\u200b\u2060\ufeff';
    expect(await refusal('/v1/accounts', 'POST', JSON.stringify({ name: invisible }))).toBe('an account needs a name that shows: this one has only invisible characters (such as U+200B, a zero-width space)');
    const key = await refusal('/v1/keys', 'POST', JSON.stringify({ accountId, name: '\u200b' }));
    expect(key).toBe('a key needs a name that shows: this one has only invisible characters (such as U+200B, a zero-width space)');
    // Letters of any script, digits and signs show.
    for (const name of ['数据', '٣', '★', 'a\u200bb']) expect((await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId, name }) })).status, name).toBe(201);
  });

  it("says a window's fractional limit is not a whole number, not that it is missing", async () => {
    const window = '{"limit":1.5,"window":"1s"}';
    expect(await refusal('/v1/accounts', 'POST', `{"name":"a","limits":{"rateLimits":[${window}]}}`)).toMatch(/^limits\.rateLimits\[0\]\.limit: expected a whole number, got a number /);
    expect(await refusal(`/v1/accounts/${accountId}`, 'PATCH', `{"limits":{"rateLimits":[${window}]}}`)).toMatch(/^limits\.rateLimits\[0\]\.limit: expected a whole number, got a number /);
    const key = await refusal('/v1/keys', 'POST', `{"accountId":"${accountId}","name":"k","rateLimits":[${window}]}`);
    expect(key).toMatch(/^rateLimits\[0\]\.limit: expected a whole number, got a number /);
  });

  it("says a window's length given as a fraction of a millisecond, or too large a number, is no duration, in keygate's words", async () => {
    const fractional = await refusal('/v1/accounts', 'POST', '{"name":"a","limits":{"rateLimits":[{"limit":5,"window":1.5}]}}');
    expect(fractional).toMatch(/^limits\.rateLimits\[0\]\.window: a duration such as "500ms", "1s", "10m", "24h" or "7d", or a whole number of milliseconds/);
    // 1e309 is read as Infinity by JSON.parse: refused by the route's own schema.
    const huge = await refusal('/v1/accounts', 'POST', '{"name":"a","limits":{"rateLimits":[{"limit":5,"window":1e309}]}}');
    expect(huge).toBe('body.limits.rateLimits.0.window: a duration of at most 36500d (100 years)');
    for (const detail of [fractional, huge]) expect(detail).not.toMatch(/required|Invalid input/);
  });

  it('says a planned call without its count is missing the count', async () => {
    expect(await refusal('/v1/forecast', 'POST', '{"calls":[{"method":"GET","path":"/x"}]}')).toBe('body.calls.0.count: must be given, a whole number from 0 to 9007199254740991');
    // A count given, but not whole, is still told what it must be.
    expect(await refusal('/v1/forecast', 'POST', '{"calls":[{"method":"GET","path":"/x","count":1.5}]}')).toBe('body.calls.0.count: must be a whole number from 0 to 9007199254740991');
  });

  it("refuses a window's name too long for the RateLimit headers, which a Node client could no longer read (UND_ERR_HEADERS_OVERFLOW)", async () => {
    const named = (length: number) => [1, 2, 3, 4, 5, 6].map((s) => ({ limit: 100, window: `${s}s`, name: `w${'x'.repeat(length - 2)}${s}` }));
    expect(await refusal('/v1/accounts', 'POST', JSON.stringify({ name: 'long', limits: { rateLimits: named(3000) } }))).toBe(
      'limits.rateLimits[0].name: at most 64 characters (it is sent in the RateLimit headers of every answer) (a window is { limit: 100, window: "1s", scope: "key" or "account" })',
    );
    expect(await refusal('/v1/keys', 'POST', JSON.stringify({ accountId, name: 'k', rateLimits: named(65).slice(0, 1) }))).toMatch(/^rateLimits\[0\]\.name: at most 64 characters /);
    // The longest a name may be: the gateway's answers still read.
    const account = await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'longest', limits: { rateLimits: named(64) } }) });
    expect(account.status).toBe(201);
    const key = await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId: ((await account.json()) as { id: string }).id, name: 'k', rateLimits: named(64) }) });
    expect(key.status).toBe(201);
    const answer = await kg.call('/x', { headers: { authorization: `Bearer ${((await key.json()) as { secret: string }).secret}` } });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('ratelimit-policy')).toContain(`w${'x'.repeat(62)}1`);
    await answer.text();
  });

  it('says an account\'s overage is true, false or null (follow the plan), where a script sent the CLI\'s "plan"', async () => {
    const expected = 'body.overage: expected true or false, or null to follow the plan';
    expect(await refusal('/v1/accounts', 'POST', '{"name":"a","overage":"plan"}')).toBe(expected);
    expect(await refusal(`/v1/accounts/${accountId}`, 'PATCH', '{"overage":"plan"}')).toBe(expected);
    const following = await kg.admin(`/v1/accounts/${accountId}`, { method: 'PATCH', body: '{"overage":null}' });
    expect([following.status, ((await following.json()) as { overage: unknown }).overage]).toEqual([200, null]);
  });

  it("takes limits.meters: null as a JSON merge patch does: every meter back to the plan's, the account's own windows kept", async () => {
    const patch = (limits: unknown) => kg.admin(`/v1/accounts/${accountId}`, { method: 'PATCH', body: JSON.stringify({ limits }) });
    expect((await patch({ rateLimits: [{ limit: 5, window: '1s' }], meters: { credits: 5 } })).status).toBe(200);
    const cleared = await patch({ meters: null });
    expect(cleared.status).toBe(200);
    expect(await cleared.json()).toMatchObject({ limits: { rateLimits: [{ limit: 5, window: '1s', scope: 'key' }], meters: {} }, effectiveLimits: { meters: { credits: 100 } } });
  });

  it('answers headers over the head limit with 431 problem details, which the document lists for every operation', async () => {
    const response = await kg.admin('/v1/accounts', { headers: { 'x-padding': 'x'.repeat(20_000) } });
    expect(response.status).toBe(431);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const document = (await (await kg.admin('/openapi.json')).json()) as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    for (const [route, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) expect(Object.keys(operation.responses), `${method} ${route}`).toContain('431');
    }
  });

  it('answers a request whose body stops arriving with 408 problem details, which the document lists for every operation', async () => {
    const address = new URL(kg.adminUrl);
    const answer = await rawAll(kg.adminUrl, `POST /v1/accounts HTTP/1.1\r\nHost: ${address.host}\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"na`);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toMatch(/\r\ncontent-type: application\/problem\+json/i);
    const document = (await (await kg.admin('/openapi.json')).json()) as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    for (const [route, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) expect(Object.keys(operation.responses), `${method} ${route}`).toContain('408');
    }
  });

  it('answers a URL over the head limit with 414 problem details, which the document lists for every operation', async () => {
    const response = await kg.admin(`/v1/accounts?q=${'x'.repeat(20_000)}`);
    expect(response.status).toBe(414);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const document = (await (await kg.admin('/openapi.json')).json()) as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    for (const [route, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) expect(Object.keys(operation.responses), `${method} ${route}`).toContain('414');
    }
  });
});
