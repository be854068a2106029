/**
 * shared/seeds/000 (Ranktracker REST API, Authentication), walked top to bottom against
 * examples/ranktracker: the shipped keygate.yaml and upstream.mjs on loopback, a real
 * SQLite file, keys made with the `keygate` CLI, real HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlledClock, rawRequest, read, readExact, runServeCommand, startExample, startFailingExamples, type AccountOut, type KeyOut, type RunningExample } from '../support/example.js';

const UNAUTHORIZED = { errors: [{ code: 'unauthorized', status: 401, detail: 'Invalid or missing API key.' }] };
const FORBIDDEN = {
  errors: [
    {
      code: 'forbidden',
      status: 403,
      detail: 'API access is not enabled for your plan. Check apiEnabled via /v1/account/usage; upgrade the plan if needed.',
    },
  ],
};
/** An expired plan's 403: the document says nothing of expiry, so the profile words it (README.md). */
const PLAN_EXPIRED = { errors: [{ code: 'forbidden', status: 403, detail: 'Your plan has expired. Renew it to use the API.' }] };
const JSON_TYPE = 'application/json; charset=utf-8';
/** How a scope is refused by an API that has none. */
const NO_SCOPES = 'not allowed: keys of this API carry no scopes (the profile lists none under scopes); give the key none, or list the scopes under scopes in the profile';
const YEAR_MS = 365 * 86_400_000;

/** "Authorization: tkn_usr_your_api_key_here" — no Bearer prefix. */
const auth = (key: string, init: RequestInit = {}): RequestInit => ({ ...init, headers: { authorization: key, ...(init.headers as Record<string, string>) } });
const json = (key: string, method: string, body: unknown): RequestInit => auth(key, { method, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

describe('Ranktracker REST API: shared/seeds/000 against examples/ranktracker', () => {
  const clock = controlledClock();
  let ex: RunningExample;
  let acme: AccountOut;
  let acmeKey: KeyOut;
  let acmeDomainId: string;
  let acmeKeywordId: string;

  beforeAll(async () => {
    ex = await startExample('ranktracker', { clock });
  });
  afterAll(async () => {
    await ex?.close();
  });

  describe('How it works', () => {
    it('a key created with the CLI is tkn_usr_…, shown once, and carries no scopes and no expiry', async () => {
      acme = await ex.cliJson<AccountOut>(['accounts', 'create', '--name', 'Acme', '--plan', 'pro']);
      acmeKey = await ex.cliJson<KeyOut>(['keys', 'create', '--account', acme.id, '--name', 'production']);
      expect(acmeKey.secret).toMatch(/^tkn_usr_[0-9A-Za-z]{30}$/);
      expect(acmeKey.hint).toBe(`tkn_usr_…${acmeKey.secret.slice(-4)}`);
      expect(acmeKey.scopes).toEqual([]);
      expect(acmeKey.expiresAt).toBeNull();

      const listed = await ex.cliOk(['keys', 'list', '--account', acme.id, '--json']);
      expect(listed.stdout).toContain(acmeKey.id);
      expect(listed.stdout).not.toContain(acmeKey.secret);
    });

    it('curl /v1/domains -H "Authorization: tkn_usr_…" answers with the account\'s domains under "data"', async () => {
      const response = await ex.call('/v1/domains', auth(acmeKey.secret));
      expect(await read(response)).toEqual({ status: 200, type: JSON_TYPE, body: { data: [] } });
    });

    it('the same header goes on every endpoint under /v1, for reads and writes alike', async () => {
      const created = await read(await ex.call('/v1/domains', json(acmeKey.secret, 'POST', { data: { type: 'domains', attributes: { domain: 'acme.example' } } })));
      expect(created.status).toBe(201);
      const domain = (created.body as { data: { id: string; type: string; attributes: { domain: string } } }).data;
      expect(domain).toMatchObject({ type: 'domains', attributes: { domain: 'acme.example' } });
      acmeDomainId = domain.id;

      const listed = await read(await ex.call('/v1/domains', auth(acmeKey.secret)));
      expect(listed.body).toEqual({ data: [domain] });

      const keywords = await read(
        await ex.call(`/v1/domains/${acmeDomainId}/keywords`, json(acmeKey.secret, 'POST', { data: { type: 'keywords', attributes: { keywords: ['rank tracker', 'serp api'], locations: ['us', 'gb', 'de'] } } })),
      );
      expect(keywords.status).toBe(201);
      const [first] = (keywords.body as { data: { id: string }[] }).data;
      acmeKeywordId = (first as { id: string }).id;

      const one = await read(await ex.call(`/v1/keywords/${acmeKeywordId}`, auth(acmeKey.secret)));
      expect(one.status).toBe(200);
      expect(one.body).toMatchObject({ data: { id: acmeKeywordId, type: 'keywords', attributes: { keyword: 'rank tracker' } } });

      const listed2 = await read(await ex.call(`/v1/domains/${acmeDomainId}/keywords`, auth(acmeKey.secret)));
      expect((listed2.body as { data: unknown[] }).data).toHaveLength(2);
    });
  });

  describe('Creating and revoking keys', () => {
    it('a deleted (revoked) key stops working immediately', async () => {
      const temporary = await ex.cliJson<KeyOut>(['keys', 'create', '--account', acme.id, '--name', 'temporary']);
      expect((await ex.call('/v1/domains', auth(temporary.secret))).status).toBe(200);

      await ex.cliOk(['keys', 'revoke', temporary.id]);
      expect(await read(await ex.call('/v1/domains', auth(temporary.secret)))).toEqual({ status: 401, type: JSON_TYPE, body: UNAUTHORIZED });
      // The other key of the account is untouched.
      expect((await ex.call('/v1/domains', auth(acmeKey.secret))).status).toBe(200);
    });

    it('keys are made in the app, not through this API: a key opens no key-making /v1 endpoint, nor the admin API', async () => {
      const before = await ex.cliJson<unknown[]>(['keys', 'list', '--account', acme.id]);
      for (const path of ['/v1/keys', '/v1/api-keys', '/v1/account/keys']) {
        expect(await read(await ex.call(path, json(acmeKey.secret, 'POST', { name: 'minted' }))), path).toEqual({ status: 404, type: JSON_TYPE, body: { errors: [{ code: 'not_found', status: 404, detail: 'No such endpoint.' }] } });
      }
      for (const authorization of [acmeKey.secret, `Bearer ${acmeKey.secret}`]) {
        const admin = await fetch(`${ex.kg.adminUrl}/v1/keys`, { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify({ accountId: acme.id, name: 'minted' }) });
        expect(admin.status, authorization).toBe(401);
        // The refusal does not repeat the key it was given.
        expect(await admin.text()).not.toContain(acmeKey.secret);
      }
      expect(await ex.cliJson<unknown[]>(['keys', 'list', '--account', acme.id])).toHaveLength(before.length);
    });
  });

  describe('What a key can and cannot do', () => {
    it('no scopes: one key reaches every endpoint of the account, including usage', async () => {
      for (const path of ['/v1/domains', `/v1/domains/${acmeDomainId}`, `/v1/domains/${acmeDomainId}/keywords`, `/v1/keywords/${acmeKeywordId}`, '/v1/account/usage']) {
        expect((await ex.call(path, auth(acmeKey.secret))).status, path).toBe(200);
      }
    });

    it('no scopes: a read-only or resource-limited key cannot be minted, from the CLI or the admin API', async () => {
      const before = await ex.cliJson<unknown[]>(['keys', 'list', '--account', acme.id]);
      // The CLI repeats no scope the profile does not declare (it may be a key pasted there): here, all but *.
      for (const [scopes, named] of [['read', 'the scope given'], ['domains:read', 'the scope given'], ['*', '*']] as const) {
        const refused = await ex.cli(['keys', 'create', '--account', acme.id, '--name', 'read-only', '--scopes', scopes]);
        expect([refused.code, refused.stderr], scopes).toEqual([1, `error: --scopes: ${named} is ${NO_SCOPES}\n`]);
      }
      const admin = await ex.kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId: acme.id, name: 'read-only', scopes: ['domains:read'] }) });
      expect(admin.status).toBe(400);
      expect(await admin.json()).toMatchObject({ status: 400, detail: `scope domains:read ${NO_SCOPES}` });
      expect(await ex.cliJson<unknown[]>(['keys', 'list', '--account', acme.id])).toHaveLength(before.length);
    });

    it('account-scoped: another account\'s domains and keywords are 404, as if they did not exist', async () => {
      const globex = await ex.createAccount('Globex', 'pro');
      const globexKey = await ex.createKey(globex.id, 'globex');

      expect((await read(await ex.call('/v1/domains', auth(globexKey.secret)))).body).toEqual({ data: [] });
      const notFound = { errors: [{ code: 'not_found', status: 404, detail: 'Domain not found.' }] };
      expect(await read(await ex.call(`/v1/domains/${acmeDomainId}`, auth(globexKey.secret)))).toEqual({ status: 404, type: JSON_TYPE, body: notFound });
      expect((await read(await ex.call(`/v1/domains/${acmeDomainId}/keywords`, auth(globexKey.secret)))).body).toEqual(notFound);
      expect(await read(await ex.call(`/v1/domains/${acmeDomainId}`, auth(globexKey.secret, { method: 'DELETE' })))).toMatchObject({ status: 404 });
      expect(await read(await ex.call(`/v1/keywords/${acmeKeywordId}`, auth(globexKey.secret)))).toMatchObject({
        status: 404,
        body: { errors: [{ code: 'not_found', status: 404, detail: 'Keyword not found.' }] },
      });
      // ...and Acme still has its domain: the DELETE above touched nothing.
      expect((await ex.call(`/v1/domains/${acmeDomainId}`, auth(acmeKey.secret))).status).toBe(200);
    });
  });

  describe('What a key can and cannot do: account-scoped writes', () => {
    it('another account\'s domain takes no keywords and its keywords cannot be deleted: 404, as if they did not exist, and nothing changes', async () => {
      const hooli = await ex.createAccount('Hooli', 'pro');
      const hooliKey = await ex.createKey(hooli.id, 'hooli');
      expect(await read(await ex.call(`/v1/domains/${acmeDomainId}/keywords`, json(hooliKey.secret, 'POST', { data: { type: 'keywords', attributes: { keywords: ['stolen'] } } })))).toEqual({
        status: 404,
        type: JSON_TYPE,
        body: { errors: [{ code: 'not_found', status: 404, detail: 'Domain not found.' }] },
      });
      expect(await read(await ex.call(`/v1/keywords/${acmeKeywordId}`, auth(hooliKey.secret, { method: 'DELETE' })))).toEqual({
        status: 404,
        type: JSON_TYPE,
        body: { errors: [{ code: 'not_found', status: 404, detail: 'Keyword not found.' }] },
      });
      const kept = (await read(await ex.call(`/v1/domains/${acmeDomainId}/keywords`, auth(acmeKey.secret)))).body as { data: { attributes: { keyword: string } }[] };
      expect(kept.data.map((k) => k.attributes.keyword)).toEqual(['rank tracker', 'serp api']);
    });
  });

  describe('Rotating a key', () => {
    it('create a new key, both work at once (zero downtime), then delete the old one', async () => {
      const account = await ex.createAccount('Initech', 'pro');
      const old = await ex.cliJson<KeyOut>(['keys', 'create', '--account', account.id, '--name', 'v1']);
      await ex.call('/v1/domains', json(old.secret, 'POST', { domain: 'initech.example' }));

      // Step 1: a new key in the app.
      const next = await ex.cliJson<KeyOut>(['keys', 'create', '--account', account.id, '--name', 'v2']);
      // Step 2: both are valid; traffic flows on either and sees the same data.
      const withOld = await read(await ex.call('/v1/domains', auth(old.secret)));
      const withNew = await read(await ex.call('/v1/domains', auth(next.secret)));
      expect(withOld.status).toBe(200);
      expect(withNew).toEqual(withOld);
      // Step 3: delete the old key.
      await ex.cliOk(['keys', 'revoke', old.id]);
      expect(await read(await ex.call('/v1/domains', auth(old.secret)))).toEqual({ status: 401, type: JSON_TYPE, body: UNAUTHORIZED });
      expect(await read(await ex.call('/v1/domains', auth(next.secret)))).toEqual(withOld);
    });

    it('there is no in-place "roll" and no expiry: keys rotate and keys create --expires are refused', async () => {
      const account = await ex.createAccount('Globex', 'pro');
      const key = await ex.createKey(account.id, 'v1');
      const roll = await ex.cli(['keys', 'rotate', key.id, '--overlap', '1h']);
      expect(roll.code).toBe(1);
      expect(roll.stderr).toContain('this API has no in-place rotation: create a new key, move your integration to it, then revoke the old one');
      const expiring = await ex.cli(['keys', 'create', '--account', account.id, '--name', 'v2', '--expires', '90d']);
      expect(expiring.code).toBe(1);
      expect(expiring.stderr).toContain("this API's keys do not expire: a key works until it is revoked");
      // The key is untouched and still the only one.
      expect((await ex.call('/v1/domains', auth(key.secret))).status).toBe(200);
      expect(await ex.cliJson<unknown[]>(['keys', 'list', '--account', account.id])).toHaveLength(1);
    });
  });

  describe('Your plan must have API access enabled', () => {
    it('a valid key on a plan without API access gets 403, while /v1/account/usage answers apiEnabled: false', async () => {
      const hobby = await ex.cliJson<AccountOut>(['accounts', 'create', '--name', 'Hobby', '--plan', 'starter']);
      const key = await ex.createKey(hobby.id, 'hobby');

      expect(await read(await ex.call('/v1/domains', auth(key.secret)))).toEqual({ status: 403, type: JSON_TYPE, body: FORBIDDEN });
      expect((await read(await ex.call('/v1/domains', json(key.secret, 'POST', { domain: 'hobby.example' })))).status).toBe(403);

      expect(await read(await ex.call('/v1/account/usage', auth(key.secret)))).toEqual({
        status: 200,
        type: JSON_TYPE,
        body: {
          data: {
            id: hobby.id,
            type: 'usage',
            attributes: { apiEnabled: false, keywords: { usage: 0, limit: 500, remaining: 500 }, dataRows: { usage: 0, limit: 3000, remaining: 3000 } },
          },
        },
      });

      // "upgrade your plan": the same key works at once.
      await ex.cliOk(['accounts', 'update', hobby.id, '--plan', 'pro']);
      expect((await ex.call('/v1/domains', auth(key.secret))).status).toBe(200);
      const usage = (await read(await ex.call('/v1/account/usage', auth(key.secret)))).body as { data: { attributes: { apiEnabled: boolean } } };
      expect(usage.data.attributes.apiEnabled).toBe(true);

      // "...or contact support to turn API access on": the operator's switch works the same way.
      await ex.cliOk(['accounts', 'update', hobby.id, '--api-access', 'off']);
      expect(await read(await ex.call('/v1/domains', auth(key.secret)))).toEqual({ status: 403, type: JSON_TYPE, body: FORBIDDEN });
      const off = (await read(await ex.call('/v1/account/usage', auth(key.secret)))).body as { data: { attributes: { apiEnabled: boolean } } };
      expect(off.data.attributes.apiEnabled).toBe(false);
    });

    it('"It also covers other forbidden actions": a valid key whose plan has expired gets a 403 forbidden saying so (not "API access is not enabled"), and usage answers apiEnabled: false', async () => {
      const lapsed = await ex.createAccount('Lapsed Co', 'pro');
      const key = await ex.createKey(lapsed.id, 'k');
      expect((await ex.call('/v1/domains', auth(key.secret))).status).toBe(200);
      await ex.cliOk(['accounts', 'update', lapsed.id, '--plan-expires', '2020-01-01']);
      expect(await readExact(await ex.call('/v1/domains', auth(key.secret)))).toEqual({
        status: '403 Forbidden',
        type: JSON_TYPE,
        text: '{"errors":[{"code":"forbidden","status":403,"detail":"Your plan has expired. Renew it to use the API."}]}',
      });
      expect(await read(await ex.call('/v1/domains', json(key.secret, 'POST', { domain: 'lapsed.example' })))).toEqual({ status: 403, type: JSON_TYPE, body: PLAN_EXPIRED });
      const usage = await read(await ex.call('/v1/account/usage', auth(key.secret)));
      expect(usage).toMatchObject({ status: 200, body: { data: { id: lapsed.id, type: 'usage', attributes: { apiEnabled: false } } } });
      // Still 403, not 401: the key itself authenticated fine.
      expect((await ex.call('/v1/domains', auth(key.secret))).status).toBe(403);
    });

    it('GET /v1/account/usage reports keywords and dataRows as usage, limit and remaining', async () => {
      // Acme tracks 2 keywords in 3 locations: the upstream reports 2 keywords and 6 data rows.
      await ex.call('/v1/domains', auth(acmeKey.secret));
      const measured = await read(await ex.call('/v1/account/usage', auth(acmeKey.secret)));
      expect(measured.body).toEqual({
        data: {
          id: acme.id,
          type: 'usage',
          attributes: { apiEnabled: true, keywords: { usage: 2, limit: 2000, remaining: 1998 }, dataRows: { usage: 6, limit: 12000, remaining: 11994 } },
        },
      });

      // The document's own figures, set by the operator from the CLI.
      await ex.cliOk(['gauge', '--account', acme.id, '--meter', 'keywords', '--value', '1420']);
      await ex.cliOk(['gauge', '--account', acme.id, '--meter', 'dataRows', '--value', '8500']);
      expect(await read(await ex.call('/v1/account/usage', auth(acmeKey.secret)))).toEqual({
        status: 200,
        type: JSON_TYPE,
        body: {
          data: {
            id: acme.id,
            type: 'usage',
            attributes: {
              apiEnabled: true,
              keywords: { usage: 1420, limit: 2000, remaining: 580 },
              dataRows: { usage: 8500, limit: 12000, remaining: 3500 },
            },
          },
        },
      });
    });
    it('the document\'s usage answer, byte for byte: keys in its order, numbers as numbers, apiEnabled a boolean', async () => {
      await ex.cliOk(['gauge', '--account', acme.id, '--meter', 'keywords', '--value', '1420']);
      await ex.cliOk(['gauge', '--account', acme.id, '--meter', 'dataRows', '--value', '8500']);
      expect(await readExact(await ex.call('/v1/account/usage', auth(acmeKey.secret)))).toEqual({
        status: '200 OK',
        type: JSON_TYPE,
        text: `{"data":{"id":"${acme.id}","type":"usage","attributes":{"apiEnabled":true,"keywords":{"usage":1420,"limit":2000,"remaining":580},"dataRows":{"usage":8500,"limit":12000,"remaining":3500}}}}`,
      });
    });
  });

  describe('What auth failures look like', () => {
    it('the document\'s 401 body, byte for byte, under the status line 401 Unauthorized; the 403 is 403 Forbidden', async () => {
      const unauthorized = { status: '401 Unauthorized', type: JSON_TYPE, text: '{"errors":[{"code":"unauthorized","status":401,"detail":"Invalid or missing API key."}]}' };
      expect(await readExact(await ex.call('/v1/domains'))).toEqual(unauthorized);
      expect(await readExact(await ex.call('/v1/domains', auth('tkn_usr_your_api_key_here')))).toEqual(unauthorized);
      const starter = await ex.createAccount('Forbidden Co', 'starter');
      const key = await ex.createKey(starter.id, 'k');
      expect(await readExact(await ex.call('/v1/domains', auth(key.secret)))).toEqual({
        status: '403 Forbidden',
        type: JSON_TYPE,
        text: '{"errors":[{"code":"forbidden","status":403,"detail":"API access is not enabled for your plan. Check apiEnabled via /v1/account/usage; upgrade the plan if needed."}]}',
      });
    });

    it('401 Unauthorized in the JSON:API envelope: header missing, malformed (Bearer prefix), or the key is wrong', async () => {
      const unauthorized = { status: 401, type: JSON_TYPE, body: UNAUTHORIZED };
      const wrongChecksum = `${acmeKey.secret.slice(0, -1)}${acmeKey.secret.endsWith('a') ? 'b' : 'a'}`;
      const otherSystem = `tkn_usr_${'x'.repeat(30)}`;
      expect(await read(await ex.call('/v1/domains'))).toEqual(unauthorized);
      expect(await read(await ex.call('/v1/domains', auth('')))).toEqual(unauthorized);
      expect(await read(await ex.call('/v1/domains', auth(`Bearer ${acmeKey.secret}`)))).toEqual(unauthorized);
      expect(await read(await ex.call('/v1/domains', auth(wrongChecksum)))).toEqual(unauthorized);
      expect(await read(await ex.call('/v1/domains', auth(otherSystem)))).toEqual(unauthorized);
      expect(await read(await ex.call('/v1/domains', auth('tkn_usr_your_api_key_here')))).toEqual(unauthorized);
      // The key in another header or in the query string is not where the document says to send it.
      expect(await read(await ex.call(`/v1/domains?api_key=${acmeKey.secret}`))).toEqual(unauthorized);
      expect(await read(await ex.call('/v1/domains', { headers: { 'x-api-key': acmeKey.secret } }))).toEqual(unauthorized);
    });

    it('401s carry no WWW-Authenticate: the key is the whole header value, so no challenge could name the scheme to send it with', async () => {
      for (const init of [{}, auth('tkn_usr_your_api_key_here'), auth(`Bearer ${acmeKey.secret}`)]) {
        const response = await ex.call('/v1/domains', init);
        expect({ status: response.status, challenge: response.headers.get('www-authenticate') }).toEqual({ status: 401, challenge: null });
      }
    });

    it('stray whitespace: spaces around the key are forgiven, whitespace inside it is a 401', async () => {
      const around = await rawRequest(ex.kg.gatewayUrl, `GET /v1/domains HTTP/1.1\r\nAuthorization:    ${acmeKey.secret}  \t`);
      expect(around.status).toBe(200);
      const inside = await rawRequest(ex.kg.gatewayUrl, `GET /v1/domains HTTP/1.1\r\nAuthorization: ${acmeKey.secret.slice(0, 12)} ${acmeKey.secret.slice(12)}`);
      expect({ status: inside.status, body: JSON.parse(inside.body) as unknown }).toEqual({ status: 401, body: UNAUTHORIZED });
    });

    it('403 means the key worked but the request is not permitted; 401 means the key did not work', async () => {
      const starter = await ex.createAccount('Starter Co', 'starter');
      const key = await ex.createKey(starter.id, 'k');
      expect((await ex.call('/v1/domains', auth(key.secret))).status).toBe(403);
      await ex.revokeKey(key.id);
      expect(await read(await ex.call('/v1/domains', auth(key.secret)))).toEqual({ status: 401, type: JSON_TYPE, body: UNAUTHORIZED });
    });

    it('no anonymous access to any /v1 endpoint', async () => {
      for (const path of ['/v1/domains', `/v1/domains/${acmeDomainId}`, '/v1/keywords/kw_1', '/v1/account/usage', '/v1/competitors', '/v1/tags', '/v1/serp', '/v1']) {
        for (const method of ['GET', 'POST', 'DELETE']) {
          expect(await read(await ex.call(path, { method })), `${method} ${path}`).toEqual({ status: 401, type: JSON_TYPE, body: UNAUTHORIZED });
        }
      }
    });

    it('"every endpoint lives under /v1": a path outside it is 404 No such endpoint, with or without a key', async () => {
      const notFound = { status: 404, type: JSON_TYPE, body: { errors: [{ code: 'not_found', status: 404, detail: 'No such endpoint.' }] } };
      for (const path of ['/domains', '/account/usage', '/v2/domains', '/']) {
        expect(await read(await ex.call(path)), `${path} without a key`).toEqual(notFound);
        expect(await read(await ex.call(path, auth('tkn_usr_your_api_key_here'))), `${path} with a wrong key`).toEqual(notFound);
        expect(await read(await ex.call(path, auth(acmeKey.secret))), `${path} with a key`).toEqual(notFound);
      }
    });

    it('endpoints the example upstream does not have answer 404 in the same envelope, after the key checks out', async () => {
      expect(await read(await ex.call('/v1/competitors', auth(acmeKey.secret)))).toEqual({
        status: 404,
        type: JSON_TYPE,
        body: { errors: [{ code: 'not_found', status: 404, detail: 'No such endpoint.' }] },
      });
    });
  });

  describe('What auth failures look like: every error in the JSON:API envelope', () => {
    const envelope = (status: number, code: string, detail: string) => ({ status, type: JSON_TYPE, body: { errors: [{ code, status, detail }] } });

    it('errors keygate answers itself come back as errors[] with code, status and detail: a path it cannot judge (400), a URL too long (414), headers too large (431)', async () => {
      for (const odd of ['/v1/../v1/domains', '//v1/domains']) {
        const answer = await rawRequest(ex.kg.gatewayUrl, `GET ${odd} HTTP/1.1\r\nAuthorization: ${acmeKey.secret}`);
        expect({ status: answer.status, body: JSON.parse(answer.body) as unknown }, odd).toEqual({ status: 400, body: envelope(400, 'bad_request', 'Bad request.').body });
      }
      expect(await read(await ex.call(`/v1/domains?q=${'a'.repeat(20_000)}`, auth(acmeKey.secret)))).toEqual(envelope(414, 'uri_too_long', 'The request URL is too long.'));
      expect(await read(await ex.call('/v1/domains', auth(acmeKey.secret, { headers: { 'x-padding': 'a'.repeat(40_000) } })))).toEqual(envelope(431, 'headers_too_large', 'Request headers are too large.'));
    });

    it('the API behind keygate down, or not answering in time: 502 and 504, in the same envelope', async () => {
      const { down, slow, close } = await startFailingExamples('ranktracker');
      try {
        for (const [failing, expected] of [
          [down, envelope(502, 'bad_gateway', 'The upstream service is unavailable.')],
          [slow, envelope(504, 'gateway_timeout', 'The upstream service did not answer in time.')],
        ] as const) {
          const customer = await failing.createAccount('Customer', 'pro');
          const { secret } = await failing.createKey(customer.id, 'k');
          expect(await read(await failing.call('/v1/domains', auth(secret)))).toEqual(expected);
        }
      } finally {
        await close();
      }
    });
  });

  // After every other test of the shared gateway: its clock then stays 5 years ahead of the
  // real time the CLI stamps with, and a level set with `keygate gauge` would be older than
  // the gateway's own reports (gauge levels keep the later one).
  describe('What a key can and cannot do, years later', () => {
    it('no expiry: a key still works years later; it does not rotate or time out on its own', async () => {
      const key = await ex.createKey(acme.id, 'long-lived');
      clock.advance(5 * YEAR_MS);
      expect((await ex.call('/v1/domains', auth(key.secret))).status).toBe(200);
      expect((await ex.call('/v1/domains', auth(acmeKey.secret))).status).toBe(200);
    });
  });

  describe('One command', () => {
    it('node bin/keygate.js serve --config <the ranktracker profile> starts gateway and upstream (upstream.spawn); a CLI key works through it', async () => {
      const server = await runServeCommand('ranktracker');
      try {
        const account = JSON.parse((await server.cli(['accounts', 'create', '--name', 'Acme', '--json'])).stdout) as AccountOut;
        const key = JSON.parse((await server.cli(['keys', 'create', '--account', account.id, '--name', 'first', '--json'])).stdout) as KeyOut;
        const response = await fetch(`${server.gatewayUrl}/v1/domains`, auth(key.secret));
        expect(await read(response)).toEqual({ status: 200, type: JSON_TYPE, body: { data: [] } });
        const usage = await read(await fetch(`${server.gatewayUrl}/v1/account/usage`, auth(key.secret)));
        expect(usage.body).toMatchObject({ data: { id: account.id, type: 'usage', attributes: { apiEnabled: true } } });
      } finally {
        expect(await server.stop()).toBe(0);
      }
    });
  });
});
