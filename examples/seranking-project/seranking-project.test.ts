/**
 * shared/seeds/002 (SE Ranking project API: access, requests, rate limits, errors),
 * walked top to bottom against examples/seranking-project: the shipped keygate.yaml and
 * upstream.mjs on loopback, a real SQLite file, keys made with the `keygate` CLI, real
 * HTTP, and a controlled clock for the one-second windows and the 10-minute blocks.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlledClock, rawRequest, read, readExact, runServeCommand, startExample, startFailingExamples, type AccountOut, type KeyOut, type RunningExample } from '../support/example.js';

// The document's examples: `Content-Type:  application/json`, errors and answers alike.
const JSON_TYPE = 'application/json';
const NO_TOKEN = { status: 403, type: JSON_TYPE, body: { message: 'No token' } };
const INCORRECT_TOKEN = { status: 403, type: JSON_TYPE, body: { message: 'Incorrect token' } };
const TOO_MANY = { message: 'Too Many Requests' };
const BALANCE = { currency: 'rur', value: 2296380.85 };
const SECOND = 1_000;
const MINUTE = 60_000;
const DAY = 86_400_000;

/** -H "Authorization: Token be2165b7d065e278e7305c1c7ef791f283f5d14b" */
const token = (key: string, init: RequestInit = {}): RequestInit => ({ ...init, headers: { authorization: `Token ${key}`, ...(init.headers as Record<string, string>) } });

/**
 * One request written byte for byte (an HTTP/1.0 one, as the document's transcripts),
 * read until the server closes the connection: the status line, headers (lower-case
 * names) and body as text. Fails if the connection is still open after 5 seconds.
 */
function http10(baseUrl: string, request: string): Promise<{ statusLine: string; headers: Record<string, string>; body: string }> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    let data = '';
    socket.setEncoding('utf8');
    socket.setTimeout(5_000, () => socket.destroy(new Error(`the connection stayed open after: ${JSON.stringify(data)}`)));
    socket.once('connect', () => socket.write(request));
    socket.on('data', (chunk: string) => (data += chunk));
    socket.once('error', reject);
    socket.once('end', () => {
      const split = data.indexOf('\r\n\r\n');
      const [statusLine = '', ...lines] = data.slice(0, split).split('\r\n');
      const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
      resolve({ statusLine, headers, body: data.slice(split + 4) });
    });
  });
}

describe('SE Ranking project API: shared/seeds/002 against examples/seranking-project', () => {
  const clock = controlledClock();
  let ex: RunningExample;
  let account: AccountOut;
  let key: KeyOut;

  beforeAll(async () => {
    ex = await startExample('seranking-project', { clock });
  });
  afterAll(async () => {
    await ex?.close();
  });

  /** One request, a quarter of a second after the previous one: never over 5 per second. */
  const paced = (path: string, init?: RequestInit) => {
    clock.advance(250);
    return ex.call(path, init);
  };

  /** n requests at the current (frozen) time: status and Retry-After of each. */
  const burst = async (secret: string, n: number) => {
    const out: { status: number; retryAfter: string | null; body: unknown }[] = [];
    for (let i = 0; i < n; i++) {
      const response = await ex.call('/account/balance', token(secret));
      out.push({ status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.json() });
    }
    return out;
  };

  describe('API access and keys', () => {
    it('"Generate API Key" (the CLI) issues a 40-hex-character key like SE Ranking\'s', async () => {
      account = await ex.cliJson<AccountOut>(['accounts', 'create', '--name', 'Acme SEO']);
      expect(account.planId).toBe('business');
      key = await ex.cliJson<KeyOut>(['keys', 'create', '--account', account.id, '--name', 'API key']);
      expect(key.secret).toMatch(/^[0-9a-f]{40}$/);
      expect(key.hint).toBe(`…${key.secret.slice(-4)}`);
    });

    it('the key goes in the Authorization header (Token scheme) or in the token parameter', async () => {
      expect(await read(await paced('/account/balance', token(key.secret)))).toEqual({ status: 200, type: JSON_TYPE, body: BALANCE });
      expect(await read(await paced(`/account/balance?token=${key.secret}`))).toEqual({ status: 200, type: JSON_TYPE, body: BALANCE });
      // Proxied requests reach the upstream without the credential, wherever it was sent.
      expect((await paced(`/sites?token=${key.secret}`)).status).toBe(200);
      expect((await paced('/sites', token(key.secret))).status).toBe(200);
    });

    it('invoked without an API key: 403 "No token"', async () => {
      expect(await read(await paced('/sites'))).toEqual(NO_TOKEN);
      expect(await read(await paced('/account/balance'))).toEqual(NO_TOKEN);
      expect(await read(await paced('/sites', { headers: { authorization: 'Token' } }))).toEqual(NO_TOKEN);
      expect(await read(await paced('/sites?token='))).toEqual(NO_TOKEN);
      // The token parameter is a query parameter: a "token" field in a JSON body is no key.
      const inBody = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: key.secret, url: 'https://example.com', title: 'never' }) };
      expect(await read(await paced('/sites', inBody))).toEqual(NO_TOKEN);
    });

    it('an invalid API key: 403 "Incorrect token"', async () => {
      const cases: [string, RequestInit][] = [
        ['unknown key', token('be2165b7d065e278e7305c1c7ef791f283f5d14b')],
        ['too short', token(key.secret.slice(0, 39))],
        ['upper case', token(key.secret.toUpperCase())],
        ['Bearer instead of Token', { headers: { authorization: `Bearer ${key.secret}` } }],
        ['no scheme', { headers: { authorization: key.secret } }],
      ];
      for (const [what, init] of cases) expect(await read(await paced('/sites', init)), what).toEqual(INCORRECT_TOKEN);
      expect(await read(await paced('/sites?token=be2165b7d065e278e7305c1c7ef791f283f5d14b'))).toEqual(INCORRECT_TOKEN);
      expect(await read(await paced(`/sites?token=${key.secret}&token=${key.secret}`))).toEqual(INCORRECT_TOKEN);
    });

    it('a token SE Ranking issued before keygate is imported (only its hash is kept) and works as the document\'s curl line sends it', async () => {
      const other = await ex.createAccount('Migrated', 'business');
      const imported = await ex.kg.admin('/v1/keys/import', { method: 'POST', body: JSON.stringify({ accountId: other.id, name: 'from SE Ranking', secret: 'be2165b7d065e278e7305c1c7ef791f283f5d14b' }) });
      expect(imported.status).toBe(201);
      const importedKey = (await imported.json()) as { id: string; hint: string; mode: string };
      expect(importedKey).toMatchObject({ hint: '…d14b', mode: 'live' });
      const response = await paced('/account/balance', { method: 'GET', headers: { Authorization: 'Token be2165b7d065e278e7305c1c7ef791f283f5d14b' } });
      expect(await read(response)).toEqual({ status: 200, type: JSON_TYPE, body: BALANCE });
      // Back to an unknown token for the tests below, which use it as one.
      await ex.revokeKey(importedKey.id);
    });

    it('a revoked key is an incorrect token from the next request on', async () => {
      const spare = await ex.createKey(account.id, 'spare');
      expect((await paced('/sites', token(spare.secret))).status).toBe(200);
      await ex.cliOk(['keys', 'revoke', spare.id]);
      expect(await read(await paced('/sites', token(spare.secret)))).toEqual(INCORRECT_TOKEN);
    });
  });

  describe('Examples (curl)', () => {
    it('curl -X GET /account/balance -H "Authorization: Token …" → 200 {"currency":"rur","value":2296380.85}', async () => {
      const response = await paced('/account/balance', { method: 'GET', headers: { Authorization: `Token ${key.secret}` } });
      expect(await read(response)).toEqual({ status: 200, type: JSON_TYPE, body: BALANCE });
    });

    it('curl -X GET /sites → 403 {"message":"No token"}', async () => {
      expect(await read(await paced('/sites', { method: 'GET' }))).toEqual(NO_TOKEN);
    });

    it('curl -X POST /sites/ -H "Authorization: Token …" -d \'{"url":…,"title":…}\' → 201 {"site_id":147696}', async () => {
      // curl -d sends application/x-www-form-urlencoded; the body is JSON all the same.
      const response = await paced('/sites/', token(key.secret, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: '{"url":"http://example.com","title":"example1"}',
      }));
      // HTTP/1.0 201 Created, Content-Type: application/json, {"site_id":147696}: as the document prints it.
      expect(await readExact(response)).toEqual({ status: '201 Created', type: 'application/json', text: '{"site_id":147696}' });
    });

    it('the other two answers byte for byte, status line included: 200 OK {"currency":"rur","value":2296380.85} and 403 Forbidden {"message":"No token"}', async () => {
      expect(await readExact(await paced('/account/balance', { headers: { Authorization: `Token ${key.secret}` } }))).toEqual({
        status: '200 OK',
        type: 'application/json',
        text: '{"currency":"rur","value":2296380.85}',
      });
      expect(await readExact(await paced('/sites'))).toEqual({ status: '403 Forbidden', type: 'application/json', text: '{"message":"No token"}' });
    });

    it('the PHP examples: POST /sites with JSON → 201 and a site_id; on an error, $result->message explains it', async () => {
      const created = await read(await paced('/sites', token(key.secret, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8' },
        body: JSON.stringify({ url: 'https://example.com', title: 'my test project' }),
      })));
      expect(created).toEqual({ status: 201, type: 'application/json', body: { site_id: 147697 } });

      const refused = await read(await paced('/sites', { method: 'POST', headers: { Authorization: 'Token API_KEY', 'content-type': 'application/json' }, body: '{}' }));
      expect(refused.status).not.toBe(201);
      expect(`Error ${(refused.body as { message: string }).message}`).toBe('Error Incorrect token');
    });

    it('GET /sites lists the account\'s sites; another account\'s site is 404 Not Found', async () => {
      const mine = (await read(await paced('/sites', token(key.secret)))).body as { id: number; title: string }[];
      expect(mine.map((s) => s.id)).toEqual([147696, 147697]);

      const other = await ex.createAccount('Other Agency');
      const otherKey = await ex.createKey(other.id, 'API key');
      expect((await read(await paced('/sites', token(otherKey.secret)))).body).toEqual([]);
      expect(await read(await paced('/sites/147696', token(otherKey.secret)))).toEqual({ status: 404, type: 'application/json', body: { message: 'Not Found' } });
      expect((await paced('/sites/147696', token(otherKey.secret, { method: 'DELETE' }))).status).toBe(404);
      expect((await paced('/sites/147696', token(key.secret))).status).toBe(200);
    });

    it('data goes both ways in UTF-8, and a POST/PUT body must be JSON: one that is not is 400 Bad Request and creates nothing', async () => {
      const agency = await ex.createAccount('Агентство');
      const agencyKey = await ex.createKey(agency.id, 'API key');
      const title = 'Пример — café 日本';
      const created = await read(await paced('/sites', token(agencyKey.secret, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify({ url: 'https://example.jp', title }) })));
      expect(created.status).toBe(201);
      const siteId = (created.body as { site_id: number }).site_id;
      const shown = await paced(`/sites/${siteId}`, token(agencyKey.secret));
      expect(Buffer.from(await shown.arrayBuffer()).toString('utf8')).toContain(`"title":"${title}"`);

      const BAD_REQUEST = { status: 400, type: JSON_TYPE, body: { message: 'Bad Request' } };
      expect(await read(await paced('/sites', token(agencyKey.secret, { method: 'POST', body: 'url=https://example.org&title=form' })))).toEqual(BAD_REQUEST);
      expect(await read(await paced(`/sites/${siteId}`, token(agencyKey.secret, { method: 'PUT', body: '{"title":' })))).toEqual(BAD_REQUEST);
      expect(((await read(await paced('/sites', token(agencyKey.secret)))).body as { id: number; title: string }[]).map((site) => [site.id, site.title])).toEqual([[siteId, title]]);
    });

    it('"via the token parameter for each invoked method": GET, POST, PUT and DELETE all take ?token=KEY, and the key never reaches the API', async () => {
      const owner = await ex.createAccount('Parameter Co');
      const { secret } = await ex.createKey(owner.id, 'API key');
      // The example API answers 500 to any request that still carries the token parameter.
      const created = await read(await paced(`/sites?token=${secret}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: 'https://param.example', title: 'by parameter' }) }));
      expect(created).toMatchObject({ status: 201, type: JSON_TYPE, body: { site_id: expect.any(Number) as unknown } });
      const siteId = (created.body as { site_id: number }).site_id;
      const renamed = await read(await paced(`/sites/${siteId}?token=${secret}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ title: 'renamed' }) }));
      expect(renamed).toMatchObject({ status: 200, type: JSON_TYPE, body: { id: siteId, title: 'renamed' } });
      expect(await read(await paced(`/sites/${siteId}?token=${secret}`))).toMatchObject({ status: 200, body: { id: siteId, title: 'renamed' } });
      expect((await paced(`/sites/${siteId}?token=${secret}`, { method: 'DELETE' })).status).toBe(204);
      expect(await read(await paced(`/sites?token=${secret}`))).toEqual({ status: 200, type: JSON_TYPE, body: [] });
    });

    it('the document\'s transcripts are HTTP/1.0: a 1.0 client gets the same three answers, each whole and ended by closing the connection', async () => {
      const customer = await ex.createAccount('Old Client Co');
      const { secret } = await ex.createKey(customer.id, 'API key');
      const site = '{"url":"http://example.com","title":"example1"}';
      const exchanges: [request: string, status: string, body: string | RegExp][] = [
        [`GET /account/balance HTTP/1.0\r\nAuthorization: Token ${secret}\r\n\r\n`, '200 OK', '{"currency":"rur","value":2296380.85}'],
        ['GET /sites HTTP/1.0\r\n\r\n', '403 Forbidden', '{"message":"No token"}'],
        [`POST /sites/ HTTP/1.0\r\nAuthorization: Token ${secret}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${site.length}\r\n\r\n${site}`, '201 Created', /^\{"site_id":\d+\}$/],
      ];
      for (const [request, status, body] of exchanges) {
        clock.advance(250);
        const answer = await http10(ex.kg.gatewayUrl, request);
        // Node's server names its own version, 1.1, in the status line (README, "Status lines").
        expect(answer.statusLine, request).toBe(`HTTP/1.1 ${status}`);
        expect(answer.headers['content-type']).toBe('application/json');
        expect(answer.headers['transfer-encoding'], 'a 1.0 client cannot read chunks').toBeUndefined();
        expect(answer.headers.connection).toBe('close');
        if (typeof body === 'string') expect(answer.body).toBe(body);
        else expect(answer.body).toMatch(body);
      }
    });
  });

  describe('Rate limits', () => {
    it('no more than 5 requests per second: the 6th inside one second gets 429', async () => {
      clock.advance(SECOND);
      const results = await burst(key.secret, 6);
      expect(results.slice(0, 5).map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
      expect(results[5]).toEqual({ status: 429, retryAfter: '1', body: TOO_MANY });

      const limited = await ex.call('/sites', token(key.secret));
      expect(await read(limited)).toEqual({ status: 429, type: JSON_TYPE, body: TOO_MANY });
      expect(limited.headers.get('ratelimit-policy')).toBe('"5-per-1s";q=5;w=1');

      // The next second, the key may call again.
      clock.advance(SECOND);
      expect((await ex.call('/sites', token(key.secret))).status).toBe(200);
    });

    it('the limit is per account: a second key of it shares the five; another account\'s key is not slowed down', async () => {
      clock.advance(SECOND);
      const second = await ex.createKey(account.id, 'second key');
      expect((await burst(key.secret, 3)).map((r) => r.status)).toEqual([200, 200, 200]);
      expect((await burst(second.secret, 3)).map((r) => r.status)).toEqual([200, 200, 429]);
      await ex.cli(['keys', 'revoke', second.id]);
      const other = await ex.createAccount('Bystander');
      const otherKey = await ex.createKey(other.id, 'API key');
      expect((await burst(otherKey.secret, 5)).map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
      clock.advance(SECOND);
    });

    it('repeat offenders are blocked for 10 minutes; the next block lasts longer (20, then 40 minutes)', async () => {
      const hammer = await ex.createAccount('Hammer Inc');
      const hammerKey = await ex.createKey(hammer.id, 'API key');
      const bystander = await ex.createKey(account.id, 'bystander');

      // Offence 1: 5 admitted, then 10 refused inside a minute; the 10th starts a 10-minute block.
      const start = clock.now();
      const first = await burst(hammerKey.secret, 15);
      expect(first.slice(0, 5).every((r) => r.status === 200)).toBe(true);
      expect(first.slice(5, 14).map((r) => r.retryAfter)).toEqual(Array(9).fill('1'));
      expect(first[14]).toEqual({ status: 429, retryAfter: '600', body: TOO_MANY });

      // A second later the one-second window is empty, but the key is still blocked.
      clock.advance(SECOND);
      expect((await burst(hammerKey.secret, 1))[0]).toEqual({ status: 429, retryAfter: '599', body: TOO_MANY });
      // The account is blocked, whichever of its keys calls; other accounts' keys are not.
      const hammerSecond = await ex.createKey(hammer.id, 'second key');
      expect((await burst(hammerSecond.secret, 1))[0]).toEqual({ status: 429, retryAfter: '599', body: TOO_MANY });
      expect((await ex.call('/sites', token(bystander.secret))).status).toBe(200);
      clock.advance(start + 10 * MINUTE - 1 - clock.now());
      expect((await burst(hammerKey.secret, 1))[0]).toMatchObject({ status: 429, retryAfter: '1' });
      clock.advance(1);
      expect((await burst(hammerKey.secret, 1))[0]).toEqual({ status: 200, retryAfter: null, body: BALANCE });

      // Offence 2: the block doubles to 20 minutes.
      clock.advance(SECOND);
      const secondStart = clock.now();
      const second = await burst(hammerKey.secret, 15);
      expect(second[14]).toEqual({ status: 429, retryAfter: '1200', body: TOO_MANY });
      clock.advance(20 * MINUTE - 1);
      expect((await burst(hammerKey.secret, 1))[0]?.status).toBe(429);
      clock.advance(1);
      expect(clock.now() - secondStart).toBe(20 * MINUTE);
      expect((await burst(hammerKey.secret, 1))[0]?.status).toBe(200);

      // Offence 3: 40 minutes.
      clock.advance(SECOND);
      const third = await burst(hammerKey.secret, 15);
      expect(third[14]?.retryAfter).toBe('2400');

      // After a week without blocks the key starts again from 10 minutes.
      clock.advance(40 * MINUTE + 7 * DAY + SECOND);
      const later = await burst(hammerKey.secret, 15);
      expect(later[14]?.retryAfter).toBe('600');
      clock.advance(10 * MINUTE);
    });

    it('exactly at the limit: one request every 200 ms (5 in every second, never a 6th) is always served, for a minute, and never blocked', async () => {
      const steady = await ex.createAccount('Steady Ltd');
      const steadyKey = await ex.createKey(steady.id, 'API key');
      clock.advance(SECOND);
      const statuses = new Set<number>();
      for (let i = 0; i < 300; i++) {
        clock.advance(200);
        statuses.add((await burst(steadyKey.secret, 1))[0]?.status ?? 0);
      }
      expect([...statuses]).toEqual([200]);
      clock.advance(SECOND);
    });

    it('a client that keeps sending after 429s, 10 requests a second, is blocked within two seconds: 5 served and 5 refused each second, the 10th refusal starts the 10 minutes', async () => {
      const eager = await ex.createAccount('Eager Ltd');
      const eagerKey = await ex.createKey(eager.id, 'API key');
      clock.advance(SECOND);
      const start = clock.now();
      const seen: string[] = [];
      for (let i = 0; i < 20; i++) {
        clock.advance(i === 0 ? 0 : 100);
        const [answer] = await burst(eagerKey.secret, 1);
        seen.push(`${answer?.status} ${answer?.retryAfter ?? '-'}`);
      }
      const served = Array<string>(5).fill('200 -');
      const slowDown = (n: number) => Array<string>(n).fill('429 1');
      // Each second: the first five served, the next five told to retry in a second; the
      // 10th refusal (the last request, 1.9 s in) is the block's first answer.
      expect(seen).toEqual([...served, ...slowDown(5), ...served, ...slowDown(4), '429 600']);
      expect(clock.now() - start).toBe(1_900);
      // A second later its window is empty, and it is still blocked, for the rest of the 10 minutes.
      clock.advance(SECOND);
      expect((await burst(eagerKey.secret, 1))[0]).toEqual({ status: 429, retryAfter: '599', body: TOO_MANY });
      clock.advance(10 * MINUTE);
    });

    it('going over now and then is not "repeatedly": one 429 every 10 seconds never leads to a block', async () => {
      const careful = await ex.createAccount('Careful Ltd');
      const carefulKey = await ex.createKey(careful.id, 'API key');
      for (let round = 0; round < 12; round++) {
        const results = await burst(carefulKey.secret, 6);
        expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 429]);
        expect(results[5]?.retryAfter).toBe('1');
        clock.advance(10 * SECOND);
      }
    });
  });

  describe('Error handling: the rows the access layer owns', () => {
    it('403 No access: a plan without API access, even with a valid key', async () => {
      for (const plan of ['essential', 'pro']) {
        const small = await ex.createAccount(`On ${plan}`, plan);
        const smallKey = await ex.createKey(small.id, 'API key');
        // keygate's own endpoint too: the balance is part of the API the plan does not include.
        for (const path of ['/sites', '/account/balance']) {
          expect(await readExact(await paced(path, token(smallKey.secret))), `${plan} ${path}`).toEqual({ status: '403 Forbidden', type: JSON_TYPE, text: '{"message":"No access"}' });
        }
      }
    });

    it('"All API method invocations are HTTP GET/POST/PUT/DELETE requests": any other method is 405 Method Not Allowed, naming those four (and HEAD), and reaches no method', async () => {
      const NOT_ALLOWED = { status: 405, type: JSON_TYPE, body: { message: 'Method Not Allowed' } };
      const site = ((await read(await paced('/sites', token(key.secret, { method: 'POST', body: JSON.stringify({ url: 'https://patch.example', title: 'before' }) })))).body as { site_id: number }).site_id;
      const refused: [method: string, path: string, init: RequestInit][] = [
        ['PATCH', `/sites/${site}`, { method: 'PATCH', body: '{"title":"after"}' }],
        ['OPTIONS', '/sites', { method: 'OPTIONS' }],
        ['OPTIONS', '/account/balance', { method: 'OPTIONS' }],
      ];
      for (const [method, path, init] of refused) {
        const answer = await paced(path, token(key.secret, init));
        expect(answer.headers.get('allow'), `${method} ${path}`).toBe('GET, HEAD, POST, PUT, DELETE');
        expect(await read(answer), `${method} ${path}`).toEqual(NOT_ALLOWED);
      }
      // A method fetch will not send, as written; the same answer.
      clock.advance(250);
      const traced = await rawRequest(ex.kg.gatewayUrl, `TRACE /sites HTTP/1.1\r\nAuthorization: Token ${key.secret}`);
      expect({ status: traced.status, body: JSON.parse(traced.body) as unknown }).toEqual({ status: 405, body: NOT_ALLOWED.body });
      // The PATCH changed nothing; without a key it is still No token.
      expect((await read(await paced(`/sites/${site}`, token(key.secret)))).body).toMatchObject({ title: 'before' });
      expect(await read(await paced(`/sites/${site}`, { method: 'PATCH', body: '{}' }))).toEqual(NO_TOKEN);
    });

    it('"an HTTP 4xx code ... with a description of the error": a URL or headers too large for keygate are 414 and 431 in {"message": ...}', async () => {
      expect(await read(await paced(`/sites?q=${'a'.repeat(20_000)}`, token(key.secret)))).toEqual({ status: 414, type: JSON_TYPE, body: { message: 'The request URL is too long.' } });
      expect(await read(await paced('/sites', token(key.secret, { headers: { 'x-padding': 'a'.repeat(40_000) } })))).toEqual({ status: 431, type: JSON_TYPE, body: { message: 'Request headers are too large.' } });
    });

    it('403 No token, 403 Incorrect token, 400 Bad Request, 429 Too Many Requests, 404 Not Found — all in {"message": ...}', async () => {
      clock.advance(SECOND);
      expect(await read(await paced('/keywords/123'))).toEqual(NO_TOKEN);
      expect(await read(await paced('/keywords/123', token('0'.repeat(40))))).toEqual(INCORRECT_TOKEN);
      expect(await read(await paced('/no/such/method', token(key.secret)))).toEqual({ status: 404, type: 'application/json', body: { message: 'Not Found' } });
      // 400 Bad Request: a request keygate cannot judge as written (a path an upstream would read as another).
      // (Sent as written: fetch would resolve the `..` itself.)
      for (const odd of ['/sites/../account/balance', '//sites']) {
        clock.advance(100);
        const answer = await rawRequest(ex.kg.gatewayUrl, `GET ${odd} HTTP/1.1\r\nAuthorization: Token ${key.secret}`);
        expect({ status: answer.status, body: JSON.parse(answer.body) }, odd).toEqual({ status: 400, body: { message: 'Bad Request' } });
      }
      clock.advance(SECOND);
      const results = await burst(key.secret, 6);
      expect(results[5]).toMatchObject({ status: 429, body: TOO_MANY });
      clock.advance(SECOND);
    });
  });

  describe('Error handling: the API itself failing', () => {
    it('500 Server error when the API cannot be reached, and when it does not answer in time', async () => {
      const { down, slow, close } = await startFailingExamples('seranking-project');
      try {
        for (const failing of [down, slow]) {
          const customer = await failing.createAccount('Customer');
          const { secret } = await failing.createKey(customer.id, 'API key');
          expect(await read(await failing.call('/sites', token(secret)))).toEqual({ status: 500, type: JSON_TYPE, body: { message: 'Server error' } });
        }
      } finally {
        await close();
      }
    });
  });

  describe('Error handling: the rows the API itself answers (the upstream), passed through', () => {
    let owner: KeyOut;
    let viewer: KeyOut;
    let stranger: KeyOut;
    let ownerAccount: AccountOut;
    let siteId: number;
    let siteEngineId: number;
    let keywordIds: number[];

    const json = (key: string, method: string, body: unknown) => token(key, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const balance = async (secret: string) => ((await read(await paced('/account/balance', token(secret)))).body as typeof BALANCE).value;
    /** The answer, and what it took off the account's balance. */
    const costOf = async (secret: string, path: string, init: RequestInit) => {
      const before = await balance(secret);
      const response = await read(await paced(path, init));
      return { ...response, spent: before - (await balance(secret)) };
    };

    beforeAll(async () => {
      clock.advance(SECOND);
      ownerAccount = await ex.createAccount('Owner Agency');
      owner = await ex.createKey(ownerAccount.id, 'API key');
      const viewerAccount = await ex.createAccount('Client Co');
      viewer = await ex.createKey(viewerAccount.id, 'API key');
      stranger = await ex.createKey((await ex.createAccount('Stranger Ltd')).id, 'API key');
      siteId = ((await read(await paced('/sites', json(owner.secret, 'POST', { url: 'https://owner.example', title: 'owner' })))).body as { site_id: number }).site_id;
      // The owner shares the site with the client, read-only.
      expect((await paced(`/sites/${siteId}/viewers`, json(owner.secret, 'POST', { account: viewerAccount.id }))).status).toBe(204);
    });

    it('a site\'s search engines, keywords and positions: add, list, read by date range, delete by ids', async () => {
      const engines = (await read(await paced('/system/search-engines', token(owner.secret)))).body as { id: number; name: string }[];
      expect(engines.map((e) => e.id)).toContain(200);

      const added = await read(await paced(`/sites/${siteId}/search-engines`, json(owner.secret, 'POST', { search_engine_id: 200, lang_code: 'en' })));
      expect(added).toMatchObject({ status: 201, type: JSON_TYPE, body: { site_engine_id: expect.any(Number) as unknown } });
      siteEngineId = (added.body as { site_engine_id: number }).site_engine_id;
      expect((await read(await paced(`/sites/${siteId}/search-engines`, token(owner.secret)))).body).toEqual([
        { site_engine_id: siteEngineId, search_engine_id: 200, region_name: null, lang_code: 'en' },
      ]);

      const keywords = await read(await paced(`/sites/${siteId}/keywords`, json(owner.secret, 'POST', [{ keyword: 'seo tools' }, { keyword: 'rank tracker' }, { keyword: 'backlinks' }])));
      expect(keywords).toMatchObject({ status: 201, body: { added: 3 } });
      keywordIds = (keywords.body as { ids: number[] }).ids;
      expect(keywordIds).toHaveLength(3);

      const positions = await read(await paced(`/sites/${siteId}/positions?date_from=2026-11-01&date_to=2026-11-03&site_engine_id=${siteEngineId}`, token(owner.secret)));
      expect(positions.status).toBe(200);
      const [engine] = positions.body as { site_engine_id: number; keywords: { name: string; positions: { date: string; pos: number }[] }[] }[];
      expect(engine?.site_engine_id).toBe(siteEngineId);
      expect(engine?.keywords.map((k) => k.name)).toEqual(['seo tools', 'rank tracker', 'backlinks']);
      expect(engine?.keywords[0]?.positions.map((p) => p.date)).toEqual(['2026-11-01', '2026-11-02', '2026-11-03']);

      const deleted = await paced(`/sites/${siteId}/keywords?keywords_ids[]=${keywordIds[2]}`, token(owner.secret, { method: 'DELETE' }));
      expect(deleted.status).toBe(204);
      expect(((await read(await paced(`/sites/${siteId}/keywords`, token(owner.secret)))).body as { name: string }[]).map((k) => k.name)).toEqual(['seo tools', 'rank tracker']);
    });

    it('PUT changes a site (the document\'s GET/POST/PUT/DELETE): its title or address, JSON in the body; a bad address is 400 Bad Request', async () => {
      const renamed = await read(await paced(`/sites/${siteId}`, json(owner.secret, 'PUT', { title: 'Owner (main)' })));
      expect(renamed).toMatchObject({ status: 200, type: JSON_TYPE, body: { id: siteId, title: 'Owner (main)', url: 'https://owner.example' } });
      const moved = await read(await paced(`/sites/${siteId}`, json(owner.secret, 'PUT', { url: 'https://owner.example/new' })));
      expect(moved).toMatchObject({ status: 200, body: { id: siteId, title: 'Owner (main)', url: 'https://owner.example/new' } });
      expect((await paced(`/sites/${siteId}`, json(owner.secret, 'PUT', { url: 'https://owner.example' }))).status).toBe(200);
      const BAD_REQUEST = { status: 400, type: JSON_TYPE, body: { message: 'Bad Request' } };
      expect(await read(await paced(`/sites/${siteId}`, json(owner.secret, 'PUT', { url: 'not an address', title: 'never' })))).toEqual(BAD_REQUEST);
      expect(await read(await paced(`/sites/${siteId}`, json(owner.secret, 'PUT', {})))).toEqual(BAD_REQUEST);
      // The refused changes changed nothing.
      expect((await read(await paced(`/sites/${siteId}`, token(owner.secret)))).body).toMatchObject({ title: 'Owner (main)', url: 'https://owner.example' });
    });

    it('a site shared read-only: the account it was shared with reads it, and changing it is 403 Access denied; anyone else gets 404 Not Found', async () => {
      const ACCESS_DENIED = { status: 403, type: JSON_TYPE, body: { message: 'Access denied' } };
      const listed = (await read(await paced('/sites', token(viewer.secret)))).body as { id: number; access: string }[];
      expect(listed).toEqual([expect.objectContaining({ id: siteId, access: 'view' })]);
      expect((await paced(`/sites/${siteId}/keywords`, token(viewer.secret))).status).toBe(200);
      expect((await paced(`/sites/${siteId}/positions?date_from=2026-11-01&date_to=2026-11-01`, token(viewer.secret))).status).toBe(200);

      const changes: [string, string, RequestInit][] = [
        ['add keywords', `/sites/${siteId}/keywords`, json(viewer.secret, 'POST', [{ keyword: 'mine now' }])],
        ['delete keywords', `/sites/${siteId}/keywords?keywords_ids[]=${keywordIds[0]}`, token(viewer.secret, { method: 'DELETE' })],
        ['add a search engine', `/sites/${siteId}/search-engines`, json(viewer.secret, 'POST', { search_engine_id: 411 })],
        ['share it on', `/sites/${siteId}/viewers`, json(viewer.secret, 'POST', { account: 'acc_someone' })],
        ['delete the site', `/sites/${siteId}`, token(viewer.secret, { method: 'DELETE' })],
        ['rename the site', `/sites/${siteId}`, json(viewer.secret, 'PUT', { title: 'mine now' })],
      ];
      for (const [what, path, init] of changes) expect(await read(await paced(path, init)), what).toEqual(ACCESS_DENIED);
      // Nothing changed.
      expect((await read(await paced(`/sites/${siteId}/keywords`, token(owner.secret)))).body).toHaveLength(2);
      expect((await read(await paced(`/sites/${siteId}`, token(owner.secret)))).body).toMatchObject({ title: 'Owner (main)' });

      // Not shared with this account: the site does not exist for it, for reading and changing alike.
      const NOT_FOUND = { status: 404, type: JSON_TYPE, body: { message: 'Not Found' } };
      expect(await read(await paced(`/sites/${siteId}/keywords`, token(stranger.secret)))).toEqual(NOT_FOUND);
      expect(await read(await paced(`/sites/${siteId}/keywords?keywords_ids[]=${keywordIds[0]}`, token(stranger.secret, { method: 'DELETE' })))).toEqual(NOT_FOUND);
      expect(await read(await paced(`/sites/${siteId}`, json(stranger.secret, 'PUT', { title: 'mine now' })))).toEqual(NOT_FOUND);
    });

    it('every other row the API answers itself arrives as the table writes it, in {"message": ...}, and costs nothing', async () => {
      const DELETE = { method: 'DELETE' };
      const addEngine = (id: number) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ search_engine_id: id }) });
      const addKeyword = { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[{"keyword":"mine now"}]' };
      const positions = `/sites/${siteId}/positions`;
      const rows: [status: number, message: string, path: string, key: KeyOut, init: RequestInit][] = [
        [400, 'Invalid keyword_id', `/sites/${siteId}/keywords?keywords_ids[]=abc`, owner, DELETE],
        [400, 'Invalid keyword_id', `/sites/${siteId}/keywords?keywords_ids[]=${keywordIds[0]}&keywords_ids[]=999999`, owner, DELETE],
        [400, 'Invalid date', `${positions}?date_from=2026-02-30&date_to=2026-03-01`, owner, {}],
        [400, 'Invalid date', `${positions}?date_from=01.11.2026&date_to=2026-11-03`, owner, {}],
        [400, 'Invalid date', `${positions}?date_from=2026-11-03&date_to=2026-11-01`, owner, {}],
        [400, 'Invalid date', `${positions}?date_from=2025-11-01&date_to=2026-11-02`, owner, {}],
        [400, 'Invalid site_engine_id', `${positions}?date_from=2026-11-01&date_to=2026-11-01&site_engine_id=google`, owner, {}],
        [400, 'No ids in request', `/sites/${siteId}/keywords`, owner, DELETE],
        [403, 'Access denied', `/sites/${siteId}/keywords`, viewer, addKeyword],
        [404, 'Unknown search_engine_id', `/sites/${siteId}/search-engines`, owner, addEngine(999)],
        [404, 'Unknown site_engine_id', `${positions}?date_from=2026-11-01&date_to=2026-11-01&site_engine_id=${siteEngineId + 1000}`, owner, {}],
      ];
      for (const [status, message, path, key, init] of rows) {
        expect(await costOf(key.secret, path, token(key.secret, init)), `${message}: ${path}`).toEqual({ status, type: JSON_TYPE, body: { message }, spent: 0 });
      }
      // The keyword named next to the bad id was not deleted (all or nothing).
      expect((await read(await paced(`/sites/${siteId}/keywords`, token(owner.secret)))).body).toHaveLength(2);

      const usage = await ex.cliJson<{ meters: { balance: { usage: number; remaining: number } } }>(['accounts', 'usage', ownerAccount.id]);
      expect(usage.meters.balance).toMatchObject({ usage: 0, remaining: BALANCE.value });
    });
  });

  describe('One command', () => {
    it('node bin/keygate.js serve --config <the seranking-project profile> starts gateway and upstream (upstream.spawn); a CLI key works through it', async () => {
      const server = await runServeCommand('seranking-project');
      try {
        const acme = JSON.parse((await server.cli(['accounts', 'create', '--name', 'Acme', '--json'])).stdout) as AccountOut;
        const first = JSON.parse((await server.cli(['keys', 'create', '--account', acme.id, '--name', 'API key', '--json'])).stdout) as KeyOut;
        expect(await read(await fetch(`${server.gatewayUrl}/account/balance`, token(first.secret)))).toEqual({ status: 200, type: JSON_TYPE, body: BALANCE });
        const created = await read(await fetch(`${server.gatewayUrl}/sites/`, token(first.secret, { method: 'POST', body: '{"url":"http://example.com","title":"example1"}' })));
        expect(created).toEqual({ status: 201, type: 'application/json', body: { site_id: 147696 } });
        expect(await read(await fetch(`${server.gatewayUrl}/sites`))).toEqual(NO_TOKEN);
      } finally {
        expect(await server.stop()).toBe(0);
      }
    });
  });
});
