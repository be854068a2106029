/**
 * shared/seeds/003 (SE Ranking Data API: keys, authentication, rate limits, unit quota,
 * errors), walked top to bottom against examples/seranking-data: the shipped keygate.yaml
 * and upstream.mjs on loopback, a real SQLite file, keys and account changes made with
 * the `keygate` CLI, real HTTP, and a controlled clock for the rolling one-second window.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlledClock, rawRequest, read, readExact, runServeCommand, startExample, startFailingExamples, type AccountOut, type KeyOut, type RunningExample } from '../support/example.js';

/** keygate's own answers (errors, the subscription endpoint) come as the upstream's do: one API, one Content-Type. */
const JSON_TYPE = 'application/json';
const UPSTREAM_TYPE = 'application/json';
const CONTACT = 'To get an API key, please contact us at api@seranking.com.';
const NO_TOKEN = { status: 400, type: JSON_TYPE, body: { error_description: 'No token' } };
const NOT_VALID = { status: 400, type: JSON_TYPE, body: { error_description: `Authentication failed. Please make sure your API key is valid and active. ${CONTACT}` } };
const NOT_ENABLED = { status: 400, type: JSON_TYPE, body: { error_description: `Authentication failed. Please ensure you have a valid, enabled API key. ${CONTACT}` } };
const INSUFFICIENT_FUNDS = {
  status: 400,
  type: JSON_TYPE,
  body: { error_description: 'Insufficient funds, API key is temporarily disabled. Please make a payment to enable you API key or contact us at api@seranking.com.' },
};
const LICENSE_EXPIRED = { status: 403, type: JSON_TYPE, body: { error_description: 'License expired' } };
const CALL_RATE = { status: 429, type: JSON_TYPE, body: { error_description: 'Call rate limit reached.' } };
const NOT_FOUND = { status: 400, type: JSON_TYPE, body: { error_description: 'The requested resource could not be found.' } };
const DAY = 86_400_000;

/** -H 'Authorization: Token YOUR_API_KEY' */
const token = (key: string, init: RequestInit = {}): RequestInit => ({ ...init, headers: { authorization: `Token ${key}`, ...(init.headers as Record<string, string>) } });
/** -H 'Content-Type: application/json' -d '...' */
const post = (key: string, body: unknown): RequestInit => token(key, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const domains = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `site${from + i}.example.com`);

interface Subscription {
  subscription_info: { status: string; start_date: string; expiration_date: string; units_limit: number; units_left: number };
}
interface Usage {
  meters: { units: { usage: number; limit: number; remaining: number; overage: number; overageAllowed: boolean } };
}
interface ForecastOut {
  lines: { method: string; path: string; count: number; records?: number; unitsPerCall: number; units: number; meter: string | null }[];
  totals: Record<string, number>;
  total: number;
  balance?: Record<string, { remaining: number; covered: boolean; overageAllowed: boolean; inPlan: boolean }>;
  covered?: boolean;
}

describe('SE Ranking Data API: shared/seeds/003 against examples/seranking-data', () => {
  const clock = controlledClock();
  let ex: RunningExample;
  let account: AccountOut;
  let key: KeyOut;

  /** One request 100 ms after the previous one: never more than 10 in a rolling second. */
  const paced = (path: string, init?: RequestInit) => {
    clock.advance(100);
    return ex.call(path, init);
  };
  const unitsLeft = async (secret: string) => ((await read(await paced('/v1/account/subscription', token(secret)))).body as Subscription).subscription_info.units_left;
  /** Units a request cost: units_left before minus after. */
  const costOf = async (secret: string, path: string, init: RequestInit) => {
    const before = await unitsLeft(secret);
    const response = await read(await paced(path, init));
    return { ...response, units: before - (await unitsLeft(secret)) };
  };

  beforeAll(async () => {
    ex = await startExample('seranking-data', { clock });
  });
  afterAll(async () => {
    await ex?.close();
  });

  describe('Creating an API Key', () => {
    it('"Create API Key" (the CLI) issues one 40-hex-character key', async () => {
      account = await ex.cliJson<AccountOut>(['accounts', 'create', '--name', 'Acme Data']);
      expect(account.planId).toBe('units_1m');
      key = await ex.cliJson<KeyOut>(['keys', 'create', '--account', account.id, '--name', 'Data API']);
      expect(key.secret).toMatch(/^[0-9a-f]{40}$/);
    });

    it('you can issue a single key per account', async () => {
      const second = await ex.cli(['keys', 'create', '--account', account.id, '--name', 'Second']);
      expect(second.code).toBe(1);
      expect(second.stderr).toContain('the 1M units plan allows 1 key per account; revoke one first');
      expect(second.stdout).toBe('');
    });

    it('replacing the key: a rotation revokes the old key at once, and there is still one key', async () => {
      const spare = await ex.createAccount('Rotating Co');
      const first = await ex.createKey(spare.id, 'Data API');
      // No overlap asked for: none given (elsewhere the default is 24h).
      const rotated = await ex.cliJson<KeyOut & { previous: { status: string } }>(['keys', 'rotate', first.id]);
      expect(rotated.previous.status).toBe('revoked');
      expect(await read(await paced('/v1/account/subscription', token(first.secret)))).toEqual(NOT_ENABLED);
      expect((await paced('/v1/account/subscription', token(rotated.secret))).status).toBe(200);
      const keys = await ex.cliJson<{ status: string }[]>(['keys', 'list', '--account', spare.id]);
      expect(keys.filter((k) => k.status === 'active')).toHaveLength(1);
    });

    it('a single key even while rotating: an overlap, which would leave two keys working, is refused', async () => {
      const spare = await ex.createAccount('Overlapping Co');
      const first = await ex.createKey(spare.id, 'Data API');
      const refused = await ex.cli(['keys', 'rotate', first.id, '--overlap', '1h']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('this API replaces a rotated key at once (one working key per account)');
      expect(refused.stdout).toBe('');
      // Nothing changed: the key still works, and it is still the only one.
      expect((await paced('/v1/account/subscription', token(first.secret))).status).toBe(200);
      const keys = await ex.cliJson<{ id: string; status: string }[]>(['keys', 'list', '--account', spare.id]);
      expect(keys.map((k) => [k.id, k.status])).toEqual([[first.id, 'active']]);
    });
  });

  describe('Authentication', () => {
    it('Method 1: GET /v1/account/subscription with Authorization: Token KEY → 200 OK', async () => {
      const response = await read(await paced('/v1/account/subscription', { method: 'GET', headers: { Authorization: `Token ${key.secret}` } }));
      expect(response.status).toBe(200);
      expect(response.type).toBe(JSON_TYPE);
      const info = (response.body as Subscription).subscription_info;
      expect(info).toEqual({
        status: 'active',
        start_date: expect.stringMatching(/^\d{4}-\d{2}-01 00:00:00$/) as unknown,
        expiration_date: expect.stringMatching(/^\d{4}-\d{2}-01 00:00:00$/) as unknown,
        units_limit: 1_000_000,
        units_left: 1_000_000,
      });
    });

    it('Method 2: the apikey query parameter', async () => {
      const response = await read(await paced(`/v1/account/subscription?apikey=${key.secret}`, { method: 'GET' }));
      expect(response.status).toBe(200);
      expect((response.body as Subscription).subscription_info.units_left).toBe(1_000_000);
    });

    it('the example POST /v1/backlinks/summary {"target":"seranking.com","mode":"host"} with the same header', async () => {
      const response = await read(await paced('/v1/backlinks/summary', post(key.secret, { target: 'seranking.com', mode: 'host' })));
      expect(response.status).toBe(200);
      expect(response.type).toBe(UPSTREAM_TYPE);
      expect((response.body as { summary: { target: string }[] }).summary.map((s) => s.target)).toEqual(['seranking.com']);
      // ...and through the apikey parameter, which the upstream never sees (it would answer 500).
      expect((await paced(`/v1/backlinks/summary?apikey=${key.secret}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"target":"seranking.com"}' })).status).toBe(200);
    });

    it('a POST body is read as JSON even without Content-Type: application/json; one that is not JSON is Parameter body is invalid.', async () => {
      const untyped = await read(await paced('/v1/backlinks/summary', token(key.secret, { method: 'POST', body: '{"target": "seranking.com", "mode": "host"}' })));
      expect(untyped.status).toBe(200);
      expect((untyped.body as { summary: { target: string }[] }).summary.map((s) => s.target)).toEqual(['seranking.com']);
      expect(await read(await paced('/v1/backlinks/summary', token(key.secret, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"target": ' })))).toEqual({
        status: 400,
        type: UPSTREAM_TYPE,
        body: { error_description: 'Parameter body is invalid.' },
      });
    });

    it('all requests must be authenticated: no key is 400 No token, a wrong key 400 Authentication failed', async () => {
      for (const path of ['/v1/account/subscription', '/v1/backlinks/summary', '/v1/domain/overview?domain=a.com']) {
        expect(await read(await paced(path)), path).toEqual(NO_TOKEN);
        expect(await read(await paced(path, token('0123456789abcdef0123456789abcdef01234567'))), path).toEqual(NOT_VALID);
      }
      expect(await read(await paced('/v1/account/subscription?apikey='))).toEqual(NO_TOKEN);
      expect(await read(await paced('/v1/account/subscription', { headers: { authorization: 'Token' } }))).toEqual(NO_TOKEN);
      expect(await read(await paced('/v1/account/subscription', token(key.secret.slice(1))))).toEqual(NOT_VALID);
      expect(await read(await paced('/v1/account/subscription', { headers: { authorization: `Bearer ${key.secret}` } }))).toEqual(NOT_VALID);
      expect(await read(await paced('/v1/account/subscription?apikey=YOUR_API_KEY'))).toEqual(NOT_VALID);
    });

    it('a revoked key, or an account whose API key was disabled by the operator: "a valid, enabled API key"', async () => {
      const other = await ex.createAccount('Disabled Co');
      const otherKey = await ex.createKey(other.id, 'Data API');
      expect((await paced('/v1/account/subscription', token(otherKey.secret))).status).toBe(200);
      await ex.cliOk(['accounts', 'update', other.id, '--api-access', 'off']);
      expect(await read(await paced('/v1/account/subscription', token(otherKey.secret)))).toEqual(NOT_ENABLED);
      await ex.cliOk(['accounts', 'update', other.id, '--api-access', 'on']);
      expect((await paced('/v1/account/subscription', token(otherKey.secret))).status).toBe(200);
      await ex.revokeKey(otherKey.id);
      expect(await read(await paced('/v1/account/subscription', token(otherKey.secret)))).toEqual(NOT_ENABLED);
    });
  });

  describe('Regional Database Codes', () => {
    /** The document's table, row by row, in its order (ISO 3166-1 alpha-2, and ww for worldwide). */
    const CODES = `ae af ag ai al am ao ar as at au aw az ba bb bd be bf bg bh bi bj bn bo br bs bt bw by bz ca cd cf cg ch ci ck cl cm cn co cr cu cv cy cz
      de dj dk dm do dz ec ee eg es et fi fj fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gt gu gy hk hn hr ht hu id ie il im in iq is it je jm jo jp
      ke kg kh ki kn kr kw ky kz la lb lc li lk ls lt lu lv ly ma mc md me mg mk ml mm mn mq mr ms mt mu mv mw mx my mz na nc ne ng ni nl no np nr nu nz om
      pa pe pf pg ph pk pl pn pr ps pt py qa re ro rs ru rw sa sb sc se sg sh si sk sl sm sn so sr st sv td tg th tj tk tl tm tn to tr tt tw tz ua ug us uy
      uz vc ve vg vi vn vu ws ye yt za zm zw ww`.split(/\s+/);

    let regionalKey: KeyOut;
    beforeAll(async () => {
      regionalKey = await ex.createKey((await ex.createAccount('Regional Co')).id, 'Data API');
    });

    it('every code of the table, and the alias worldwide, is a source the API answers from', async () => {
      expect(CODES).toHaveLength(210);
      for (const code of [...CODES, 'worldwide']) {
        const answer = await read(await paced(`/v1/domain/overview?domain=seranking.com&source=${code}`, token(regionalKey.secret)));
        expect([answer.status, (answer.body as { source: string }).source], code).toEqual([200, code]);
      }
    });

    it('"If a code you send is not supported, the API returns 400 Invalid source."', async () => {
      for (const code of ['xx', 'uk', 'eu', 'usa', 'w']) {
        expect(await read(await paced(`/v1/domain/overview?domain=seranking.com&source=${code}`, token(regionalKey.secret))), code).toEqual({
          status: 400,
          type: UPSTREAM_TYPE,
          body: { error_description: 'Invalid source' },
        });
      }
    });
  });

  describe('Rate Limits: 10 requests per second, rolling, across all endpoints', () => {
    it('the 11th request inside one second gets 429 Call rate limit reached.', async () => {
      clock.advance(1_000);
      for (let i = 0; i < 10; i++) expect((await ex.call('/v1/account/subscription', token(key.secret))).status).toBe(200);
      const refused = await ex.call('/v1/backlinks/summary', post(key.secret, { target: 'seranking.com' }));
      expect(await read(refused)).toEqual(CALL_RATE);
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(refused.headers.get('ratelimit-policy')).toBe('"10-per-1s";q=10;w=1');
    });

    it('the window rolls: requests leave it one second after they were made, not at the top of a second', async () => {
      clock.advance(1_000);
      const start = clock.now();
      for (let i = 0; i < 5; i++) expect((await ex.call('/v1/account/subscription', token(key.secret))).status).toBe(200);
      clock.advance(600);
      for (let i = 0; i < 5; i++) expect((await ex.call('/v1/account/subscription', token(key.secret))).status).toBe(200);
      clock.advance(300); // start + 900: all ten are still inside the last second
      expect(await read(await ex.call('/v1/account/subscription', token(key.secret)))).toEqual(CALL_RATE);
      clock.advance(100); // start + 1000: the first five have left the window
      expect(clock.now() - start).toBe(1_000);
      for (let i = 0; i < 5; i++) expect((await ex.call('/v1/account/subscription', token(key.secret))).status).toBe(200);
      expect(await read(await ex.call('/v1/account/subscription', token(key.secret)))).toEqual(CALL_RATE);
    });

    it('exactly at the limit: one request every 100 ms (10 in every rolling second, never an 11th) is always served', async () => {
      const steady = await ex.createKey((await ex.createAccount('Steady Co')).id, 'Data API');
      clock.advance(1_000);
      const statuses = new Set<number>();
      for (let i = 0; i < 100; i++) {
        clock.advance(100);
        const response = await ex.call('/v1/account/subscription', token(steady.secret));
        await response.arrayBuffer();
        statuses.add(response.status);
      }
      expect([...statuses]).toEqual([200]);
      clock.advance(1_000);
    });

    it('polling /export/status is subject to the same 10 rps ceiling', async () => {
      clock.advance(1_000);
      const task = (await read(await ex.call('/v1/backlinks/export', post(key.secret, { target: 'seranking.com' })))).body as { task_id: string };
      for (let i = 0; i < 9; i++) expect((await ex.call(`/v1/backlinks/export/status?task_id=${task.task_id}`, token(key.secret))).status).toBe(200);
      expect(await read(await ex.call(`/v1/backlinks/export/status?task_id=${task.task_id}`, token(key.secret)))).toEqual(CALL_RATE);
      clock.advance(1_000);
    });

    it('"cumulative traffic from every thread, worker or server": of 20 requests sent at once on separate connections, across endpoints, 10 are served and only those are charged', async () => {
      const busy = await ex.createAccount('Many Workers Co');
      const busyKey = await ex.createKey(busy.id, 'Data API');
      clock.advance(1_000);
      const before = await unitsLeft(busyKey.secret);
      clock.advance(1_000);
      // Ten workers ask for a summary (100 units each), ten for the subscription (free), all at one instant.
      const answers = await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const response = await ex.call(
            i % 2 === 0 ? '/v1/backlinks/summary' : '/v1/account/subscription',
            i % 2 === 0 ? post(busyKey.secret, { target: 'seranking.com' }) : token(busyKey.secret),
          );
          return { path: new URL(response.url).pathname, ...(await read(response)) };
        }),
      );
      const served = answers.filter((a) => a.status === 200);
      const refused = answers.filter((a) => a.status !== 200);
      expect(served).toHaveLength(10);
      expect(refused).toHaveLength(10);
      for (const answer of refused) expect({ status: answer.status, type: answer.type, body: answer.body }).toEqual(CALL_RATE);
      const summaries = served.filter((a) => a.path === '/v1/backlinks/summary').length;
      clock.advance(1_000);
      expect(before - (await unitsLeft(busyKey.secret))).toBe(summaries * 100);
      clock.advance(1_000);
    });

    it('the limit is per API key: another account is not slowed down', async () => {
      const other = await ex.createAccount('Neighbour');
      const otherKey = await ex.createKey(other.id, 'Data API');
      for (let i = 0; i < 11; i++) await ex.call('/v1/account/subscription', token(key.secret));
      for (let i = 0; i < 10; i++) expect((await ex.call('/v1/account/subscription', token(otherKey.secret))).status).toBe(200);
      clock.advance(1_000);
    });
  });

  describe('Unit quota: only successful (2xx) requests consume units', () => {
    let fresh: KeyOut;
    beforeAll(async () => {
      const meterAccount = await ex.createAccount('Meter Co');
      fresh = await ex.createKey(meterAccount.id, 'Data API');
    });

    it('cost per record: summary is 100 units per target returned', async () => {
      expect((await costOf(fresh.secret, '/v1/backlinks/summary', post(fresh.secret, { target: 'seranking.com', mode: 'host' }))).units).toBe(100);
      const three = await costOf(fresh.secret, '/v1/backlinks/summary', post(fresh.secret, { target: domains(3) }));
      expect((three.body as { summary: unknown[] }).summary).toHaveLength(3);
      expect(three.units).toBe(300);
    });

    it('cost per record: a list is charged for the records it returned, whatever the limit asked for', async () => {
      const five = await costOf(fresh.secret, '/v1/backlinks/all?target=seranking.com&limit=5', token(fresh.secret));
      expect((five.body as { all: unknown[] }).all).toHaveLength(5);
      expect(five.units).toBe(5);
      // limit=10000 reserves 10000 units, but the target has fewer backlinks: only those are charged.
      const many = await costOf(fresh.secret, '/v1/backlinks/all?target=seranking.com&limit=10000', token(fresh.secret));
      const returned = (many.body as { all: unknown[] }).all.length;
      expect(returned).toBeGreaterThan(5);
      expect(returned).toBeLessThan(500);
      expect(many.units).toBe(returned);
      // anchors and refdomains: 1 per record; count and metrics: 100 per target.
      const anchors = await costOf(fresh.secret, '/v1/backlinks/anchors?target=example.org&limit=7', token(fresh.secret));
      expect(anchors.units).toBe(7);
      expect((await costOf(fresh.secret, '/v1/backlinks/count?target=a.com&target=b.com', token(fresh.secret))).units).toBe(200);
      expect((await costOf(fresh.secret, '/v1/backlinks/metrics', post(fresh.secret, { target: ['a.com', 'b.com', 'c.com', 'd.com'] }))).units).toBe(400);
      expect((await costOf(fresh.secret, '/v1/backlinks/refdomains/count?target=a.com', token(fresh.secret))).units).toBe(100);
    });

    it('export is 1000 units; export/status and the subscription endpoint are free', async () => {
      const created = await costOf(fresh.secret, '/v1/backlinks/export', post(fresh.secret, { target: 'seranking.com' }));
      expect(created.units).toBe(1000);
      const task = (created.body as { task_id: string }).task_id;
      const first = await costOf(fresh.secret, `/v1/backlinks/export/status?task_id=${task}`, token(fresh.secret));
      const second = await costOf(fresh.secret, `/v1/backlinks/export/status?task_id=${task}`, token(fresh.secret));
      expect([first.units, second.units]).toEqual([0, 0]);
      expect(second.body).toMatchObject({ status: 'complete' });
      expect((await costOf(fresh.secret, '/v1/account/subscription', token(fresh.secret))).units).toBe(0);
    });

    it('cost per record: every row of the table is charged as written, for the records the answer holds', async () => {
      // "Cost per Record": service backlinks, command, units per record in a successful 2xx.
      // A list answers up to `limit` items for one target (3 here); the others one object per target (2 here).
      const perRecord: [command: string, units: number, asked: 'list' | 'targets' | 'task'][] = [
        ['export', 1000, 'task'], ['export/status', 0, 'task'], ['anchors', 1, 'list'], ['all', 1, 'list'], ['count', 100, 'targets'],
        ['authority/domain', 1, 'targets'], ['authority/domain/distribution', 1, 'list'], ['authority', 1, 'targets'], ['referring-ips', 1, 'list'],
        ['referring-ips/count', 100, 'targets'], ['metrics', 100, 'targets'], ['history', 1, 'list'], ['history/count', 100, 'targets'],
        ['history/cumulative', 100, 'targets'], ['refdomains/history', 1, 'list'], ['refdomains/history/count', 100, 'targets'],
        ['authority/page', 1, 'list'], ['authority/page/history', 1, 'list'], ['indexed-pages', 1, 'list'], ['raw', 1, 'list'],
        ['refdomains', 1, 'list'], ['refdomains/count', 100, 'targets'], ['referring-subnets/count', 100, 'targets'], ['summary', 100, 'targets'],
      ];
      let task = '';
      for (const [command, units, asked] of perRecord) {
        const answer =
          command === 'export/status'
            ? await costOf(fresh.secret, `/v1/backlinks/export/status?task_id=${task}`, token(fresh.secret))
            : await costOf(fresh.secret, `/v1/backlinks/${command}${asked === 'list' ? '?limit=3' : ''}`, post(fresh.secret, { target: asked === 'targets' ? ['seranking.com', 'example.org'] : 'seranking.com' }));
        expect(answer.status, command).toBe(200);
        if (command === 'export') task = (answer.body as { task_id: string }).task_id;
        const records = { list: 3, targets: 2, task: 1 }[asked];
        if (asked !== 'task') expect(Object.values(answer.body as Record<string, unknown[]>)[0], command).toHaveLength(records);
        expect(answer.units, `backlinks | ${command} | ${units} per record, ${records} records`).toBe(units * records);
      }
    });

    it('cost per request: domain and keyword commands are 100 units a call', async () => {
      for (const command of ['overview', 'overview/all', 'overview/db', 'overview/history', 'keywords', 'ads', 'competitors', 'keywords/comparison']) {
        const answer = await costOf(fresh.secret, `/v1/domain/${command}?domain=seranking.com&source=us`, token(fresh.secret));
        expect(answer.status, command).toBe(200);
        expect(answer.units, command).toBe(100);
      }
      expect((await costOf(fresh.secret, '/v1/keywords/export', post(fresh.secret, { keywords: ['seo', 'backlinks', 'rank tracker'], source: 'gb' }))).units).toBe(100);
      expect((await costOf(fresh.secret, '/v1/domain/overview?domain=seranking.com&source=worldwide', token(fresh.secret))).units).toBe(100);
    });

    it('anything but a 2xx costs nothing', async () => {
      const invalidSource = await costOf(fresh.secret, '/v1/domain/overview?domain=seranking.com&source=xx', token(fresh.secret));
      expect(invalidSource).toEqual({ status: 400, type: UPSTREAM_TYPE, body: { error_description: 'Invalid source' }, units: 0 });
      expect(await costOf(fresh.secret, '/v1/backlinks/summary', post(fresh.secret, {}))).toEqual({ status: 400, type: UPSTREAM_TYPE, body: { error_description: 'Parameter target is missing.' }, units: 0 });
      expect((await costOf(fresh.secret, '/v1/backlinks/summary', post(fresh.secret, { target: domains(101) }))).units).toBe(0);
      expect(await costOf(fresh.secret, '/v1/domain/overview?domain=seranking.com', token(fresh.secret, { method: 'PUT' }))).toEqual({
        status: 405,
        type: UPSTREAM_TYPE,
        body: { error_description: 'Method Not Allowed.' },
        units: 0,
      });
      expect(await costOf(fresh.secret, '/v1/keywords/export', post(fresh.secret, { keywords: Array.from({ length: 10_001 }, (_, i) => `kw${i}`) }))).toEqual({
        status: 400,
        type: UPSTREAM_TYPE,
        body: { error_description: 'Exceeded keywords size. Max keywords for one request: 10000' },
        units: 0,
      });
      // An endpoint keygate does not know is refused before it reaches the upstream, free of charge.
      expect({ ...(await costOf(fresh.secret, '/v1/backlinks/everything?target=a.com', token(fresh.secret))) }).toEqual({ ...NOT_FOUND, units: 0 });
      // A method the endpoint does not take: the table's 405, from keygate when it answers the endpoint itself.
      const wrongMethod = await paced('/v1/account/subscription', token(fresh.secret, { method: 'POST' }));
      expect(wrongMethod.headers.get('allow')).toBe('GET, HEAD');
      expect(await read(wrongMethod)).toEqual({ status: 405, type: JSON_TYPE, body: { error_description: 'Method Not Allowed.' } });
      // The upstream's own format rows pass through as it wrote them, and cost nothing.
      expect(await costOf(fresh.secret, '/v1/backlinks/summary?target=a.com&output=csv', token(fresh.secret))).toEqual({
        status: 406,
        type: UPSTREAM_TYPE,
        body: { error_description: "Unsupported 'output' format. Supported 'output' formats are 'json' (default) and 'xml'." },
        units: 0,
      });
      expect(await costOf(fresh.secret, '/v1/backlinks/summary', post(fresh.secret, { target: 'a.com', mode: 'xyz' }))).toEqual({
        status: 400,
        type: UPSTREAM_TYPE,
        body: { error_description: 'Unsupported ‘mode’ format. Supported ‘mode’ formats are ‘host’ (default), ‘domain’, ‘url’.' },
        units: 0,
      });
      expect(await costOf(fresh.secret, '/v1/backlinks/all?target=a.com&order_by=xyz', token(fresh.secret))).toEqual({
        status: 400,
        type: UPSTREAM_TYPE,
        body: { error_description: 'Unsupported ‘order_by’ format. Supported ‘order_by’ formats are ‘backlinks’ (default), ‘refdomains’.' },
        units: 0,
      });
      // The 244 for huge websites is a 2xx with no records: nothing to charge.
      const huge = await costOf(fresh.secret, '/v1/backlinks/summary', post(fresh.secret, { target: 'google.com' }));
      expect(huge).toMatchObject({ status: 244, units: 0 });
      expect((huge.body as { error_description: string }).error_description).toBe('Results for huge websites like google.com or twitter.com are unavailable via API so far.');
      // The table's code column, "244 (Results for huge websites ...)" as "400 (Bad Request)": its reason phrase.
      const line = await paced('/v1/backlinks/summary', post(fresh.secret, { target: 'twitter.com' }));
      await line.arrayBuffer();
      expect([line.status, line.statusText]).toEqual([244, 'Results for huge websites like google.com or twitter.com are unavailable via API so far']);
    });

    it('405 (Method Not Allowed) Method Not Allowed. names the methods the endpoint takes (Allow), whoever answers it, and costs nothing', async () => {
      const refused = (path: string, init: RequestInit) => costOf(fresh.secret, path, init);
      const NOT_ALLOWED = { status: 405, type: UPSTREAM_TYPE, body: { error_description: 'Method Not Allowed.' }, units: 0 };
      // The upstream's commands: GET or POST; export task creation and keywords/export: POST only.
      for (const [path, init, allow] of [
        ['/v1/domain/overview?domain=seranking.com', token(fresh.secret, { method: 'PUT' }), 'GET, HEAD, POST'],
        ['/v1/backlinks/summary?target=seranking.com', token(fresh.secret, { method: 'DELETE' }), 'GET, HEAD, POST'],
        ['/v1/backlinks/export?target=seranking.com', token(fresh.secret), 'POST'],
        ['/v1/keywords/export?keywords=seo&source=us', token(fresh.secret), 'POST'],
      ] as const) {
        clock.advance(100);
        const answer = await ex.call(path, init);
        expect(answer.headers.get('allow'), path).toBe(allow);
        await answer.arrayBuffer();
        expect(await refused(path, init), path).toEqual(NOT_ALLOWED);
      }
      // keygate's own endpoint: the subscription builtin.
      const builtin = await paced('/v1/account/subscription', token(fresh.secret, { method: 'DELETE' }));
      expect([builtin.status, builtin.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
      await builtin.arrayBuffer();
    });

    it('the table\'s 200 (OK) rows: a target nobody links to answers zeros and InLink Rank -1 (unknown), and is charged like any other', async () => {
      const summary = await costOf(fresh.secret, '/v1/backlinks/summary', post(fresh.secret, { target: ['no-links.example', 'seranking.com'] }));
      expect(summary).toMatchObject({ status: 200, type: UPSTREAM_TYPE, units: 200 });
      const [none, some] = (summary.body as { summary: { target: string; backlinks: number; refdomains: number; inlink_rank: number; domain_inlink_rank: number }[] }).summary;
      // "Returned value for a parameter is zero" and "... is a negative digit": InLink Rank = -1 is Unknown, not 0.
      expect(none).toEqual({ target: 'no-links.example', backlinks: 0, refdomains: 0, inlink_rank: -1, domain_inlink_rank: -1 });
      expect(some?.inlink_rank).toBeGreaterThanOrEqual(0);
      // Its lists are empty: a 2xx with no records, nothing to charge.
      expect(await costOf(fresh.secret, '/v1/backlinks/all?target=no-links.example&limit=10', token(fresh.secret))).toEqual({ status: 200, type: UPSTREAM_TYPE, body: { all: [] }, units: 0 });
    });

    it('keywords/export sorts its rows by sort and sort_order (desc unless asc is asked for), at the same 100 units', async () => {
      const keywords = ['seo', 'backlinks', 'rank tracker', 'serp'];
      const byVolume = await costOf(fresh.secret, '/v1/keywords/export?source=us&sort=volume&sort_order=asc', post(fresh.secret, { keywords }));
      expect(byVolume).toMatchObject({ status: 200, units: 100 });
      const volumes = (byVolume.body as { volume: number }[]).map((row) => row.volume);
      expect(volumes).toEqual(volumes.toSorted((a, b) => a - b));
      expect(volumes).not.toEqual(volumes.toSorted((a, b) => b - a));
      // In the JSON body too; without sort_order, descending.
      const byName = await costOf(fresh.secret, '/v1/keywords/export', post(fresh.secret, { keywords, source: 'us', sort: 'keyword' }));
      expect(byName).toMatchObject({ status: 200, units: 100 });
      expect((byName.body as { keyword: string }[]).map((row) => row.keyword)).toEqual(['serp', 'seo', 'rank tracker', 'backlinks']);
    });

    it('Incorrect order field {sort} {sort_order}, Incorrect order, Row limit exceeded and Invalid keywords, domain or target pass through as written and cost nothing', async () => {
      const keywords = ['seo', 'backlinks'];
      const refused = (description: string) => ({ status: 400, type: UPSTREAM_TYPE, body: { error_description: description }, units: 0 });
      // sort names a field the rows do not have: the message carries the values sent.
      expect(await costOf(fresh.secret, '/v1/keywords/export?source=us&sort=traffic&sort_order=asc', post(fresh.secret, { keywords }))).toEqual(refused('Incorrect order field traffic asc'));
      expect(await costOf(fresh.secret, '/v1/keywords/export', post(fresh.secret, { keywords, sort: 'position', sort_order: 'desc' }))).toEqual(refused('Incorrect order field position desc'));
      // sort_order that is neither asc nor desc, with or without a valid sort.
      expect(await costOf(fresh.secret, '/v1/keywords/export?sort=volume&sort_order=up', post(fresh.secret, { keywords }))).toEqual(refused('Incorrect order'));
      expect(await costOf(fresh.secret, '/v1/keywords/export?sort_order=descending', post(fresh.secret, { keywords }))).toEqual(refused('Incorrect order'));
      // A list's limit above the 10000 rows one request may return. keygate reserved that
      // many units before forwarding (reserveFromQuery) and gives them all back.
      expect(await costOf(fresh.secret, '/v1/backlinks/all?target=seranking.com&limit=10001', token(fresh.secret))).toEqual(refused('Row limit exceeded'));
      expect(await costOf(fresh.secret, '/v1/backlinks/refdomains?target=seranking.com&limit=50000', token(fresh.secret))).toEqual(refused('Row limit exceeded'));
      // Below the bounds is still the bounds row (keygate forwards 0 and reserves its default page).
      expect(await costOf(fresh.secret, '/v1/backlinks/all?target=seranking.com&limit=0', token(fresh.secret))).toEqual(refused('limit=0 is not within required bounds!'));
      // Invalid keywords, Invalid domain, Invalid target: what the command was given is no such thing.
      expect(await costOf(fresh.secret, '/v1/keywords/export?source=us', post(fresh.secret, { keywords: ['  ', ''] }))).toEqual(refused('Invalid keywords'));
      expect(await costOf(fresh.secret, '/v1/domain/overview?domain=not%20a%20domain&source=us', token(fresh.secret))).toEqual(refused('Invalid domain'));
      expect(await costOf(fresh.secret, '/v1/backlinks/summary', post(fresh.secret, { target: 'not a target' }))).toEqual(refused('Invalid target'));
    });

    it('keygate\'s own refusal of a limit comes first: not a whole number; one worth more units than are left is the upstream\'s to judge', async () => {
      // Not a whole number: keygate cannot know what to reserve, so it refuses it itself,
      // with the table's "Parameter YYY is invalid." naming it.
      for (const limit of ['1e5', '-1']) {
        expect(await costOf(fresh.secret, `/v1/backlinks/all?target=seranking.com&limit=${limit}`, token(fresh.secret))).toEqual({
          status: 400,
          type: JSON_TYPE,
          body: { error_description: 'Parameter limit is invalid.' },
          units: 0,
        });
      }
      // More records than units left: not Insufficient funds while the balance is above zero
      // (it is reached, or not, by what the answer holds); the upstream's row limit refuses it.
      expect((await paced('/v1/backlinks/summary', post(fresh.secret, { target: 'seranking.com' }))).status).toBe(200);
      const left = await unitsLeft(fresh.secret);
      expect(await costOf(fresh.secret, `/v1/backlinks/all?target=seranking.com&limit=${left + 1}`, token(fresh.secret))).toEqual({
        status: 400,
        type: UPSTREAM_TYPE,
        body: { error_description: 'Row limit exceeded' },
        units: 0,
      });
    });
  });

  describe('Forecasting costs before you run', () => {
    const workflow = [
      '--call', 'POST /v1/backlinks/summary x2 records=100',
      '--call', 'POST /v1/backlinks/summary x1 records=50',
      '--call', 'POST /v1/backlinks/export x1 records=1',
      '--call', 'GET /v1/backlinks/export/status x2',
    ];

    it('250 domains in batches of 100 plus one export: keygate prices it by the cost table (26,000 units, not 1032)', async () => {
      const result = await ex.cliJson<ForecastOut>(['forecast', ...workflow, '--account', account.id]);
      expect(result.lines.map((l) => [l.path, l.count, l.unitsPerCall, l.units])).toEqual([
        ['/v1/backlinks/summary', 2, 10_000, 20_000],
        ['/v1/backlinks/summary', 1, 5_000, 5_000],
        ['/v1/backlinks/export', 1, 1_000, 1_000],
        ['/v1/backlinks/export/status', 2, 0, 0],
      ]);
      expect(result.totals).toEqual({ units: 26_000 });
      expect(result.total).toBe(26_000);
      // "Compare the projected total with your units_left."
      const left = await unitsLeft(key.secret);
      expect(result.balance).toEqual({ units: { remaining: left, covered: true, overageAllowed: false, inPlan: true } });
      expect(result.covered).toBe(true);
    });

    it('a list call is priced, and reserved, at what it asks for: its limit, or the upstream\'s default page of 100', async () => {
      const result = await ex.cliJson<ForecastOut>(['forecast', '--call', 'GET /v1/backlinks/all?target=seranking.com&limit=20 x2', '--call', 'GET /v1/backlinks/all?target=seranking.com']);
      expect(result.lines.map((l) => [l.count, l.unitsPerCall, l.units])).toEqual([
        [2, 20, 40],
        [1, 100, 100],
      ]);
    });

    it('the forecast matches what the workflow is then charged', async () => {
      const before = await unitsLeft(key.secret);
      await paced('/v1/backlinks/summary', post(key.secret, { target: domains(100, 0) }));
      await paced('/v1/backlinks/summary', post(key.secret, { target: domains(100, 100) }));
      await paced('/v1/backlinks/summary', post(key.secret, { target: domains(50, 200) }));
      const task = ((await read(await paced('/v1/backlinks/export', post(key.secret, { target: 'site0.example.com' })))).body as { task_id: string }).task_id;
      await paced(`/v1/backlinks/export/status?task_id=${task}`, token(key.secret));
      await paced(`/v1/backlinks/export/status?task_id=${task}`, token(key.secret));
      expect(before - (await unitsLeft(key.secret))).toBe(26_000);
    });
  });

  describe('Insufficient Funds and overage', () => {
    let broke: AccountOut;
    let brokeKey: KeyOut;

    it('spends a month\'s 1,000,000 units with real requests; the one that reaches zero is served and pays down to zero', async () => {
      broke = await ex.createAccount('Big Spender', 'units_1m');
      brokeKey = await ex.createKey(broke.id, 'Data API');
      for (let batch = 0; batch < 100; batch++) {
        // 99 batches of 100 domains, then one of 99: 100 units left.
        const response = await paced('/v1/backlinks/summary', post(brokeKey.secret, { target: domains(batch < 99 ? 100 : 99, batch * 100) }));
        expect(response.status).toBe(200);
        await response.arrayBuffer();
      }
      expect(await unitsLeft(brokeKey.secret)).toBe(100);
      expect((await costOf(brokeKey.secret, '/v1/backlinks/all?target=seranking.com&limit=5', token(brokeKey.secret))).units).toBe(5);
      // 95 left, a command of 100 units: the balance has not reached zero, so it is served,
      // and charged the 95 that were left.
      expect(await costOf(brokeKey.secret, '/v1/domain/overview?domain=seranking.com', token(brokeKey.secret))).toMatchObject({ status: 200, units: 95 });
      expect(await unitsLeft(brokeKey.secret)).toBe(0);
    });

    it('at zero, requests that consume units get 400 Insufficient funds; free ones still answer', async () => {
      expect(await read(await paced('/v1/backlinks/summary', post(brokeKey.secret, { target: 'seranking.com' })))).toEqual(INSUFFICIENT_FUNDS);
      expect(await read(await paced('/v1/domain/overview?domain=seranking.com', token(brokeKey.secret)))).toEqual(INSUFFICIENT_FUNDS);
      expect(await read(await paced('/v1/backlinks/export', post(brokeKey.secret, { target: 'seranking.com' })))).toEqual(INSUFFICIENT_FUNDS);
      const subscription = await read(await paced('/v1/account/subscription', token(brokeKey.secret)));
      expect(subscription.status).toBe(200);
      expect((subscription.body as Subscription).subscription_info).toMatchObject({ units_limit: 1_000_000, units_left: 0 });
      // export/status costs nothing, so it still reaches the upstream (which knows no such task of this account).
      expect(await read(await paced('/v1/backlinks/export/status?task_id=task_1', token(brokeKey.secret)))).toEqual({
        status: 400,
        type: UPSTREAM_TYPE,
        body: { error_description: 'Parameter task_id is invalid.' },
      });
    });

    it('the forecast says the workflow is not covered (exit code 3)', async () => {
      const result = await ex.cli(['forecast', ...['--call', 'POST /v1/backlinks/summary x1 records=1'], '--account', broke.id]);
      expect(result.code).toBe(3);
      expect(result.stdout).toContain('units remaining: 0 → NOT covered');
    });

    it('overage is off by default; switched on for the account, calls continue and the excess is counted', async () => {
      const before = await ex.cliJson<Usage>(['accounts', 'usage', broke.id]);
      expect(before.meters.units).toMatchObject({ usage: 1_000_000, limit: 1_000_000, remaining: 0, overage: 0, overageAllowed: false });

      await ex.cliOk(['accounts', 'update', broke.id, '--overage', 'on']);
      expect((await paced('/v1/backlinks/summary', post(brokeKey.secret, { target: domains(10) }))).status).toBe(200);
      expect((await paced('/v1/domain/overview?domain=seranking.com', token(brokeKey.secret))).status).toBe(200);
      expect(await unitsLeft(brokeKey.secret)).toBe(0);

      const after = await ex.cliJson<Usage>(['accounts', 'usage', broke.id]);
      expect(after.meters.units).toMatchObject({ usage: 1_001_100, limit: 1_000_000, remaining: 0, overage: 1_100, overageAllowed: true });

      const covered = await ex.cliJson<ForecastOut>(['forecast', '--call', 'POST /v1/backlinks/summary x1 records=1', '--account', broke.id]);
      expect(covered.covered).toBe(true);

      // "You can disable the feature at any time."
      await ex.cliOk(['accounts', 'update', broke.id, '--overage', 'off']);
      expect(await read(await paced('/v1/backlinks/summary', post(brokeKey.secret, { target: 'seranking.com' })))).toEqual(INSUFFICIENT_FUNDS);
    });

    it('"Monthly credits" 1M … 500M: one plan per row, each with that many units a month, 10 requests a second and a single key', async () => {
      const rows: [plan: string, credits: number][] = [
        ['units_1m', 1_000_000], ['units_2m', 2_000_000], ['units_3m', 3_000_000], ['units_5m', 5_000_000], ['units_10m', 10_000_000],
        ['units_20m', 20_000_000], ['units_30m', 30_000_000], ['units_50m', 50_000_000], ['units_100m', 100_000_000],
        ['units_200m', 200_000_000], ['units_300m', 300_000_000], ['units_500m', 500_000_000],
      ];
      for (const [plan, credits] of rows) {
        const customer = await ex.createAccount(`Credits ${plan}`, plan);
        const customerKey = await ex.createKey(customer.id, 'Data API');
        const response = await paced('/v1/account/subscription', token(customerKey.secret));
        expect(response.headers.get('ratelimit-policy'), plan).toBe('"10-per-1s";q=10;w=1');
        const info = ((await read(response)).body as Subscription).subscription_info;
        expect([plan, info.units_limit, info.units_left]).toEqual([plan, credits, credits]);
        // A second key is refused (the admin API's 409, as the CLI's refusal above).
        await expect(ex.createKey(customer.id, 'Second'), plan).rejects.toThrow(/: 409 .*allows 1 key per account/);
      }
    });

    it('switching to a higher plan activates instantly', async () => {
      await ex.cliOk(['accounts', 'update', broke.id, '--plan', 'units_2m']);
      expect((await paced('/v1/backlinks/summary', post(brokeKey.secret, { target: 'seranking.com' }))).status).toBe(200);
      const info = ((await read(await paced('/v1/account/subscription', token(brokeKey.secret)))).body as Subscription).subscription_info;
      expect(info).toMatchObject({ units_limit: 2_000_000, units_left: 2_000_000 - 1_001_100 - 100 });
    });
  });

  describe('Error Handling: the rows the access layer owns', () => {
    it('400 The requested resource could not be found. (with a key; without one it is No token)', async () => {
      expect(await read(await paced('/v1/backlinks/nothing-here', token(key.secret)))).toEqual(NOT_FOUND);
      expect(await read(await paced('/v1/account/balance', token(key.secret)))).toEqual(NOT_FOUND);
      expect(await read(await paced('/v1/backlinks/nothing-here'))).toEqual(NO_TOKEN);
    });

    it('a request keygate cannot read as written (a path with // or ..) is the table\'s Parameter YYY is invalid. without a name, and costs nothing', async () => {
      const before = await unitsLeft(key.secret);
      for (const odd of ['//v1/backlinks/summary?target=seranking.com', '/v1/domain/../backlinks/summary?target=seranking.com']) {
        clock.advance(100);
        const answer = await rawRequest(ex.kg.gatewayUrl, `GET ${odd} HTTP/1.1\r\nAuthorization: Token ${key.secret}`);
        expect({ status: answer.status, body: JSON.parse(answer.body) as unknown }, odd).toEqual({ status: 400, body: { error_description: 'Parameter is invalid.' } });
      }
      expect(await unitsLeft(key.secret)).toBe(before);
    });

    it('403 License expired once the plan has run out, on every endpoint', async () => {
      const licensed = await ex.createAccount('Licensed Ltd');
      const licensedKey = await ex.createKey(licensed.id, 'Data API');
      await ex.cliOk(['accounts', 'update', licensed.id, '--plan-expires', '30d']);
      expect((await paced('/v1/backlinks/summary', post(licensedKey.secret, { target: 'seranking.com' }))).status).toBe(200);
      clock.advance(31 * DAY);
      expect(await read(await paced('/v1/backlinks/summary', post(licensedKey.secret, { target: 'seranking.com' })))).toEqual(LICENSE_EXPIRED);
      expect(await read(await paced('/v1/account/subscription', token(licensedKey.secret)))).toEqual(LICENSE_EXPIRED);
      // A renewed licence works again at once.
      await ex.cliOk(['accounts', 'update', licensed.id, '--plan-expires', 'never']);
      expect((await paced('/v1/account/subscription', token(licensedKey.secret))).status).toBe(200);
    });
  });

  describe('Error Handling: the envelope example and the table\'s status lines, byte for byte', () => {
    it('the envelope example is the 406 (Not Acceptable) body as printed; 400 (Bad Request), 405 (Method Not Allowed) and 429 (Too Many Requests) carry the table\'s phrases', async () => {
      const lined = await ex.createAccount('Status Lines Ltd');
      const lineKey = await ex.createKey(lined.id, 'Data API');
      const exact = (status: string, description: string) => ({ status, type: JSON_TYPE, text: JSON.stringify({ error_description: description }) });

      // The rolling window first: ten requests at one instant, the eleventh refused.
      clock.advance(1_000);
      for (let i = 0; i < 10; i++) expect((await ex.call('/v1/account/subscription', token(lineKey.secret))).status).toBe(200);
      expect(await readExact(await ex.call('/v1/account/subscription', token(lineKey.secret)))).toEqual(exact('429 Too Many Requests', 'Call rate limit reached.'));
      clock.advance(1_000);

      const envelope = await readExact(await paced('/v1/backlinks/summary?target=seranking.com&output=csv', token(lineKey.secret)));
      expect(envelope).toEqual({
        status: '406 Not Acceptable',
        type: UPSTREAM_TYPE,
        text: `{"error_description":"Unsupported 'output' format. Supported 'output' formats are 'json' (default) and 'xml'."}`,
      });
      expect(await readExact(await paced('/v1/account/subscription'))).toEqual(exact('400 Bad Request', 'No token'));
      expect(await readExact(await paced('/v1/account/subscription', token('0'.repeat(40))))).toEqual(
        exact('400 Bad Request', `Authentication failed. Please make sure your API key is valid and active. ${CONTACT}`),
      );
      expect(await readExact(await paced('/v1/backlinks/nothing-here', token(lineKey.secret)))).toEqual(exact('400 Bad Request', 'The requested resource could not be found.'));
      expect(await readExact(await paced('/v1/account/subscription', token(lineKey.secret, { method: 'POST' })))).toEqual(exact('405 Method Not Allowed', 'Method Not Allowed.'));
    });
  });

  describe('Error Handling: the API itself failing', () => {
    it('500 Internal Server Error / Unexpected error. when the API cannot be reached, 503 Service unavailable / System is busy. when it does not answer in time; neither costs anything', async () => {
      const { down, slow, close } = await startFailingExamples('seranking-data');
      try {
        for (const [failing, phrase, expected] of [
          [down, 'Internal Server Error', { status: 500, type: JSON_TYPE, body: { error_description: 'Unexpected error. Please try again later.' } }],
          // The table's own status line: "503 Service unavailable".
          [slow, 'Service unavailable', { status: 503, type: JSON_TYPE, body: { error_description: 'System is busy. Please try again later.' } }],
        ] as const) {
          const customer = await failing.createAccount('Customer');
          const { secret } = await failing.createKey(customer.id, 'Data API');
          const left = async () => ((await read(await failing.call('/v1/account/subscription', token(secret)))).body as Subscription).subscription_info.units_left;
          const before = await left();
          const response = await failing.call('/v1/domain/overview?domain=seranking.com&source=us', token(secret));
          expect(response.statusText).toBe(phrase);
          expect(await read(response)).toEqual(expected);
          expect(await left()).toBe(before);
        }
      } finally {
        await close();
      }
    });
  });

  // After the other tests of the shared gateway: it moves the clock to the next month.
  describe('Monthly credits: replenished when the month turns', () => {
    it('an account at zero is refused until the month ends; from its first moment units_left is the plan\'s again', async () => {
      // Early in a month, so the spending below cannot straddle the turn.
      const start = new Date(clock.now());
      clock.advance(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 2) - clock.now());
      const monthly = await ex.createAccount('Monthly Co', 'units_1m');
      const monthlyKey = await ex.createKey(monthly.id, 'Data API');
      for (let batch = 0; batch < 100; batch++) {
        const response = await paced('/v1/backlinks/summary', post(monthlyKey.secret, { target: domains(100, batch * 100) }));
        expect(response.status).toBe(200);
        await response.arrayBuffer();
      }
      expect(await read(await paced('/v1/backlinks/summary', post(monthlyKey.secret, { target: 'seranking.com' })))).toEqual(INSUFFICIENT_FUNDS);

      const now = new Date(clock.now());
      const nextMonth = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
      clock.advance(nextMonth - 1 - clock.now());
      expect(await read(await ex.call('/v1/backlinks/summary', post(monthlyKey.secret, { target: 'seranking.com' })))).toEqual(INSUFFICIENT_FUNDS);
      clock.advance(1);
      const renewed = ((await read(await ex.call('/v1/account/subscription', token(monthlyKey.secret)))).body as Subscription).subscription_info;
      const day = (ms: number) => `${new Date(ms).toISOString().slice(0, 10)} 00:00:00`;
      const after = new Date(nextMonth);
      expect(renewed).toEqual({
        status: 'active',
        start_date: day(nextMonth),
        expiration_date: day(Date.UTC(after.getUTCFullYear(), after.getUTCMonth() + 1, 1)),
        units_limit: 1_000_000,
        units_left: 1_000_000,
      });
      expect(await costOf(monthlyKey.secret, '/v1/backlinks/summary', post(monthlyKey.secret, { target: 'seranking.com' }))).toMatchObject({ status: 200, units: 100 });
    });
  });

  // After the month turn above: it turns another month.
  describe('Overage: billed at the end of the cycle', () => {
    it('the excess is counted for the cycle it was used in; the next cycle starts with the plan\'s units and no overage', async () => {
      const over = await ex.createAccount('Overage Co', 'units_1m');
      const overKey = await ex.createKey(over.id, 'Data API');
      // The admin API reads the period on the gateway's clock (the CLI runs on real time).
      const units = async () => {
        const response = await ex.kg.admin(`/v1/accounts/${over.id}/usage`);
        expect(response.status).toBe(200);
        return ((await response.json()) as Usage).meters.units;
      };
      // 100 units a month (the account's own limit), overage switched on by Support.
      await ex.updateAccount(over.id, { limits: { meters: { units: 100 } }, overage: true });
      for (let i = 0; i < 3; i++) expect((await paced('/v1/backlinks/summary', post(overKey.secret, { target: 'seranking.com' }))).status).toBe(200);
      expect(await units()).toMatchObject({ usage: 300, limit: 100, remaining: 0, overage: 200, overageAllowed: true });

      const now = new Date(clock.now());
      clock.advance(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) - clock.now());
      expect(await units()).toMatchObject({ usage: 0, limit: 100, remaining: 100, overage: 0, overageAllowed: true });
      expect(((await read(await paced('/v1/account/subscription', token(overKey.secret)))).body as Subscription).subscription_info).toMatchObject({ units_limit: 100, units_left: 100 });
    });
  });

  describe('One command', () => {
    it('node bin/keygate.js serve --config <the seranking-data profile> starts gateway and upstream (upstream.spawn); a CLI key works through it', async () => {
      const server = await runServeCommand('seranking-data');
      try {
        const acme = JSON.parse((await server.cli(['accounts', 'create', '--name', 'Acme', '--json'])).stdout) as AccountOut;
        const first = JSON.parse((await server.cli(['keys', 'create', '--account', acme.id, '--name', 'Data API', '--json'])).stdout) as KeyOut;
        const subscription = await read(await fetch(`${server.gatewayUrl}/v1/account/subscription`, token(first.secret)));
        expect(subscription).toMatchObject({ status: 200, body: { subscription_info: { status: 'active', units_limit: 1_000_000, units_left: 1_000_000 } } });
        expect((await fetch(`${server.gatewayUrl}/v1/backlinks/summary`, post(first.secret, { target: 'seranking.com', mode: 'host' }))).status).toBe(200);
        const after = await read(await fetch(`${server.gatewayUrl}/v1/account/subscription?apikey=${first.secret}`));
        expect(after).toMatchObject({ status: 200, body: { subscription_info: { units_left: 999_900 } } });
      } finally {
        expect(await server.stop()).toBe(0);
      }
    });
  });
});
