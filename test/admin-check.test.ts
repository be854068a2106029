/**
 * keygate as a library over HTTP (the admin API's POST /v1/check and its settle), for a
 * backend that is not Node.js: the same refusals as the gateway, byte for byte, the same
 * charges, and checks never settled released after the settle timeout. A real SQLite
 * file, real sockets.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigObject } from '../src/config/load.js';
import { createLog } from '../src/log.js';
import { serve, type RunningKeygate } from '../src/serve.js';
import { ADMIN_TOKEN, startKeygate, type TestKeygate } from './support/keygate.js';
import { startTestUpstream, type TestUpstream } from './support/upstream.js';
import { tempDir } from './support/temp.js';
import { rawAll } from './support/raw-http.js';
import { requestChecker } from '../src/library.js';

const READ_TOKEN = 'test-read-token-0123456789';
/** The settle timeout the keygate under test is given: the test moves its clock past it. */
const SETTLE_TIMEOUT_MS = 60_000;
/** How many checks it holds waiting for a settle. */
const MAX_PENDING = 3;

describe('POST /v1/check and its settle', () => {
  const dir = tempDir('admin-check');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let now = Date.parse('2026-11-15T10:00:00Z');
  let accountId: string;
  let secret: string;
  /** A key whose plan allows one request an hour. */
  let tightSecret: string;
  /** A key of a second account: its balance is untouched by the other tests. */
  let quietAccount: string;
  let quietSecret: string;

  const json = async (r: Response) => ({ status: r.status, body: (await r.json()) as Record<string, any> });
  const check = (body: unknown) => kg.admin('/v1/check', { method: 'POST', body: JSON.stringify(body) });
  const settle = (id: string, body: unknown) => kg.admin(`/v1/check/${id}/settle`, { method: 'POST', body: JSON.stringify(body) });
  const credits = async (account: string) => ((await json(await kg.admin(`/v1/accounts/${account}/usage`))).body.meters.credits as { usage: number; remaining: number });

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        keys: { prefix: { live: 'sk_live_' } },
        errors: { envelope: 'error', reasons: { missing_key: { message: 'Missing API key', reasonPhrase: 'Key Required' } } },
        plans: {
          scale: { name: 'Scale', meters: { credits: { limit: 1000, unit: 'credits' } } },
          tight: { name: 'Tight', rateLimits: [{ limit: 1, window: '1h' }], meters: { credits: { limit: 1000 } } },
          basic: { meters: { credits: { limit: 1000 } } },
        },
        defaultPlan: 'scale',
        scopes: ['read', 'admin'],
        routes: [
          { method: 'GET', path: '/brands', cost: { meter: 'credits', perRequest: 10 } },
          { method: 'GET', path: '/rows', cost: { meter: 'credits', perRecord: 2, records: { header: 'X-Rows' }, reserveRecords: 5 } },
          { method: 'POST', path: '/admin-only', scopes: ['admin'] },
        ],
        builtins: [{ path: '/me', body: { account: '{{account.id}}' } }],
      },
      { dir, clock: () => now, adminReadToken: READ_TOKEN, check: { settleTimeoutMs: SETTLE_TIMEOUT_MS, maxPending: MAX_PENDING } },
    );
    const account = await json(await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'Acme' }) }));
    accountId = account.body.id;
    secret = (await json(await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId, name: 'backend', scopes: ['read'] }) }))).body.secret;
    const tight = await json(await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'Tight Co', planId: 'tight' }) }));
    tightSecret = (await json(await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId: tight.body.id, name: 't' }) }))).body.secret;
    const quiet = await json(await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'Quiet' }) }));
    quietAccount = quiet.body.id;
    quietSecret = (await json(await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId: quietAccount, name: 'q' }) }))).body.secret;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('needs the admin token: 401 without it, 403 with the read-only one', async () => {
    const body = JSON.stringify({ method: 'GET', url: '/brands', headers: { authorization: `Bearer ${secret}` } });
    for (const path of ['/v1/check', '/v1/check/chk_x/settle']) {
      const none = await fetch(`${kg.adminUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(none.status).toBe(401);
      expect(none.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      const read = await fetch(`${kg.adminUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${READ_TOKEN}` }, body });
      expect(read.status).toBe(403);
    }
    // Nothing was reserved by the refused calls.
    expect(await credits(accountId)).toMatchObject({ usage: 0, remaining: 1000 });
  });

  it('admits a request with its identity, RateLimit headers and a settle id; settle 200 charges the flat cost, settle 500 gives it back', async () => {
    const admitted = await json(await check({ method: 'GET', url: '/brands?page=2', headers: { authorization: `Bearer ${secret}`, accept: 'application/json' } }));
    expect(admitted.status).toBe(200);
    expect(admitted.body).toMatchObject({
      allowed: true,
      url: '/brands?page=2',
      identity: { account: { id: accountId, name: 'Acme' }, key: { name: 'backend', mode: 'live', scopes: ['read'] }, plan: { id: 'scale', name: 'Scale' } },
      route: { name: 'GET /brands', builtin: false },
    });
    expect(admitted.body.settle).toMatch(/^chk_[0-9A-Za-z]{16}$/);
    expect(admitted.body.identity.key.hint).toMatch(/^sk_live_/);
    expect(admitted.body.builtin).toBeUndefined();
    // A flat cost is taken off as the check admits it.
    expect(await credits(accountId)).toMatchObject({ usage: 10, remaining: 990 });
    expect(await json(await settle(admitted.body.settle, { status: 200 }))).toEqual({ status: 200, body: { id: admitted.body.settle, status: 200, charged: true } });
    expect(await credits(accountId)).toMatchObject({ usage: 10, remaining: 990 });

    const failed = await json(await check({ method: 'GET', url: '/brands', headers: { authorization: `Bearer ${secret}` } }));
    expect(await credits(accountId)).toMatchObject({ usage: 20, remaining: 980 });
    expect(await json(await settle(failed.body.settle, { status: 500 }))).toEqual({ status: 200, body: { id: failed.body.settle, status: 500, charged: false } });
    expect(await credits(accountId)).toMatchObject({ usage: 10, remaining: 990 });
  });

  it('charges a per-record route for the records the settle gives, and nothing for a failure', async () => {
    const before = await credits(accountId);
    const rows = await json(await check({ method: 'GET', url: '/rows', headers: { authorization: `Bearer ${secret}` } }));
    expect(rows.body.allowed).toBe(true);
    expect((await settle(rows.body.settle, { status: 200, records: 7 })).status).toBe(200);
    expect(await credits(accountId)).toMatchObject({ usage: before.usage + 14 });

    const failed = await json(await check({ method: 'GET', url: '/rows', headers: { authorization: `Bearer ${secret}` } }));
    expect((await settle(failed.body.settle, { status: 503, records: 7 })).status).toBe(200);
    expect(await credits(accountId)).toMatchObject({ usage: before.usage + 14 });

    // Without records: what the check reserved (reserveRecords 5 × 2).
    const estimated = await json(await check({ method: 'GET', url: '/rows', headers: { authorization: `Bearer ${secret}` } }));
    expect((await settle(estimated.body.settle, { status: 200 })).status).toBe(200);
    expect(await credits(accountId)).toMatchObject({ usage: before.usage + 24 });
    // Counted in /metrics as the gateway's charges are: 10 (the flat cost settled 200 above), 14 and 10.
    expect(await (await kg.admin('/metrics')).text()).toContain('keygate_units_charged_total{meter="credits"} 34');
  });

  it("settles in process as over HTTP: the library's settle resolves to the HTTP settle's answer (but its id), and both charge the same units for the same records", async () => {
    const owner = (await json(await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'Twins' }) }))).body.id as string;
    const key = (await json(await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId: owner, name: 'twin' }) }))).body.secret as string;
    const headers = { host: 'x', authorization: `Bearer ${key}` };
    // The library's check on the same runtime (createKeygate would open the SQLite file a second time).
    const inProcess = requestChecker(kg.runtime);
    for (const [status, records] of [[200, 3], [200, undefined], [503, 4], [404, undefined]] as const) {
      const what = `${status} records=${records}`;
      const start = (await credits(owner)).usage;
      const overHttp = await json(await check({ method: 'GET', url: '/rows', headers }));
      const answer = await json(await settle(overHttp.body.settle as string, { status, ...(records === undefined ? {} : { records }) }));
      const afterHttp = (await credits(owner)).usage;
      const local = await inProcess({ method: 'GET', url: '/rows', headers }, () => {});
      if (!local.allowed) throw new Error(`refused in process: ${local.reason}`);
      const outcome = await local.settle(status, records);
      const afterLocal = (await credits(owner)).usage;
      expect(answer, what).toEqual({ status: 200, body: { id: overHttp.body.settle, ...outcome } });
      expect(outcome, what).toEqual({ status, charged: status === 200 });
      expect(afterLocal - afterHttp, what).toBe(afterHttp - start);
      // A second settle changes nothing and resolves to what the first did.
      expect(await local.settle(200, 1), what).toEqual(outcome);
      expect((await credits(owner)).usage, what).toBe(afterLocal);
    }
    // 3 records × 2, then the reserved 5 × 2, each twice; the failures charge nothing.
    expect((await credits(owner)).usage).toBe(2 * (6 + 10));
  });

  it('names a plan the profile gives no name by its id, as usage and the dashboard do (the answer failed its own schema: a 500)', async () => {
    const account = await json(await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'Basic Co', planId: 'basic' }) }));
    const key = await json(await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId: account.body.id, name: 'b' }) }));
    const admitted = await json(await check({ method: 'GET', url: '/brands', headers: { authorization: `Bearer ${key.body.secret}` } }));
    expect(admitted.status).toBe(200);
    expect(admitted.body).toMatchObject({ allowed: true, identity: { account: { id: account.body.id }, plan: { id: 'basic', name: 'basic' } } });
    expect(await json(await settle(admitted.body.settle, { status: 200 }))).toMatchObject({ status: 200, body: { charged: true } });
  });

  it("answers a built-in endpoint's body, to send as it is", async () => {
    const me = await json(await check({ method: 'GET', url: '/me', headers: { Authorization: `Bearer ${secret}` } }));
    expect(me.body).toMatchObject({ allowed: true, route: { builtin: true }, builtin: { status: 200, contentType: 'application/json; charset=utf-8' } });
    expect(JSON.parse(me.body.builtin.body)).toEqual({ account: accountId });
    expect((await settle(me.body.settle, { status: 200 })).status).toBe(200);
  });

  /** The gateway's answer and the check's refusal for the same request: status, reason phrase, headers and body alike. */
  async function expectSameRefusal(method: string, url: string, headers: Record<string, string>, reason: string): Promise<void> {
    const gateway = await kg.call(url, { method, headers });
    const gatewayBody = Buffer.from(await gateway.arrayBuffer());
    const { status, body } = await json(await check({ method, url, headers }));
    expect(status).toBe(200);
    expect(body.allowed).toBe(false);
    expect(body.reason).toBe(reason);
    const { error } = body;
    expect(error.status).toBe(gateway.status);
    expect(Buffer.from(error.body as string, 'utf8').equals(gatewayBody)).toBe(true);
    if (error.reasonPhrase !== undefined) expect(error.reasonPhrase).toBe(gateway.statusText);
    for (const [name, value] of Object.entries(error.headers as Record<string, string>)) expect([name, gateway.headers.get(name)]).toEqual([name, value]);
  }

  it('refuses as the gateway does, byte for byte: missing, malformed and unknown key, insufficient scope, no route, a key sent twice', async () => {
    await expectSameRefusal('GET', '/brands', {}, 'missing_key');
    await expectSameRefusal('GET', '/brands', { authorization: 'Bearer sk_live_tooshort' }, 'malformed_key');
    await expectSameRefusal('POST', '/admin-only', { authorization: `Bearer ${secret}` }, 'insufficient_scope');
    await expectSameRefusal('GET', '/nowhere', { authorization: `Bearer ${secret}` }, 'no_route');
    const missing = await json(await check({ method: 'GET', url: '/brands', headers: {} }));
    // The profile's own reason phrase, for the backend's status line.
    expect(missing.body.error).toMatchObject({ status: 401, reasonPhrase: 'Key Required', body: '{"error":"Missing API key"}' });
    // Two Authorization headers: refused as the gateway refuses them.
    const twice = await json(await check({ method: 'GET', url: '/brands', headers: { authorization: [`Bearer ${secret}`, `Bearer ${secret}`] } }));
    expect(twice.body).toMatchObject({ allowed: false, reason: 'malformed_key', error: { status: 401 } });
  });

  it('refuses a target holding a control character (CR, LF, NUL, tab, DEL: no request line carries one; the gateway never admits it) as bad_request, in the dialect, never the key back', async () => {
    const gatewayBadRequest = await rawAll(kg.gatewayUrl, 'GET /brands\x01 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(gatewayBadRequest).toMatch(/^HTTP\/1\.1 400 /);
    const answers = [];
    for (const url of ['/brands\r\nX-Injected: 1', '/brands\u0000', '/brands?q=a\nb', '/bra\tnds', '/brands\u007f', `/brands?x=\r&apikey=${secret}`]) {
      const { status, body } = await json(await check({ method: 'GET', url, headers: { authorization: `Bearer ${secret}` } }));
      expect(JSON.stringify(body), url).not.toContain(secret);
      answers.push({ url, status, allowed: body.allowed, reason: body.reason, error: body.error });
    }
    for (const answer of answers) {
      expect(answer, answer.url).toEqual({ url: answer.url, status: 200, allowed: false, reason: 'bad_request', error: { status: 400, headers: { 'content-type': 'application/json; charset=utf-8' }, body: gatewayBadRequest.slice(gatewayBadRequest.indexOf('\r\n\r\n') + 4) } });
    }
    // What a request line does carry is judged as before: a quote, a brace, a percent-escape.
    const admitted = await json(await check({ method: 'GET', url: '/brands?q="{a}"%20b', headers: { authorization: `Bearer ${secret}` } }));
    expect(admitted.body).toMatchObject({ allowed: true });
    await settle(admitted.body.settle as string, { status: 500 });
  });

  /** The gateway's answer to a request line and headers sent as bytes (UTF-8), as no client would send them. */
  async function gatewayAnswer(target: string, hosts: string[], method = 'GET', lines = '') {
    const head = `${method} ${target} HTTP/1.1\r\n${hosts.map((host) => `Host: ${host}\r\n`).join('')}${lines}Authorization: Bearer ${secret}\r\nConnection: close\r\n\r\n`;
    const answer = Buffer.from(await rawAll(kg.gatewayUrl, Buffer.from(head, 'utf8').toString('latin1')), 'latin1').toString('utf8');
    const [statusLine = ''] = answer.split('\r\n');
    return { status: Number(statusLine.split(' ')[1]), contentType: /\r\ncontent-type: ([^\r]*)/i.exec(answer)?.[1], body: answer.slice(answer.indexOf('\r\n\r\n') + 4) };
  }

  it("refuses a target with a space or a character outside ASCII (Node's parser answers 400 before the gateway sees it), and a Host that names no host or comes twice, as bad_request, the gateway's own answer", async () => {
    const cases: { target: string; host: string | string[] }[] = [
      { target: '/brands?q=a b', host: 'x' },
      { target: '/bra nds', host: 'x' },
      { target: '/brands?q=ünïcode', host: 'x' },
      { target: '/ünïcode', host: 'x' },
      { target: '/brands?q=\u{1F600}', host: 'x' },
      { target: '/brands', host: 'a/b?c' },
      { target: '/brands', host: 'a b' },
      { target: '/brands', host: '' },
      { target: '/brands', host: 'user@x' },
      { target: '/brands', host: 'x:65536' },
      { target: '/brands', host: ['x', 'y'] },
    ];
    for (const { target, host } of cases) {
      const what = `${target} Host: ${JSON.stringify(host)}`;
      const gateway = await gatewayAnswer(target, [host].flat());
      expect(gateway.status, what).toBe(400);
      const { status, body } = await json(await check({ method: 'GET', url: target, headers: { host, authorization: `Bearer ${secret}` } }));
      expect({ status, allowed: body.allowed, reason: body.reason, error: body.error }, what).toEqual({
        status: 200,
        allowed: false,
        reason: 'bad_request',
        error: { status: gateway.status, headers: { 'content-type': gateway.contentType }, body: gateway.body },
      });
    }
    // A Host that names a host, with a port or as an IPv6 literal, is taken, as the gateway takes it.
    for (const host of ['api.example.com:8443', '[::1]:80', ['x']]) {
      const admitted = await json(await check({ method: 'GET', url: '/brands?q=a%20b', headers: { host, authorization: `Bearer ${secret}` } }));
      expect(admitted.body, JSON.stringify(host)).toMatchObject({ allowed: true });
      await settle(admitted.body.settle as string, { status: 500 });
    }
  });

  it("refuses a method Node's parser does not read, one it does not know (FOO) or in lower case (get), as bad_request, the gateway's own answer; the methods it reads are judged as before", async () => {
    for (const method of ['FOO', 'get', 'Get', 'PRI', 'G-ET']) {
      const gateway = await gatewayAnswer('/brands', ['x'], method);
      expect(gateway.status, method).toBe(400);
      const { status, body } = await json(await check({ method, url: '/brands', headers: { host: 'x', authorization: `Bearer ${secret}` } }));
      expect({ status, allowed: body.allowed, reason: body.reason, error: body.error }, method).toEqual({
        status: 200,
        allowed: false,
        reason: 'bad_request',
        error: { status: gateway.status, headers: { 'content-type': gateway.contentType }, body: gateway.body },
      });
    }
    // A method Node reads goes on to the routes, at the gateway and in the check alike: GET is
    // served, PROPFIND is a method /brands does not take (405, in the dialect).
    const admitted = await json(await check({ method: 'GET', url: '/brands', headers: { host: 'x', authorization: `Bearer ${secret}` } }));
    expect(admitted.body).toMatchObject({ allowed: true });
    await settle(admitted.body.settle as string, { status: 500 });
    const gateway = await gatewayAnswer('/brands', ['x'], 'PROPFIND');
    const { body } = await json(await check({ method: 'PROPFIND', url: '/brands', headers: { host: 'x', authorization: `Bearer ${secret}` } }));
    expect({ allowed: body.allowed, status: body.error?.status, body: body.error?.body }).toEqual({ allowed: false, status: gateway.status, body: gateway.body });
    expect(gateway.status).toBe(405);
  });

  it('refuses a QUERY whose headers hold no Content-Type (or that is given no headers) as bad_request, the gateway\'s own answer; one with a Content-Type is judged as the gateway judges it', async () => {
    const gateway = await gatewayAnswer('/brands', ['x'], 'QUERY');
    expect(gateway.status).toBe(400);
    const refusal = { status: 200, allowed: false, reason: 'bad_request', error: { status: gateway.status, headers: { 'content-type': gateway.contentType }, body: gateway.body } };
    for (const headers of [{ host: 'x', authorization: `Bearer ${secret}` }, undefined]) {
      const { status, body } = await json(await check({ method: 'QUERY', url: '/brands', ...(headers ? { headers } : {}) }));
      expect({ status, allowed: body.allowed, reason: body.reason, error: body.error }, JSON.stringify(headers)).toEqual(refusal);
    }
    // With its Content-Type, in any case, it goes on to the routes: /brands takes GET only (405, in the dialect).
    const typed = await gatewayAnswer('/brands', ['x'], 'QUERY', 'Content-Type: application/json\r\n');
    expect(typed.status).toBe(405);
    const { body } = await json(await check({ method: 'QUERY', url: '/brands', headers: { host: 'x', 'Content-Type': 'application/json', authorization: `Bearer ${secret}` } }));
    expect({ allowed: body.allowed, status: body.error?.status, body: body.error?.body }).toEqual({ allowed: false, status: typed.status, body: typed.body });
  });

  it('says where a key sent where the profile does not read it went (misplaced: a header, cookie or query parameter by name), never the key; nothing for any other request', async () => {
    const places: [Record<string, string>, string, unknown][] = [
      [{ 'X-API-Key': secret }, '/brands', { in: 'header', name: 'x-api-key' }],
      [{ Cookie: `theme=dark; api_key=${secret}` }, '/brands', { in: 'cookie', name: 'api_key' }],
      [{}, `/brands?page=2&api_key=${secret}`, { in: 'query', name: 'api_key' }],
      [{}, `/brands?${secret}`, { in: 'query', name: '' }],
    ];
    for (const [headers, url, misplaced] of places) {
      const answer = await kg.admin('/v1/check', { method: 'POST', body: JSON.stringify({ method: 'GET', url, headers }) });
      const text = await answer.text();
      expect(JSON.parse(text), url).toEqual({ allowed: false, reason: 'missing_key', error: expect.objectContaining({ status: 401 }), misplaced });
      expect(text).not.toContain(secret.slice('sk_live_'.length));
    }
    // No key anywhere, or a refusal for another reason: no misplaced.
    const none = await json(await check({ method: 'GET', url: '/brands', headers: { 'X-Other': 'x' } }));
    expect(none.body).toEqual({ allowed: false, reason: 'missing_key', error: expect.objectContaining({ status: 401 }) });
    const malformed = await json(await check({ method: 'GET', url: '/brands', headers: { authorization: 'Bearer sk_live_short', 'X-API-Key': secret } }));
    expect(malformed.body).toEqual({ allowed: false, reason: 'malformed_key', error: expect.objectContaining({ status: 401 }) });
  });

  it('refuses an unknown and a revoked key as the gateway does', async () => {
    // A key of the profile's format (its checksum right) that was never issued.
    await expectSameRefusal('GET', '/brands', { authorization: `Bearer ${kg.runtime.keyFormat.generate('live')}` }, 'unknown_key');
    const key = await json(await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId: quietAccount, name: 'gone' }) }));
    expect((await kg.admin(`/v1/keys/${key.body.id}/revoke`, { method: 'POST' })).status).toBe(200);
    await expectSameRefusal('GET', '/brands', { authorization: `Bearer ${key.body.secret}` }, 'revoked_key');
  });

  it('refuses a rate-limited request as the gateway does, RateLimit and Retry-After headers included', async () => {
    const first = await json(await check({ method: 'GET', url: '/brands', headers: { authorization: `Bearer ${tightSecret}` } }));
    expect(first.body.allowed).toBe(true);
    expect(first.body.headers).toHaveProperty('ratelimit');
    expect((await settle(first.body.settle, { status: 200 })).status).toBe(200);
    await expectSameRefusal('GET', '/brands', { authorization: `Bearer ${tightSecret}` }, 'rate_limited');
    const limited = await json(await check({ method: 'GET', url: '/brands', headers: { authorization: `Bearer ${tightSecret}` } }));
    expect(limited.body.error.status).toBe(429);
    expect(limited.body.error.headers).toHaveProperty('retry-after');
  });

  it('answers 404 for a settle id never given, and a second settle says it was settled already, changing nothing', async () => {
    const unknown = await json(await settle('chk_0000000000000000', { status: 200 }));
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ status: 404, title: 'Not Found' });
    expect(unknown.body.detail).toContain('no check chk_0000000000000000 is waiting for a settle');

    const admitted = await json(await check({ method: 'GET', url: '/brands', headers: { authorization: `Bearer ${quietSecret}` } }));
    expect((await settle(admitted.body.settle, { status: 500 })).status).toBe(200);
    expect(await credits(quietAccount)).toMatchObject({ usage: 0 });
    const again = await json(await settle(admitted.body.settle, { status: 200 }));
    expect(again.status).toBe(404);
    expect(again.body.detail).toBe(`check ${admitted.body.settle} was settled already (status 500): a second settle changes nothing`);
    expect(await credits(quietAccount)).toMatchObject({ usage: 0 });
  });

  it('releases a check not settled within the settle timeout, counted in /metrics', async () => {
    const admitted = await json(await check({ method: 'GET', url: '/brands', headers: { authorization: `Bearer ${quietSecret}` } }));
    expect(await credits(quietAccount)).toMatchObject({ usage: 10 });
    now += SETTLE_TIMEOUT_MS - 1;
    // Not yet: a settle now would still count. Another check's call looks at the timeouts.
    const other = await json(await check({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${quietSecret}` } }));
    expect(await credits(quietAccount)).toMatchObject({ usage: 10 });
    now += 2;
    const late = await json(await settle(admitted.body.settle, { status: 200 }));
    expect(late.status).toBe(404);
    expect(late.body.detail).toBe(`check ${admitted.body.settle} was released unsettled, its reservation given back (as status 499), because it was not settled within 60 s: this settle changes nothing`);
    expect(await credits(quietAccount)).toMatchObject({ usage: 0 });
    // The other one, checked later, is still waiting.
    expect((await settle(other.body.settle, { status: 200 })).status).toBe(200);
    const metrics = await (await kg.admin('/metrics')).text();
    expect(metrics).toContain('keygate_checks_released_total{why="timeout"} 1');
  });

  it(`holds at most ${MAX_PENDING} checks waiting: past it the oldest is released, and logged`, async () => {
    const ids: string[] = [];
    for (let i = 0; i <= MAX_PENDING; i++) ids.push((await json(await check({ method: 'GET', url: '/brands', headers: { authorization: `Bearer ${quietSecret}` } }))).body.settle);
    // The first was released as the fourth came: only three are charged.
    expect(await credits(quietAccount)).toMatchObject({ usage: 10 * MAX_PENDING });
    const evicted = await json(await settle(ids[0] as string, { status: 200 }));
    expect(evicted.status).toBe(404);
    expect(evicted.body.detail).toContain('more checks were waiting for their settle than the admin API holds');
    for (const id of ids.slice(1)) expect((await settle(id, { status: 500 })).status).toBe(200);
    expect(await credits(quietAccount)).toMatchObject({ usage: 0 });
    expect(kg.logs.text).toContain(`more than ${MAX_PENDING} checks waiting for their settle: the oldest was released unsettled`);
    expect(await (await kg.admin('/metrics')).text()).toContain('keygate_checks_released_total{why="evicted"} 1');
  });

  it('refuses a request it cannot read with 400 naming the field', async () => {
    const cases: [unknown, string][] = [
      [[], 'body'],
      ['GET /brands', 'body'],
      [{ url: '/brands' }, 'body.method'],
      [{ method: 'GET', url: 'brands?page=2' }, 'body.url: must be the request target as the client sent it: the path and query, starting with /'],
      [{ method: 'GET', url: 'ftp://api.example.com/brands' }, 'body.url: must be the request target as the client sent it'],
      [{ method: 'GET' }, 'body.url'],
      [{ method: 'GET', url: '/brands', headers: { authorization: 5 } }, 'body.headers.authorization: a header value: a string, or an array of strings'],
      [{ method: 'GET', url: '/brands', headers: 'authorization: Bearer x' }, 'body.headers'],
      [{ method: 'GET /x', url: '/brands' }, 'body.method: an HTTP method'],
      [{ method: 'GET', url: '/brands', rawHeaders: [] }, 'rawHeaders'],
      [{ method: 'GET', url: `/${'a'.repeat(70_000)}` }, 'body.url: a path and query of at most 65536 characters'],
    ];
    for (const [body, named] of cases) {
      const r = await json(await check(body));
      expect([body, r.status]).toEqual([body, 400]);
      expect(r.body.detail).toContain(named);
    }
    const huge = await check({ method: 'GET', url: '/brands', headers: { 'x-big': 'a'.repeat(1_100_000) } });
    expect(huge.status).toBe(413);
    const settleCases: [unknown, string][] = [
      [{}, 'body.status'],
      [{ status: '200' }, 'body.status'],
      [{ status: 42 }, 'body.status: an HTTP status, 100 to 599'],
      [{ status: 200, records: -1 }, 'body.records'],
      [{ status: 200, records: 1.5 }, 'body.records'],
    ];
    for (const [body, named] of settleCases) {
      const r = await json(await settle('chk_0000000000000000', body));
      expect([body, r.status]).toEqual([body, 400]);
      expect(r.body.detail).toContain(named);
    }
    // A count that is not one is told the one range the docs give, once, whichever bound it missed.
    for (const records of [-1, 1.5, 1e16]) {
      const r = await json(await settle('chk_0000000000000000', { status: 200, records }));
      expect([records, r.body.detail]).toEqual([records, 'body.records: a whole number from 0 to 999999999999999']);
    }
  });

  it('judges an absolute-form target (a whole URL, as a request line may carry it) by its path and query, as the gateway does', async () => {
    // Served through the gateway, and admitted by the check alike, as /brands is.
    const served = await gatewayAnswer('http://api.example.com/brands?page=2', ['x']);
    expect(served.status).toBe(200);
    for (const url of ['http://api.example.com/brands?page=2', 'HTTPS://api.example.com:8443/brands']) {
      const admitted = await json(await check({ method: 'GET', url, headers: { host: 'x', authorization: `Bearer ${secret}` } }));
      expect([url, admitted.status, admitted.body.allowed]).toEqual([url, 200, true]);
      await settle(admitted.body.settle as string, { status: 500 });
    }
    // Refused by both: userinfo in the URL, a URL without a host; judged by its path: another route's.
    for (const target of ['http://user@api.example.com/brands', 'http:///brands']) {
      const gateway = await gatewayAnswer(target, ['x']);
      expect(gateway.status, target).toBe(400);
      const { status, body } = await json(await check({ method: 'GET', url: target, headers: { host: 'x', authorization: `Bearer ${secret}` } }));
      expect({ status, reason: body.reason, error: body.error }, target).toEqual({ status: 200, reason: 'bad_request', error: { status: 400, headers: { 'content-type': gateway.contentType }, body: gateway.body } });
    }
    const elsewhere = await gatewayAnswer('http://api.example.com/nowhere', ['x']);
    const { body } = await json(await check({ method: 'GET', url: 'http://api.example.com/nowhere', headers: { host: 'x', authorization: `Bearer ${secret}` } }));
    expect({ reason: body.reason, status: body.error?.status, body: body.error?.body }).toEqual({ reason: 'no_route', status: elsewhere.status, body: elsewhere.body });
  });

  it('never writes a key it was given to the log, nor into an error', async () => {
    // A key in the target, where the check is refused for it.
    const r = await json(await check({ method: 'GET', url: `brands?apikey=${secret}`, headers: { authorization: `Bearer ${secret}` } }));
    expect(r.status).toBe(400);
    expect(JSON.stringify(r.body)).not.toContain(secret);
    const inPath = await json(await settle(secret, { status: 200 }));
    expect(inPath.status).toBe(404);
    expect(JSON.stringify(inPath.body)).not.toContain(secret);
    for (const key of [secret, tightSecret, quietSecret]) expect(kg.logs.text).not.toContain(key.slice(8));
  });

  it('releases the checks still waiting when keygate stops, before usage is written out', async () => {
    const pending = await json(await check({ method: 'GET', url: '/brands', headers: { authorization: `Bearer ${quietSecret}` } }));
    expect(pending.body.allowed).toBe(true);
    expect(await credits(quietAccount)).toMatchObject({ usage: 10 });
    const logs = kg.logs;
    await kg.close();
    expect(logs.text).toContain('1 check(s) never settled, released as the admin API closes');
    // Started again on the same file: the flat cost was given back before the balances were written.
    kg = await startKeygate({ upstream: { url: upstream.url }, keys: { prefix: { live: 'sk_live_' } }, plans: { scale: { meters: { credits: { limit: 1000 } } } }, defaultPlan: 'scale' }, { dir, clock: () => now });
    expect(await credits(quietAccount)).toMatchObject({ usage: 0 });
    for (const key of [secret, tightSecret, quietSecret]) expect(logs.text).not.toContain(key.slice(8));
  });
});

describe('POST /v1/check with auth.unknownKeys: counted per end-client address (remoteAddress)', () => {
  let kg: TestKeygate;
  afterAll(async () => {
    await kg?.close();
  });

  it("counts the unknown keys of each remoteAddress: at the limit that address is refused too_many_failures, another is still told unknown_key; a bad address is a 400 naming the field", async () => {
    kg = await startKeygate(
      { upstream: { url: 'http://127.0.0.1:9' }, auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }], unknownKeys: { limit: 3, window: '1m', block: '10m' } } },
      { dir: tempDir('admin-check-unknown-keys'), clock: () => Date.parse('2026-11-15T10:00:00Z') },
    );
    const guess = async (remoteAddress?: string) => {
      const body = { method: 'GET', url: '/rows', headers: { authorization: `Bearer ${kg.runtime.keyFormat.generate('live')}` }, ...(remoteAddress === undefined ? {} : { remoteAddress }) };
      const r = await kg.admin('/v1/check', { method: 'POST', body: JSON.stringify(body) });
      return { status: r.status, body: (await r.json()) as Record<string, any> };
    };
    for (let i = 0; i < 3; i++) expect((await guess('198.51.100.7')).body).toMatchObject({ allowed: false, reason: 'unknown_key' });
    const refused = await guess('198.51.100.7');
    expect(refused.body).toMatchObject({ allowed: false, reason: 'too_many_failures', error: { status: 429, headers: { 'retry-after': '600' } } });
    expect((await guess('198.51.100.8')).body).toMatchObject({ allowed: false, reason: 'unknown_key' });
    // The block is the address's, as the admin API lists it.
    expect(((await (await kg.admin('/v1/address-blocks')).json()) as { blocks: { address: string }[] }).blocks.map((b) => b.address)).toEqual(['198.51.100.7']);
    // Without an address nothing is counted (they would all count against one).
    for (let i = 0; i < 5; i++) expect((await guess()).body).toMatchObject({ allowed: false, reason: 'unknown_key' });
    for (const bad of ['localhost', '198.51.100.7:5000', '']) {
      const r = await guess(bad);
      expect([bad, r.status, r.body.detail]).toEqual([bad, 400, 'body.remoteAddress: an IP address, the client\'s as the backend saw it (192.0.2.7, 2001:db8::1)']);
    }
  });
});

describe('POST /v1/check under gateway: false: a per-record route needs no records (each settle gives the count)', () => {
  const dir = tempDir('admin-check-no-gateway');
  let running: RunningKeygate | undefined;
  afterAll(async () => {
    await running?.close();
  });

  it('serves a profile whose per-record route says no records, and charges what each settle gives (without it, what the check reserved)', async () => {
    const config = parseConfigObject({
      gateway: false,
      store: `sqlite:${path.join(dir, 'keygate.db')}`,
      dashboard: { enabled: false },
      keys: { prefix: { live: 'sk_live_' } },
      plans: { scale: { meters: { rows: { limit: 1000 } } } },
      routes: [{ method: 'GET', path: '/rows', cost: { meter: 'rows', perRecord: 3, reserveRecords: 4 } }],
    });
    running = await serve({ config, file: 'test profile', dir }, { log: createLog({ level: 'silent' }), adminToken: ADMIN_TOKEN, ports: { admin: 0 } });
    const admin = (p: string, body?: unknown) =>
      fetch(`${running?.adminUrl}${p}`, { method: body === undefined ? 'GET' : 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, any> }));
    const accountId = (await admin('/v1/accounts', { name: 'Acme' })).body.id as string;
    const secret = (await admin('/v1/keys', { accountId, name: 'backend' })).body.secret as string;
    const rows = async () => ((await admin(`/v1/accounts/${accountId}/usage`)).body.meters.rows as { usage: number }).usage;
    const checked = async () => (await admin('/v1/check', { method: 'GET', url: '/rows', headers: { authorization: `Bearer ${secret}` } })).body;

    const counted = await checked();
    expect(counted.allowed).toBe(true);
    expect(await admin(`/v1/check/${counted.settle}/settle`, { status: 200, records: 7 })).toEqual({ status: 200, body: { id: counted.settle, status: 200, charged: true } });
    expect(await rows()).toBe(21);
    const estimated = await checked();
    expect((await admin(`/v1/check/${estimated.settle}/settle`, { status: 200 })).status).toBe(200);
    expect(await rows()).toBe(21 + 12);
  });
});
