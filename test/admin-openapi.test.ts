/**
 * The admin API answers as its OpenAPI document says, as a client generated from the
 * document would need: every operation is called over real HTTP, with good input and
 * with bad, and each answer's status must be one the operation documents, its media
 * type the documented one, and its body valid against the documented schema (ajv, JSON
 * Schema 2020-12 as OpenAPI 3.1 uses).
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from './support/keygate.js';
import { startTestUpstream, type TestUpstream } from './support/upstream.js';
import { tempDir } from './support/temp.js';

interface MediaType {
  schema?: object;
}
interface DocResponse {
  description: string;
  content?: Record<string, MediaType>;
  headers?: Record<string, unknown>;
}
interface DocOperation {
  operationId?: string;
  requestBody?: { required?: boolean };
  responses: Record<string, DocResponse>;
}
interface Document {
  openapi: string;
  tags: { name: string }[];
  paths: Record<string, Record<string, DocOperation>>;
}

/** The formats JSON Schema 2020-12 defines, and those OpenAPI adds for numbers and secrets. */
const KNOWN_FORMATS = new Set(['date-time', 'date', 'time', 'duration', 'email', 'idn-email', 'hostname', 'idn-hostname', 'ipv4', 'ipv6', 'uri', 'uri-reference', 'iri', 'iri-reference', 'uuid', 'uri-template', 'json-pointer', 'relative-json-pointer', 'regex', 'int32', 'int64', 'float', 'double', 'password']);

const ADMIN = 'full-admin-token-0123456789';
const READER = 'reporting-token-0123456789';

describe('admin API against its OpenAPI document', () => {
  const dir = tempDir('admin-openapi');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let doc: Document;
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  const validators = new Map<object, ValidateFunction>();
  /** Operation (`GET /v1/keys/{id}`) → the statuses it was seen answering. */
  const seen = new Map<string, Set<number>>();

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        keys: { prefix: { live: 'sk_live_' } },
        plans: { scale: { name: 'Scale', maxKeys: 5, meters: { credits: { limit: 500, unit: 'credits' }, brands: { kind: 'gauge', limit: 10 } } } },
        defaultPlan: 'scale',
        routes: [{ method: 'POST', path: '/generate', cost: { meter: 'credits', perRequest: 50 } }, { path: '/*' }],
      },
      { dir, adminToken: ADMIN, adminReadToken: READER, env: {} },
    );
    doc = (await (await fetch(`${kg.adminUrl}/openapi.json`)).json()) as Document;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  /** The documented operation a request is for: its path template matched, the method the same. */
  function operationOf(method: string, path: string): { name: string; operation: DocOperation } {
    const bare = path.split('?')[0] as string;
    for (const [template, item] of Object.entries(doc.paths)) {
      const pattern = new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`);
      const operation = item[method.toLowerCase()];
      if (pattern.test(bare) && operation) return { name: `${method} ${template}`, operation };
    }
    throw new Error(`${method} ${bare} is not in the document`);
  }

  /**
   * Calls the admin API and checks the answer against the document: a documented status,
   * the documented media type, a body its schema takes. Returns the status and body.
   */
  async function call(method: string, path: string, options: { body?: unknown; raw?: string; token?: string | null; contentType?: string } = {}): Promise<{ status: number; body: any }> {
    const { name, operation } = operationOf(method, path);
    const headers: Record<string, string> = {};
    if (options.token !== null) headers.authorization = `Bearer ${options.token ?? ADMIN}`;
    const payload = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    if (payload !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
    const response = await fetch(`${kg.adminUrl}${path}`, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
    const text = await response.text();
    const status = response.status;
    const set = seen.get(name) ?? new Set<number>();
    seen.set(name, set.add(status));

    const documented = operation.responses[String(status)];
    expect(documented, `${method} ${path} answered ${status}, which ${name} does not document: ${text}`).toBeDefined();
    // Headers a client acts on are declared where they come.
    const declared = Object.keys((documented as { headers?: Record<string, unknown> }).headers ?? {}).map((header) => header.toLowerCase());
    for (const header of ['retry-after', 'www-authenticate', 'link', 'keygate-warning']) {
      if (response.headers.has(header)) expect(declared, `${method} ${path} ${status} sent ${header}, which ${name} does not declare`).toContain(header);
    }
    const media = Object.keys(documented?.content ?? {});
    if (media.length === 0) {
      expect(text, `${method} ${path} ${status} documents no body`).toBe('');
      return { status, body: undefined };
    }
    const type = (response.headers.get('content-type') ?? '').split(';')[0];
    expect(media, `${method} ${path} ${status} came as ${type}`).toContain(type);
    const body = JSON.parse(text) as unknown;
    const schema = documented?.content?.[type as string]?.schema as object;
    let validate = validators.get(schema);
    if (!validate) validators.set(schema, (validate = ajv.compile(schema)));
    expect(validate(body), `${method} ${path} ${status}: ${ajv.errorsText(validate.errors)} in ${text.slice(0, 500)}`).toBe(true);
    return { status, body };
  }

  it('is OpenAPI 3.1 with a unique operationId on every operation, problem details for every error, and no body on a 204', () => {
    expect(doc.openapi).toBe('3.1.0');
    const ids: string[] = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        expect(operation.operationId, `${method} ${path}`).toMatch(/^[a-z][A-Za-z]+$/);
        // What documentation viewers and generated clients show for it.
        expect((operation as { summary?: string }).summary, `${method} ${path}`).toMatch(/^[A-Z].{9,}[^.]$/);
        ids.push(operation.operationId as string);
        for (const [status, response] of Object.entries(operation.responses)) {
          expect(response.description, `${method} ${path} ${status}`).not.toBe('Default Response');
          if (Number(status) >= 400) expect(Object.keys(response.content ?? {}), `${method} ${path} ${status}`).toEqual(['application/problem+json']);
          if (status === '204') expect(response.content, `${method} ${path} 204`).toBeUndefined();
        }
        // What every operation can meet, documented on each, with the headers that say what to do.
        expect(Object.keys(operation.responses), `${method} ${path}`).toEqual(expect.arrayContaining(['400', '401', '503']));
        expect(Object.keys((operation.responses['503'] as { headers?: object }).headers ?? {}), `${method} ${path} 503`).toContain('Retry-After');
        expect(Object.keys((operation.responses['401'] as { headers?: object }).headers ?? {}), `${method} ${path} 401`).toContain('WWW-Authenticate');
        // A missing token and a wrong one are answered apart; the document says both.
        expect(operation.responses['401']?.description, `${method} ${path} 401`).toMatch(/Missing admin token.*The admin token is not valid/);
      }
    }
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBeGreaterThanOrEqual(23);
    // Only formats a validator knows (JSON Schema 2020-12's and OpenAPI's): an unknown one
    // stops Ajv in its default strict mode, and some client generators, on the document.
    const formats = new Set<string>();
    JSON.stringify(doc, (name, value: unknown) => {
      if (name === 'format' && typeof value === 'string') formats.add(value);
      return value;
    });
    expect([...formats].filter((format) => !KNOWN_FORMATS.has(format))).toEqual([]);
    // The answers that may say the other processes were not told of a change say so in the document too.
    const warned = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item)
        .filter(([, operation]) => Object.values(operation.responses).some((r) => (r as { headers?: Record<string, unknown> }).headers?.['Keygate-Warning'] !== undefined))
        .map(([method]) => `${method.toUpperCase()} ${path}`),
    );
    // And those whose dashboard link may lead nowhere yet (the dashboard turned off), those that set a plan expiry, which may be past, and those that make a key an account cannot use yet.
    expect(warned.sort()).toEqual([
      'DELETE /v1/accounts/{id}',
      'PATCH /v1/accounts/{id}',
      'PATCH /v1/keys/{id}',
      'POST /v1/accounts',
      'POST /v1/keys',
      'POST /v1/keys/import',
      'POST /v1/keys/{id}/revoke',
      'POST /v1/keys/{id}/rotate',
      'POST /v1/members/invitations',
      'POST /v1/members/password-resets',
    ]);
  });

  it('answers every operation, with good input and bad, only as the document says', async () => {
    // Accounts, plans, usage.
    expect((await call('GET', '/v1/plans')).status).toBe(200);
    // An id longer than any path parameter may be.
    expect((await call('GET', `/v1/accounts/acc_${'x'.repeat(5000)}`)).status).toBe(414);
    const account = await call('POST', '/v1/accounts', { body: { name: 'Acme', planExpiresAt: null } });
    expect(account.status).toBe(201);
    // Whether its keys can call the API now, documented (and required) beside the account's own switch.
    expect(account.body).toMatchObject({ apiAccess: true, apiEnabled: true });
    const documented = doc.paths['/v1/accounts/{id}']?.get?.responses['200']?.content?.['application/json']?.schema as { required?: string[]; properties?: Record<string, { type?: string; description?: string }> };
    expect(documented.required).toContain('apiEnabled');
    expect(documented.properties?.apiEnabled).toMatchObject({ type: 'boolean', description: expect.stringContaining('now') });
    const accountId = account.body.id as string;
    expect((await call('POST', '/v1/accounts', { body: {} })).status).toBe(400);
    expect((await call('POST', '/v1/accounts', { raw: '{"name":"x"}', contentType: 'text/plain' })).status).toBe(415);
    expect((await call('POST', '/v1/accounts', { raw: JSON.stringify({ name: 'x'.repeat(1_100_000) }) })).status).toBe(413);
    expect((await call('POST', '/v1/accounts', { body: { name: 'No token' }, token: null })).status).toBe(401);
    expect((await call('POST', '/v1/accounts', { body: { name: 'Read only' }, token: READER })).status).toBe(403);
    await call('POST', '/v1/accounts', { body: { name: 'Beta' } });
    expect((await call('GET', '/v1/accounts?limit=1')).status).toBe(200);
    expect((await call('GET', '/v1/accounts?q=acme')).body).toHaveLength(1);
    expect((await call('GET', '/v1/accounts?limit=0x10')).status).toBe(400);
    expect((await call('GET', `/v1/accounts/${accountId}`)).status).toBe(200);
    expect((await call('GET', '/v1/accounts/acc_nope')).status).toBe(404);
    expect((await call('PATCH', `/v1/accounts/${accountId}`, { body: { name: 'Acme Analytics', planExpiresAt: '2030-01-01' } })).status).toBe(200);
    // An expiry already past is saved, with a Keygate-Warning the document declares (as `call` checks).
    expect((await call('PATCH', `/v1/accounts/${accountId}`, { body: { planExpiresAt: '2020-01-01' } })).status).toBe(200);
    const ended = await call('POST', '/v1/accounts', { body: { name: 'Ended', planExpiresAt: '2020-01-01' } });
    expect(ended.status).toBe(201);
    // A key made for it all the same, with a Keygate-Warning saying its requests are refused (declared, as `call` checks).
    expect((await call('POST', '/v1/keys', { body: { accountId: ended.body.id, name: 'refused for now' } })).status).toBe(201);
    expect((await call('PATCH', `/v1/accounts/${accountId}`, { body: { planExpiresAt: null } })).body.planExpiresAt).toBeNull();
    // Its own limits: taken, shown with the limits in effect, refused with the field named, all as documented.
    const patchBody = (doc.paths['/v1/accounts/{id}']?.patch?.requestBody as { content?: Record<string, { schema?: unknown }> } | undefined)?.content?.['application/json']?.schema as { properties?: Record<string, { description?: string }> };
    expect(patchBody.properties?.limits?.description).toMatch(/plan's/);
    expect(documented.required).toEqual(expect.arrayContaining(['limits', 'effectiveLimits']));
    const own = await call('PATCH', `/v1/accounts/${accountId}`, { body: { limits: { rateLimits: [{ limit: 50, window: '1s' }], meters: { credits: 2000 } } } });
    expect(own).toMatchObject({ status: 200, body: { limits: { rateLimits: [{ name: '50-per-1s', limit: 50, window: '1s', scope: 'key' }], meters: { credits: 2000 } }, effectiveLimits: { meters: { credits: 2000, brands: 10 } } } });
    expect(await call('PATCH', `/v1/accounts/${accountId}`, { body: { limits: { meters: { units: 5 } } } })).toMatchObject({ status: 400, body: { detail: expect.stringMatching(/^limits\.meters\.units: /) } });
    expect((await call('PATCH', `/v1/accounts/${accountId}`, { body: { limits: null } })).body).toMatchObject({ limits: { rateLimits: null, meters: {} } });
    // Created with its own limits: POST documents and takes the same object, and refuses as PATCH does.
    const postBody = (doc.paths['/v1/accounts']?.post?.requestBody as { content?: Record<string, { schema?: unknown }> } | undefined)?.content?.['application/json']?.schema as { properties?: Record<string, { description?: string }> };
    expect(postBody.properties?.limits).toEqual(patchBody.properties?.limits);
    expect(await call('POST', '/v1/accounts', { body: { name: 'Own from the start', limits: { meters: { credits: 3000 } } } })).toMatchObject({ status: 201, body: { limits: { rateLimits: null, meters: { credits: 3000 } }, effectiveLimits: { meters: { credits: 3000 } } } });
    expect(await call('POST', '/v1/accounts', { body: { name: 'Refused', limits: { meters: { units: 5 } } } })).toMatchObject({ status: 400, body: { detail: expect.stringMatching(/^limits\.meters\.units: /) } });
    expect((await call('PATCH', `/v1/accounts/${accountId}`, { body: { plan: 'scale' } })).status).toBe(400);
    expect((await call('GET', `/v1/accounts/${accountId}/usage`)).status).toBe(200);
    expect((await call('GET', '/v1/accounts/acc_nope/usage')).status).toBe(404);
    expect((await call('GET', `/v1/accounts/${accountId}/usage/daily?from=2026-11-01`)).status).toBe(200);
    expect((await call('GET', `/v1/accounts/${accountId}/usage/daily?from=garbage`)).status).toBe(400);
    expect((await call('GET', '/v1/accounts/acc_nope/usage/daily')).status).toBe(404);
    expect((await call('PUT', `/v1/accounts/${accountId}/gauges/brands`, { body: { value: 3 } })).status).toBe(200);
    expect((await call('PUT', `/v1/accounts/${accountId}/gauges/credits`, { body: { value: 3 } })).status).toBe(400);
    expect((await call('PUT', `/v1/accounts/${accountId}/gauges/brands`, { body: { value: -1 } })).status).toBe(400);
    const calls = [{ method: 'POST', path: '/generate', count: 3 }];
    expect((await call('POST', '/v1/forecast', { body: { calls } })).body.total).toBe(150);
    expect((await call('POST', '/v1/forecast', { body: { calls, accountId }, token: READER })).body.covered).toBe(true);
    expect((await call('POST', '/v1/forecast', { body: { calls: [] } })).status).toBe(400);
    expect((await call('POST', '/v1/forecast', { body: { calls, accountId: 'acc_nope' } })).status).toBe(404);

    // Keys.
    const key = await call('POST', '/v1/keys', { body: { accountId, name: 'production', expiresAt: null } });
    expect(key.status).toBe(201);
    const keyId = key.body.id as string;
    expect((await call('POST', '/v1/keys', { body: { accountId: 'acc_nope', name: 'x' } })).status).toBe(404);
    expect((await call('POST', '/v1/keys', { body: { accountId, name: 'x', scopes: 'all' } })).status).toBe(400);
    // A key issued before keygate (made here in the profile's format, as the API did).
    const earlier = kg.runtime.keyFormat.generate('live');
    expect((await call('POST', '/v1/keys/import', { body: { accountId, name: 'migrated', secret: earlier } })).status).toBe(201);
    expect((await call('POST', '/v1/keys/import', { body: { accountId, name: 'again', secret: earlier } })).status).toBe(409);
    expect((await call('POST', '/v1/keys/import', { body: { accountId, name: 'mistyped', secret: 'sk_live_0123456789abcdefghijABCDEFGHIJ' } })).status).toBe(400);
    // A request checked as the gateway would (keygate as a library over HTTP): admitted, refused, settled.
    const checked = await call('POST', '/v1/check', { body: { method: 'POST', url: '/generate', headers: { authorization: `Bearer ${key.body.secret}` }, remoteAddress: '2001:db8::7' } });
    expect(checked.body).toMatchObject({ allowed: true, settle: expect.stringMatching(/^chk_/) });
    expect((await call('POST', '/v1/check', { body: { method: 'POST', url: '/generate', headers: {} } })).body).toMatchObject({ allowed: false, reason: 'missing_key', error: { status: 401 } });
    expect((await call('POST', '/v1/check', { body: { method: 'POST', url: '/generate', headers: { cookie: `api_key=${key.body.secret}` } } })).body).toMatchObject({ allowed: false, reason: 'missing_key', misplaced: { in: 'cookie', name: 'api_key' } });
    expect((await call('POST', '/v1/check', { body: { method: 'POST', url: 'generate' } })).status).toBe(400);
    expect((await call('POST', '/v1/check', { body: { method: 'POST', url: '/generate', remoteAddress: 'localhost' } })).status).toBe(400);
    expect((await call('POST', `/v1/check/${checked.body.settle}/settle`, { body: { status: 200 } })).body).toEqual({ id: checked.body.settle, status: 200, charged: true });
    expect((await call('POST', `/v1/check/${checked.body.settle}/settle`, { body: { status: 200 } })).status).toBe(404);
    expect((await call('POST', '/v1/check/chk_nope/settle', { body: { status: 'ok' } })).status).toBe(400);
    // Client addresses blocked for unknown keys (auth.unknownKeys, off in this profile): none, said so.
    expect((await call('GET', '/v1/address-blocks')).body).toEqual({ enabled: false, policy: null, from: null, blocks: [] });
    expect((await call('GET', '/v1/address-blocks', { token: READER })).status).toBe(200);
    expect((await call('DELETE', '/v1/address-blocks/203.0.113.5')).status).toBe(404);
    expect((await call('DELETE', '/v1/address-blocks/not-an-address')).status).toBe(400);
    expect((await call('DELETE', '/v1/address-blocks/203.0.113.5', { token: READER })).status).toBe(403);
    expect((await call('GET', '/v1/keys')).status).toBe(200);
    expect((await call('GET', `/v1/keys?accountId=${accountId}&limit=1`)).body).toHaveLength(1);
    expect((await call('GET', '/v1/keys?accountId=')).status).toBe(400);
    // A mistyped account is said, not answered as an account without keys (as the CLI says it).
    expect((await call('GET', '/v1/keys?accountId=acc_nope')).body.detail).toBe('no account "acc_nope"');
    expect((await call('GET', `/v1/keys/${keyId}`)).status).toBe(200);
    expect((await call('GET', '/v1/keys/key_nope')).status).toBe(404);
    expect((await call('PATCH', `/v1/keys/${keyId}`, { body: { name: 'production 2' } })).status).toBe(200);
    expect((await call('PATCH', `/v1/keys/${keyId}`, { body: {} })).status).toBe(400);
    // A key's own windows, in and out as documented; a per-account one refused.
    const windows = await call('PATCH', `/v1/keys/${keyId}`, { body: { rateLimits: [{ limit: 10, window: '1m' }] } });
    expect([windows.status, windows.body.rateLimits]).toEqual([200, [{ name: 'key-10-per-1m', limit: 10, window: '1m', scope: 'key' }]]);
    expect((await call('PATCH', `/v1/keys/${keyId}`, { body: { rateLimits: [{ limit: 10, window: '1m', scope: 'account' }] } })).status).toBe(400);
    expect((await call('PATCH', `/v1/keys/${keyId}`, { body: { rateLimits: null } })).body.rateLimits).toEqual([]);
    expect((await call('POST', `/v1/keys/${keyId}/unblock`)).body.lifted).toBe(0);
    expect((await call('POST', `/v1/keys/${keyId}/unblock`, { raw: '{"reason":"x"}' })).status).toBe(400);
    // No body is the default overlap, also labelled JSON (as the document says: not required).
    expect(operationOf('POST', `/v1/keys/${keyId}/rotate`).operation.requestBody?.required).toBe(false);
    const rotated = await call('POST', `/v1/keys/${keyId}/rotate`, { raw: '' });
    expect(rotated.status).toBe(200);
    expect((await call('POST', `/v1/keys/${keyId}/rotate`, { body: { overlap: '1h' } })).status).toBe(409);
    expect((await call('POST', `/v1/keys/${rotated.body.id}/rotate`, { body: { overlap: 'soon' } })).status).toBe(400);
    expect((await call('POST', `/v1/keys/${keyId}/revoke`, { raw: '' })).body.status).toBe('revoked');
    expect((await call('POST', '/v1/keys/key_nope/revoke')).status).toBe(404);

    // Members, audit, and an account deleted.
    const invited = await call('POST', '/v1/members/invitations', { body: { email: 'ada@acme.example', accountId } });
    expect(invited.status).toBe(201);
    expect((await call('POST', '/v1/members/invitations', { body: { email: 'not an address', accountId } })).status).toBe(400);
    expect((await call('POST', '/v1/members/invitations', { body: { email: 'bob@acme.example', accountId: 'acc_nope' } })).status).toBe(404);
    expect((await call('POST', '/v1/members/invitations', { body: { email: 'bob@acme.example' } })).body.detail).toBe('say whom the invitation is for: "accountId" (a member of that account) or "role": "operator" (sees every account)');
    expect((await call('GET', `/v1/members?accountId=${accountId}`)).body).toHaveLength(1);
    expect((await call('GET', '/v1/members?accountId=acc_nope')).status).toBe(404);
    // By the address, as the CLI names a member (members remove --email): the id a removal or an unlock takes.
    expect((await call('GET', '/v1/members?email=ADA@acme.example')).body.map((m: { id: string }) => m.id)).toEqual([invited.body.id]);
    expect((await call('GET', '/v1/members?email=nobody@acme.example')).body).toEqual([]);
    expect((await call('GET', '/v1/members?email=')).status).toBe(400);
    expect((await call('GET', '/v1/audit?accountId=acc_nope')).status).toBe(404);
    expect((await call('POST', '/v1/members/password-resets', { body: { email: 'nobody@acme.example' } })).status).toBe(404);
    expect((await call('POST', '/v1/members/password-resets', { body: {} })).status).toBe(400);
    expect((await call('POST', `/v1/members/${invited.body.id}/unlock`)).body.lifted).toBe(false);
    expect((await call('POST', '/v1/members/mem_nope/unlock')).status).toBe(404);
    expect((await call('DELETE', `/v1/members/${invited.body.id}`)).status).toBe(204);
    expect((await call('DELETE', '/v1/members/mem_nope')).status).toBe(404);
    expect((await call('GET', '/v1/audit?limit=2')).body).toHaveLength(2);
    expect((await call('GET', '/v1/audit?after=garbage')).status).toBe(400);
    expect((await call('DELETE', `/v1/accounts/${accountId}`)).status).toBe(204);
    expect((await call('DELETE', `/v1/accounts/${accountId}`)).status).toBe(404);
    // A deleted account's log stays: who deleted it, and when.
    expect((await call('GET', `/v1/audit?accountId=${accountId}&limit=1`)).body[0]).toMatchObject({ action: 'account.deleted', actor: 'admin-api' });
    expect((await call('GET', `/v1/keys?accountId=${accountId}`)).status).toBe(404);

    // Every operation in the document was called.
    const operations = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`));
    expect(operations.filter((name) => !seen.has(name))).toEqual([]);
  });

  it('answers a change it cannot write, another process holding the SQLite file\'s write lock past the wait, as the document says: 503 problem details', async () => {
    // A sqlite3 shell left inside a transaction on the profile's file, say.
    const holder = new Database(path.join(dir, 'keygate.db'));
    holder.exec('BEGIN EXCLUSIVE');
    try {
      const busy = await call('POST', '/v1/accounts', { body: { name: 'While busy' } });
      expect(busy.body).toEqual({
        type: 'about:blank',
        title: 'Service Unavailable',
        status: 503,
        detail: 'The store (sqlite) is busy: another process has held its write lock for more than 5 s; this change may or may not have been made: check before sending it again.',
      });
      // Reads go on beside it (WAL).
      expect((await call('GET', '/v1/accounts')).status).toBe(200);
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    expect((await call('POST', '/v1/accounts', { body: { name: 'After' } })).status).toBe(201);
  });
});
