/**
 * Every denial reason of the pipeline, in every envelope, over real HTTP against a real
 * SQLite file: the status, the body shape and the headers a client sees.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createAccount, deleteAccount, updateAccount } from '../../src/operations/accounts.js';
import { createKey, revokeKey } from '../../src/operations/keys.js';
import { checksum } from '../../src/keys/format.js';

const ENVELOPES = ['jsonapi', 'message', 'error_description', 'error', 'typed', 'problem'] as const;
type Envelope = (typeof ENVELOPES)[number];

/** What a client sees for each reason with the default messages. */
const EXPECTED = {
  missing_key: { status: 401, code: 'missing_key', message: 'Missing API key.', type: 'authentication_error' },
  malformed_key: { status: 401, code: 'invalid_key', message: 'Invalid API key.', type: 'authentication_error' },
  unknown_key: { status: 401, code: 'invalid_key', message: 'Invalid API key.', type: 'authentication_error' },
  revoked_key: { status: 401, code: 'revoked_key', message: 'This API key has been revoked.', type: 'authentication_error' },
  expired_key: { status: 401, code: 'expired_key', message: 'This API key has expired.', type: 'authentication_error' },
  key_not_bound: { status: 401, code: 'key_not_bound', message: 'This API key is not bound to an account.', type: 'authentication_error' },
  api_disabled: { status: 403, code: 'api_disabled', message: 'API access is not enabled for this account.', type: 'permission_error' },
  plan_expired: { status: 403, code: 'plan_expired', message: 'Your plan has expired.', type: 'permission_error' },
  no_route: { status: 404, code: 'not_found', message: 'No such endpoint.', type: 'not_found_error' },
  method_not_allowed: { status: 405, code: 'method_not_allowed', message: 'This endpoint does not accept this method.', type: 'invalid_request_error' },
  insufficient_scope: { status: 403, code: 'insufficient_scope', message: 'This API key lacks the scope this endpoint requires: write.', type: 'permission_error' },
  rate_limited: { status: 429, code: 'rate_limited', message: 'Too many requests. Slow down.', type: 'rate_limit_error' },
  blocked: { status: 429, code: 'blocked', message: 'This API key is temporarily blocked for repeatedly exceeding the rate limit.', type: 'rate_limit_error' },
  invalid_parameter: { status: 400, code: 'invalid_parameter', message: 'The query parameter limit is not valid.', type: 'invalid_request_error' },
  // The meter, its limit and the day its month starts afresh, by the test's clock (2026-11-10).
  insufficient_funds: { status: 402, code: 'insufficient_funds', message: "This request needs more units than are left of the account's 0; they renew on 2026-12-01.", type: 'invalid_request_error' },
  bad_request: { status: 400, code: 'bad_request', message: 'Bad request.', type: 'invalid_request_error' },
  upstream_unavailable: { status: 502, code: 'bad_gateway', message: 'The upstream service is unavailable.', type: 'api_error' },
  upstream_timeout: { status: 504, code: 'gateway_timeout', message: 'The upstream service did not answer in time.', type: 'api_error' },
} as const;
type Reason = keyof typeof EXPECTED;

function expectedBody(envelope: Envelope, reason: Reason, message?: string): unknown {
  const e = message === undefined ? EXPECTED[reason] : { ...EXPECTED[reason], message };
  switch (envelope) {
    case 'jsonapi':
      return { errors: [{ code: e.code, status: e.status, detail: e.message }] };
    case 'message':
      return { message: e.message };
    case 'error_description':
      return { error_description: e.message };
    case 'error':
      return { error: e.message };
    case 'typed':
      return { error: { type: e.type, code: e.code, message: e.message } };
    case 'problem':
      return { type: `https://keygate.dev/problems/${e.code}`, title: expect.any(String), status: e.status, detail: e.message, code: e.code };
  }
}

function profile(envelope: Envelope, upstream: string): ConfigInput {
  return {
    upstream: { url: upstream, timeout: '300ms' },
    basePath: '/v1',
    keys: { prefix: { live: 'kg_live_' } },
    auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }] },
    errors: { envelope },
    scopes: ['read', 'write'],
    plans: {
      open: { rateLimits: [], meters: { units: { limit: 1_000_000 } } },
      off: { apiAccess: false },
      tight: { rateLimits: [{ limit: 1, window: '1h' }] },
      // Windows shorter than the block: the block alone decides Retry-After.
      strict: { rateLimits: [{ limit: 1, window: '1s' }], block: { after: 1, within: '1h', duration: '10m' } },
      team: { rateLimits: [{ limit: 1, window: '1s' }], block: { after: 1, within: '1h', duration: '10m', scope: 'account' } },
      broke: { meters: { units: { limit: 0 } } },
      // No `units` at all: the paid routes are not part of it.
      basic: {},
    },
    defaultPlan: 'open',
    routes: [
      { method: 'GET', path: '/v1/read', scopes: ['read'] },
      { method: 'GET', path: '/v1/write', scopes: ['write'] },
      { method: 'GET', path: '/v1/write/:id', scopes: ['write'] },
      { method: 'GET', path: '/v1/users/@me', scopes: ['write'] },
      { method: 'GET', path: '/v1/paid', cost: { meter: 'units', perRequest: 10 } },
      { method: 'GET', path: '/v1/list', cost: { meter: 'units', perRecord: 1, records: { header: 'X-Records' }, reserveFromQuery: 'limit', reserveRecords: 10 } },
      { path: '/v1/slow' },
    ],
  };
}

describe.each(ENVELOPES)('every denial in the %s envelope', (envelope) => {
  const dir = tempDir(`denials-${envelope}`);
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let deadGateway: TestKeygate;
  let now = Date.parse('2026-11-10T12:00:00Z');
  const secrets = {} as Record<'good' | 'revoked' | 'expiring' | 'unbound' | 'off' | 'expiredPlan' | 'tight' | 'strict' | 'team' | 'broke' | 'basic', string>;
  const ids = {} as Record<keyof typeof secrets, { key: string; account: string }>;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(profile(envelope, upstream.url), { dir, clock: () => now });
    deadGateway = await startKeygate({ ...profile(envelope, 'http://127.0.0.1:9'), store: `sqlite:${dir}/dead.db` }, { dir, clock: () => now });
    const rt = kg.runtime;
    const key = async (plan: string, name: keyof typeof secrets, extra: { scopes?: string[]; expiresAt?: number } = {}) => {
      const account = await createAccount(rt, { name, planId: plan }, 'test');
      const issued = await createKey(rt, { accountId: account.id, name, ...extra }, 'test');
      secrets[name] = issued.secret;
      ids[name] = { key: issued.key.id, account: account.id };
      return { account, issued };
    };
    await key('open', 'good', { scopes: ['read'] });
    await revokeKey(rt, (await key('open', 'revoked')).issued.key.id, 'test');
    await key('open', 'expiring', { expiresAt: now + 1000 });
    await deleteAccount(rt, (await key('open', 'unbound')).account.id, 'test');
    await key('off', 'off');
    await updateAccount(rt, (await key('open', 'expiredPlan')).account.id, { planExpiresAt: now + 1000 }, 'test');
    await key('tight', 'tight');
    await key('strict', 'strict');
    await key('team', 'team');
    await key('broke', 'broke');
    await key('basic', 'basic');
    now += 2000; // the expiring key and the expiring plan are now past their dates
  });

  afterAll(async () => {
    await kg?.close();
    await deadGateway?.close();
    await upstream?.close();
  });

  const call = (path: string, secret?: string, gateway = kg) => gateway.call(path, secret === undefined ? {} : { headers: { authorization: `Bearer ${secret}` } });

  async function expectDenial(response: Response, reason: Reason, message?: string) {
    const text = await response.text();
    expect(response.status, text).toBe(EXPECTED[reason].status);
    expect(JSON.parse(text)).toEqual(expectedBody(envelope, reason, message));
    expect(response.headers.get('content-type')).toMatch(envelope === 'problem' ? /^application\/problem\+json/ : /^application\/json; charset=utf-8$/);
    return response;
  }

  it('admits a good key (the baseline)', async () => {
    expect((await call('/v1/read', secrets.good)).status).toBe(200);
  });

  it('missing_key, with a Bearer challenge', async () => {
    const r = await expectDenial(await call('/v1/read'), 'missing_key');
    expect(r.headers.get('www-authenticate')).toBe('Bearer realm="api"');
  });

  it('malformed_key: a wrong checksum is refused before the store is asked, even with the right key cached', async () => {
    const key = secrets.good;
    // The right key is in the cache (a cached key skips its checksum): its typo is not.
    expect((await call('/v1/read', key)).status).toBe(200);
    expect(kg.runtime.keyCache.get(kg.runtime.hashKey.digest(key), now)).toBeDefined();
    const typo = key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A');
    const r = await expectDenial(await call('/v1/read', typo), 'malformed_key');
    expect(r.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
    // Had the store been asked, the cache would now remember the hash as unknown.
    expect(kg.runtime.keyCache.get(kg.runtime.hashKey.digest(typo), now)).toBeUndefined();
  });

  it('malformed_key: a good key sent by another scheme, or bare, is challenged without an error code (RFC 6750 §3.1); a bad one in the right scheme is invalid_token', async () => {
    for (const authorization of [`Token ${secrets.good}`, secrets.good, `Basic ${Buffer.from(`user:${secrets.good}`).toString('base64')}`]) {
      const r = await expectDenial(await kg.call('/v1/read', { headers: { authorization } }), 'malformed_key');
      expect(r.headers.get('www-authenticate')).toBe('Bearer realm="api"');
    }
    const spaced = await expectDenial(await call('/v1/read', `${secrets.good.slice(0, 10)} ${secrets.good.slice(10)}`), 'malformed_key');
    expect(spaced.headers.get('www-authenticate')).toMatch(/^Bearer realm="api", error="invalid_token"/);
  });

  it('malformed_key: a character outside the alphabet, at the right length, is refused before the store is asked', async () => {
    const key = secrets.good;
    expect((await call('/v1/read', key)).status).toBe(200);
    // Prefix, length and checksum are right (a cached key is checked for the first two
    // only): the alphabet is not.
    for (const char of ['-', '.']) {
      const body = `${key.slice(0, 12)}${char}${key.slice(13, -6)}`;
      const odd = body + checksum(body);
      expect(odd.length).toBe(key.length);
      const r = await expectDenial(await call('/v1/read', odd), 'malformed_key');
      expect(r.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
      expect(kg.runtime.keyCache.get(kg.runtime.hashKey.digest(odd), now)).toBeUndefined();
    }
  });

  it('unknown_key: well-formed but never issued', async () => {
    await expectDenial(await call('/v1/read', kg.runtime.keyFormat.generate('live')), 'unknown_key');
  });

  /** The gateway's log line of the last request refused for `reason`. */
  const lastLogOf = (reason: Reason) =>
    kg.logs.lines.map((l) => JSON.parse(l) as { msg: string; reason?: string; key?: string; account?: string }).findLast((l) => l.msg === 'request' && l.reason === reason);

  /** The account's denials today, by reason, as its usage (dashboard, admin API) shows them. */
  async function denialsOf(accountId: string): Promise<Record<string, number>> {
    await kg.runtime.flush();
    const days = await kg.runtime.store.listUsageDaily(accountId, '2000-01-01', '2999-12-31');
    return Object.fromEntries(days.filter((d) => d.metric === 'denials').map((d) => [d.label, d.value]));
  }

  it('revoked_key, logged with the key and its account (who is still using it), and counted in that account\'s denials', async () => {
    await expectDenial(await call('/v1/read', secrets.revoked), 'revoked_key');
    expect(lastLogOf('revoked_key')).toMatchObject({ key: ids.revoked.key, account: ids.revoked.account });
    await call('/v1/read', secrets.revoked);
    expect(await denialsOf(ids.revoked.account)).toEqual({ revoked_key: 2 });
  });
  it('expired_key, logged with the key and its account', async () => {
    await expectDenial(await call('/v1/read', secrets.expiring), 'expired_key');
    expect(lastLogOf('expired_key')).toMatchObject({ key: ids.expiring.key, account: ids.expiring.account });
    expect(await denialsOf(ids.expiring.account)).toEqual({ expired_key: 1 });
  });
  it('key_not_bound: its account was deleted (logged with the key)', async () => {
    await expectDenial(await call('/v1/read', secrets.unbound), 'key_not_bound');
    expect(lastLogOf('key_not_bound')).toMatchObject({ key: ids.unbound.key });
  });
  it('api_disabled: the plan has no API access', async () => expectDenial(await call('/v1/read', secrets.off), 'api_disabled'));
  it('plan_expired', async () => expectDenial(await call('/v1/read', secrets.expiredPlan), 'plan_expired'));
  it('no_route: outside the routes and outside the base path', async () => {
    await expectDenial(await call('/v1/nothing-here', secrets.good), 'no_route');
    await expectDenial(await call('/elsewhere', secrets.good), 'no_route');
  });
  it('bad_request: a doubled slash, which upstreams may merge (/v1//write would be judged as one route and served as another)', async () => {
    await expectDenial(await call('/v1//read', secrets.good), 'bad_request');
    await expectDenial(await call('/v1//write', secrets.good), 'bad_request');
  });
  it('invalid_parameter: a record count keygate cannot read (not a whole number) is refused before anything is reserved, the parameter named', async () => {
    const before = upstream.received.length;
    for (const limit of ['1e3', '-1', '0x10']) await expectDenial(await call(`/v1/list?limit=${limit}`, secrets.good), 'invalid_parameter');
    expect(upstream.received.length).toBe(before);
  });
  it('method_not_allowed: a known path under another method, with Allow', async () => {
    const r = await expectDenial(await kg.call('/v1/read', { method: 'DELETE', headers: { authorization: `Bearer ${secrets.good}` } }), 'method_not_allowed');
    expect(r.headers.get('allow')).toBe('GET, HEAD');
  });
  it('insufficient_scope: a read key on a write route', async () => expectDenial(await call('/v1/write', secrets.good), 'insufficient_scope'));

  it('insufficient_scope: a reserved character escaped is its route (an upstream that decodes the path serves /v1/users/@me)', async () =>
    expectDenial(await call('/v1/users/%40me', secrets.good), 'insufficient_scope'));
  it('insufficient_scope: a path parameter of 5,000 characters is still its route', async () =>
    expectDenial(await call(`/v1/write/${'a'.repeat(5_000)}`, secrets.good), 'insufficient_scope'));
  it('HEAD is GET without the body: the GET route answers it, with the same scope check', async () => {
    const head = (path: string) => kg.call(path, { method: 'HEAD', headers: { authorization: `Bearer ${secrets.good}` } });
    const served = await head('/v1/read');
    expect(served.status).toBe(200);
    expect(await served.text()).toBe('');
    expect(upstream.received.at(-1)).toMatchObject({ method: 'HEAD', url: '/v1/read' });
    const refused = await head('/v1/write');
    expect(refused.status).toBe(EXPECTED.insufficient_scope.status);
    expect(await refused.text()).toBe('');
  });

  it('rate_limited, with Retry-After and the RateLimit fields', async () => {
    expect((await call('/v1/read', secrets.tight)).status).toBe(200);
    const r = await expectDenial(await call('/v1/read', secrets.tight), 'rate_limited');
    expect(Number(r.headers.get('retry-after'))).toBe(3600);
    expect(r.headers.get('ratelimit-policy')).toBe('"1-per-1h";q=1;w=3600');
    expect(r.headers.get('ratelimit')).toBe('"1-per-1h";r=0;t=3600');
  });

  it('blocked, for 10 minutes after the violation', async () => {
    expect((await call('/v1/read', secrets.strict)).status).toBe(200);
    const r = await expectDenial(await call('/v1/read', secrets.strict), 'blocked');
    expect(r.headers.get('retry-after')).toBe('600');
  });

  it('blocked, when the block is the account\'s (scope: account), says the account is blocked, also to its other keys', async () => {
    const other = (await createKey(kg.runtime, { accountId: ids.team.account, name: 'team 2' }, 'test')).secret;
    const accountBlocked = 'This account is temporarily blocked for repeatedly exceeding the rate limit.';
    expect((await call('/v1/read', secrets.team)).status).toBe(200);
    const r = await expectDenial(await call('/v1/read', secrets.team), 'blocked', accountBlocked);
    expect(r.headers.get('retry-after')).toBe('600');
    await expectDenial(await call('/v1/read', other), 'blocked', accountBlocked);
  });

  it('insufficient_funds', async () => expectDenial(await call('/v1/paid', secrets.broke), 'insufficient_funds'));
  it('insufficient_funds on a plan without the meter says the plan does not include it (no limit, no renewal)', async () => {
    await expectDenial(await call('/v1/paid', secrets.basic), 'insufficient_funds', 'Your plan does not include units.');
    expect((await call('/v1/slow?ms=0', secrets.basic)).status).toBe(200); // the plan itself has API access
  });

  it('bad_request: an undecodable URL', async () => expectDenial(await call('/v1/read%zz', secrets.good), 'bad_request'));

  it('upstream_timeout when the upstream is slower than upstream.timeout', async () => {
    await expectDenial(await call('/v1/slow?ms=10000', secrets.good), 'upstream_timeout');
  });

  it('upstream_unavailable when nothing listens upstream', async () => {
    const account = await createAccount(deadGateway.runtime, { name: 'dead' }, 'test');
    const { secret } = await createKey(deadGateway.runtime, { accountId: account.id, name: 'k', scopes: ['read'] }, 'test');
    const refused = await call('/v1/read', secret, deadGateway);
    await expectDenial(refused, 'upstream_unavailable');
    // An upstream keygate did not start: nothing says when it will be back.
    expect(refused.headers.get('retry-after')).toBeNull();
    // Admitted, then failed upstream: not a refusal in the log, the metrics or the account's usage.
    const line = deadGateway.logs.lines.map((l) => JSON.parse(l) as { msg: string; outcome?: string; reason?: string; account?: string }).findLast((l) => l.msg === 'request');
    expect(line).toMatchObject({ outcome: 'upstream_error', reason: 'upstream_unavailable', account: account.id });
    const metrics = await (await deadGateway.admin('/metrics')).text();
    expect(metrics).toMatch(/keygate_requests_total\{outcome="upstream_error",reason="upstream_unavailable"\} [1-9]/);
    expect(metrics).not.toContain('outcome="denied",reason="upstream_unavailable"');
    await deadGateway.runtime.flush();
    const days = await deadGateway.runtime.store.listUsageDaily(account.id, '2000-01-01', '2999-12-31');
    expect(days.filter((d) => d.metric === 'denials')).toEqual([]);
    expect(days.filter((d) => d.metric === 'requests').map((d) => [d.label, d.value])).toEqual([['5xx', 1]]);
    // The warning names the request, key and account; with the upstream down every request
    // fails, and the warning is written once in 10 s, not once per request.
    for (let i = 0; i < 3; i++) await expectDenial(await call('/v1/read', secret, deadGateway), 'upstream_unavailable');
    const warnings = deadGateway.logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'upstream request failed');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ reqId: expect.any(String), account: account.id, route: '/v1/read', error: { code: 'ECONNREFUSED' } });
    expect(warnings[0]?.key).toMatch(/^key_/);
  });
});
