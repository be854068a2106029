/**
 * keygate inside an API (no proxy hop): a plain node:http server calls `check` and
 * `settle` and gets the same denials, identities and charges as through the gateway.
 */
import { existsSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, createKeygate, DatabaseInUseError, parseConfigObject, serve, type CheckAdmitted, type CheckRequest, type Keygate, type LoadedConfig } from '../src/index.js';
import { createAccount } from '../src/operations/accounts.js';
import { OperationError, setGauge, updateAccount } from '../src/index.js';
import { createKey, revokeKey } from '../src/operations/keys.js';
import { forecast } from '../src/operations/forecast.js';
import { tempDir } from './support/temp.js';
import { startKeygate, type TestKeygate } from './support/keygate.js';
import { startTestUpstream, type TestUpstream } from './support/upstream.js';
import { periodBounds } from '../src/meters/period.js';
import { createLog } from '../src/log.js';

/**
 * The docs' pattern on node:http, on 127.0.0.1: a refusal is written as `gate` renders it
 * (its reason phrase too); an admitted request is answered, and settled, by `answer`.
 */
async function serveThrough(gate: Keygate, answer: (res: ServerResponse, admitted: CheckAdmitted) => Promise<void>): Promise<{ server: Server; url: string }> {
  const server = createServer(async (req, res) => {
    const result = await gate.check({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, rawHeaders: req.rawHeaders });
    if (!result.allowed) {
      res.writeHead(result.error.status, result.error.reasonPhrase, result.error.headers).end(result.error.body);
      return;
    }
    await answer(res, result);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('keygate as a library', () => {
  const dir = tempDir('library');
  let gate: Keygate;
  let server: Server;
  let url: string;
  let secret: string;

  beforeAll(async () => {
    const config = parseConfigObject({
      store: `sqlite:${path.join(dir, 'k.db')}`,
      keys: { prefix: { live: 'sk_live_' } },
      errors: { envelope: 'error', reasons: { missing_key: { message: 'Missing API key', reasonPhrase: 'Key required' } } },
      plans: { scale: { rateLimits: [{ limit: 3, window: '1m' }], meters: { credits: { limit: 100 } } } },
      routes: [
        { path: '/get-brands', cost: { meter: 'credits', perRequest: 10 } },
        { method: 'GET', path: '/rows', cost: { meter: 'credits', perRecord: 10, records: { header: 'X-Rows' }, reserveRecords: 5 } },
      ],
    });
    gate = await createKeygate({ config, file: 'inline', dir });
    const account = await createAccount(gate.runtime, { name: 'Acme' }, 'test');
    secret = (await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test')).secret;

    ({ server, url } = await serveThrough(gate, async (res, admitted) => {
      res.writeHead(200, { 'content-type': 'application/json', ...admitted.headers });
      res.end(JSON.stringify({ brands: [], account: admitted.identity.account.name }));
      await admitted.settle(200);
    }));
  });

  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await gate?.close();
  });

  it('answers denials in the dialect', async () => {
    const r = await fetch(`${url}/get-brands`);
    expect(r.status).toBe(401);
    // The profile's own reason phrase, passed to writeHead as docs/library.md shows.
    expect(r.statusText).toBe('Key required');
    expect(await r.json()).toEqual({ error: 'Missing API key' });
  });

  it('refuses an Authorization header sent twice, as the gateway does, when given the raw headers', async () => {
    const { port } = new URL(url);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: Number(port) });
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
      socket.on('error', reject);
      socket.on('close', () => resolve(text));
      socket.write(`GET /get-brands HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\nAuthorization: Bearer ${secret}\r\nConnection: close\r\n\r\n`);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(answer).toContain('{"error":"Invalid API key."}');
    // Node's headers keep only the first: without the raw ones, that one is read.
    const headers = { authorization: `Bearer ${secret}` };
    expect(await gate.check({ method: 'GET', url: '/nowhere', headers })).toMatchObject({ reason: 'no_route' });
    expect(await gate.check({ method: 'GET', url: '/nowhere', headers, rawHeaders: ['Authorization', `Bearer ${secret}`, 'authorization', 'Bearer x'] })).toMatchObject({ reason: 'malformed_key' });
  });

  it('refuses a Proxy-Authorization header sent twice, as the gateway does, when given the raw headers (Node keeps only the first copy of it too)', async () => {
    const config = parseConfigObject({
      store: `sqlite:${path.join(dir, 'proxy-authorization.db')}`,
      keys: { prefix: { live: 'sk_live_' } },
      auth: { credentials: [{ in: 'header', name: 'Proxy-Authorization', scheme: 'Bearer' }] },
      errors: { envelope: 'error', reasons: { malformed_key: { message: 'Malformed key' } } },
      routes: [{ path: '/get-brands' }],
    });
    const proxied = await createKeygate({ config, file: 'inline', dir });
    const { server: plain, url: plainUrl } = await serveThrough(proxied, async (res, admitted) => {
      res.writeHead(200, admitted.headers).end('{"ok":true}');
      await admitted.settle(200);
    });
    try {
      const account = await createAccount(proxied.runtime, { name: 'Proxied' }, 'test');
      const key = (await createKey(proxied.runtime, { accountId: account.id, name: 'k' }, 'test')).secret;
      const { port } = new URL(plainUrl);
      const answerTo = (lines: string[]) =>
        new Promise<string>((resolve, reject) => {
          const socket = connect({ host: '127.0.0.1', port: Number(port) });
          let text = '';
          socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
          socket.on('error', reject);
          socket.on('close', () => resolve(text));
          socket.write(`GET /get-brands HTTP/1.1\r\nHost: x\r\n${lines.map((line) => `Proxy-Authorization: ${line}\r\n`).join('')}Connection: close\r\n\r\n`);
        });
      for (const lines of [[`Bearer ${key}`, 'Bearer x'], [`Bearer ${key}`, `Bearer ${key}`]]) {
        const answer = await answerTo(lines);
        expect(answer, lines.join(' / ')).toMatch(/^HTTP\/1\.1 401 /);
        expect(answer).toContain('{"error":"Malformed key"}');
      }
      // An empty copy beside the key is absent, there as here: the key given once.
      for (const lines of [['', `Bearer ${key}`], [`Bearer ${key}`]]) expect(await answerTo(lines), lines.join(' / ')).toMatch(/^HTTP\/1\.1 200 [\s\S]*\r\n\{"ok":true\}\r\n/);
    } finally {
      plain.closeAllConnections();
      await new Promise((resolve) => plain.close(resolve));
      await proxied.close();
    }
  });

  it("refuses a Host that names no host, or two Host headers, as the gateway does (Node's parser passes both on); a target or a method Node would not read, given anyway, too", async () => {
    const { port } = new URL(url);
    const send = (head: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: Number(port) });
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
        socket.on('error', reject);
        socket.on('close', () => resolve(text));
        socket.write(`${head}Authorization: Bearer ${secret}\r\nConnection: close\r\n\r\n`);
      });
    for (const hosts of ['Host: a/b?c\r\n', 'Host: user@x\r\n', 'Host: x\r\nHost: y\r\n']) {
      const answer = await send(`GET /get-brands HTTP/1.1\r\n${hosts}`);
      expect(answer, hosts).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer, hosts).toContain('\r\n{"error":"Bad request."}\r\n');
    }
    // A Host that names a host is taken: the request goes on to its route (none here; nothing is charged to the key's window).
    expect(await send('GET /nowhere HTTP/1.1\r\nHost: api.example.com:8443\r\n')).toMatch(/^HTTP\/1\.1 404 /);
    // A target decoded, or read by a server more lenient than Node's (a space, a character outside ASCII).
    const headers = { authorization: `Bearer ${secret}` };
    for (const target of ['/get-brands?q=a b', '/get-brands?q=ünïcode']) {
      expect(await gate.check({ method: 'GET', url: target, headers }), target).toMatchObject({ allowed: false, reason: 'bad_request', url: target, error: { status: 400, body: '{"error":"Bad request."}' } });
    }
    // So is a method Node's parser does not read: one it does not know, or one in lower case (methods are case-sensitive).
    for (const method of ['FOO', 'get']) {
      expect(await send(`${method} /get-brands HTTP/1.1\r\nHost: x\r\n`), method).toMatch(/^HTTP\/1\.1 400 /);
      expect(await gate.check({ method, url: '/get-brands', headers }), method).toMatchObject({ allowed: false, reason: 'bad_request', url: '/get-brands', error: { status: 400, body: '{"error":"Bad request."}' } });
    }
    // And a QUERY that does not say what its body is (RFC 10008), as the gateway's server refuses it; given none, no headers at all.
    const query = await send('QUERY /get-brands HTTP/1.1\r\nHost: x\r\n');
    expect(query).toMatch(/^HTTP\/1\.1 400 /);
    expect(query).toContain('\r\n{"error":"Bad request."}\r\n');
    expect(await gate.check({ method: 'QUERY', url: '/get-brands' } as CheckRequest)).toMatchObject({ allowed: false, reason: 'bad_request', error: { status: 400 } });
    // With a Content-Type it goes on to the routes, none of which takes QUERY.
    expect(await gate.check({ method: 'QUERY', url: '/get-brands', headers: { ...headers, 'content-type': 'application/json' } })).toMatchObject({ allowed: false, reason: 'method_not_allowed' });
  });

  it('tells a missing_key refusal where a key sent elsewhere went (misplaced), never the key; header names as given in rawHeaders, else as in headers', async () => {
    const refusal = (misplaced: unknown) => ({ allowed: false, reason: 'missing_key', url: expect.any(String), error: expect.objectContaining({ status: 401 }), misplaced });
    const header = await gate.check({ method: 'GET', url: '/get-brands', headers: { 'x-api-key': secret } });
    expect(header).toEqual(refusal({ in: 'header', name: 'x-api-key' }));
    const raw = await gate.check({ method: 'GET', url: '/get-brands', headers: { 'x-api-key': secret }, rawHeaders: ['Host', 'x', 'X-API-Key', secret] });
    expect(raw).toEqual(refusal({ in: 'header', name: 'X-API-Key' }));
    expect(await gate.check({ method: 'GET', url: '/get-brands', headers: new Headers({ Cookie: `api_key=${secret}` }) })).toEqual(refusal({ in: 'cookie', name: 'api_key' }));
    const query = await gate.check({ method: 'GET', url: `/get-brands?api_key=${secret}`, headers: {} });
    expect(query).toEqual(refusal({ in: 'query', name: 'api_key' }));
    for (const result of [header, raw, query]) expect(JSON.stringify(result)).not.toContain(secret.slice('sk_live_'.length));
    // Nothing elsewhere, or another refusal: no misplaced at all.
    expect('misplaced' in (await gate.check({ method: 'GET', url: '/get-brands', headers: { 'x-other': 'x' } }))).toBe(false);
    const malformed = await gate.check({ method: 'GET', url: '/get-brands', headers: { authorization: 'Bearer sk_live_short', 'x-api-key': secret } });
    expect([malformed.allowed ? undefined : malformed.reason, 'misplaced' in malformed]).toEqual(['malformed_key', false]);
  });

  it('identifies the account, rate-limits and charges like the gateway', async () => {
    const headers = { authorization: `Bearer ${secret}` };
    const first = await fetch(`${url}/get-brands`, { headers });
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ brands: [], account: 'Acme' });
    expect(first.headers.get('ratelimit')).toBe('"3-per-1m";r=2;t=60');
    await (await fetch(`${url}/get-brands`, { headers })).text();
    await (await fetch(`${url}/get-brands`, { headers })).text();
    expect((await fetch(`${url}/get-brands`, { headers })).status).toBe(429);
    const account = (await gate.runtime.store.listAccounts())[0]!;
    const balance = await gate.runtime.counters.meterBalance(account.id, 'credits', periodBounds('month', gate.runtime.clock()).start);
    expect(balance).toEqual({ used: 30, reserved: 0 });
  });

  it("holds an account given its own window through the package's updateAccount to it from its next check", async () => {
    const account = await createAccount(gate.runtime, { name: 'Enterprise' }, 'test');
    const own = (await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test')).secret;
    const headers = { authorization: `Bearer ${own}` };
    expect((await fetch(`${url}/get-brands`, { headers })).headers.get('ratelimit-policy')).toBe('"3-per-1m";q=3;w=60');
    const changed = await updateAccount(gate.runtime, account.id, { limits: { rateLimits: [{ limit: 5, window: '1m' }] } }, 'test');
    expect(changed.limits).toEqual({ rateLimits: [{ limit: 5, window: 60_000, scope: 'key' }], meters: {} });
    const statuses = [];
    for (let i = 0; i < 5; i++) {
      const response = await fetch(`${url}/get-brands`, { headers });
      expect(response.headers.get('ratelimit-policy')).toBe('"5-per-1m";q=5;w=60');
      statuses.push(response.status);
      await response.text();
    }
    // A window of the plan's length judges the request it already holds (docs/rate-limits.md):
    // with the one before the change, five in the minute, and the sixth refused.
    expect(statuses).toEqual([200, 200, 200, 200, 429]);
  });

  it("refuses through the package's operations a plan expiry no page or table shows, in the words the CLI, the admin API and the dashboard use", async () => {
    const account = await createAccount(gate.runtime, { name: 'Late' }, 'test');
    for (const planExpiresAt of [Date.UTC(10000, 0, 1), Date.UTC(1969, 11, 31)]) {
      const refused = updateAccount(gate.runtime, account.id, { planExpiresAt }, 'test');
      await expect(refused).rejects.toBeInstanceOf(OperationError);
      await expect(refused).rejects.toThrow("the plan's expiry: the date must be from 1970-01-01 to 9999-12-31 (UTC)");
    }
  });

  it('charges per record what the API reports, nothing for a HEAD, and no further than the balance (no overage)', async () => {
    const account = await createAccount(gate.runtime, { name: 'Rows' }, 'test');
    const headers = { authorization: `Bearer ${(await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test')).secret}` };
    const balance = () => gate.runtime.counters.meterBalance(account.id, 'credits', periodBounds('month', gate.runtime.clock()).start);
    const head = await gate.check({ method: 'HEAD', url: '/rows', headers });
    if (!head.allowed) throw new Error('HEAD /rows should be allowed');
    await head.settle(200, 3);
    expect(await balance()).toEqual({ used: 0, reserved: 0 });
    const get = await gate.check({ method: 'GET', url: '/rows', headers });
    if (!get.allowed) throw new Error('GET /rows should be allowed');
    await get.settle(200, 3);
    expect(await balance()).toEqual({ used: 30, reserved: 0 });
    const many = await gate.check({ method: 'GET', url: '/rows', headers });
    if (!many.allowed) throw new Error('GET /rows should be allowed');
    await many.settle(200, 50);
    expect(await balance()).toEqual({ used: 100, reserved: 0 });
    // The account's daily usage records what was charged (30 + 70), not what was asked (30 + 500).
    await gate.runtime.usage.flush(gate.runtime.store);
    const day = new Date(gate.runtime.clock()).toISOString().slice(0, 10);
    const units = (await gate.runtime.store.listUsageDaily(account.id, day, day)).filter((row) => row.metric === 'units' && row.label === 'credits');
    expect(units.reduce((sum, row) => sum + row.value, 0)).toBe(100);
  });

  it('charges no records for a 204 or 205 settled without a count or with one that is none (it has no body), and what was reserved for a 200 without one, over node:http', async () => {
    const account = await createAccount(gate.runtime, { name: 'No content' }, 'test');
    const headers = { authorization: `Bearer ${(await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test')).secret}` };
    const balance = () => gate.runtime.counters.meterBalance(account.id, 'credits', periodBounds('month', gate.runtime.clock()).start);
    // The handler answers `?status=` and settles with that status alone, as a handler that counts no records does, or with `?records=` as Number() reads it.
    const settled: Promise<unknown>[] = [];
    const { server: plain, url: plainUrl } = await serveThrough(gate, async (res, admitted) => {
      const query = new URL(admitted.url, 'http://x').searchParams;
      const status = Number(query.get('status'));
      res.writeHead(status, admitted.headers);
      res.end(status === 204 || status === 205 ? undefined : '{"rows":[1,2]}');
      settled.push(query.has('records') ? admitted.settle(status, Number(query.get('records'))) : admitted.settle(status));
    });
    try {
      for (const query of ['status=204', 'status=205', 'status=204&records=lots', 'status=205&records=-1', 'status=205&records=1.5']) {
        // A key each: the plan allows a key 3 requests a minute.
        const own = { authorization: `Bearer ${(await createKey(gate.runtime, { accountId: account.id, name: query }, 'test')).secret}` };
        const empty = await fetch(`${plainUrl}/rows?${query}`, { headers: own });
        expect({ query, status: empty.status, body: await empty.text() }).toEqual({ query, status: Number(query.slice(7, 10)), body: '' });
      }
      await Promise.all(settled);
      expect(await balance()).toEqual({ used: 0, reserved: 0 });
      // A body the handler did not count may hold records: the 5 reserved (at 10 each), as before.
      const full = await fetch(`${plainUrl}/rows?status=200`, { headers });
      expect([full.status, await full.text()]).toEqual([200, '{"rows":[1,2]}']);
      await Promise.all(settled);
      expect(await balance()).toEqual({ used: 50, reserved: 0 });
    } finally {
      plain.closeAllConnections();
      await new Promise((resolve) => plain.close(resolve));
    }
  });

  it('gives the target without the credential parameter, to route by and log', async () => {
    const config = parseConfigObject({
      upstream: { url: 'http://127.0.0.1:1' },
      store: `sqlite:${path.join(dir, 'query.db')}`,
      keys: { prefix: { live: 'sk_live_' } },
      auth: { credentials: [{ in: 'query', name: 'apikey' }] },
      routes: [{ path: '/get-brands' }],
    });
    const inQuery = await createKeygate({ config, file: 'inline', dir });
    try {
      const account = await createAccount(inQuery.runtime, { name: 'Query' }, 'test');
      const key = (await createKey(inQuery.runtime, { accountId: account.id, name: 'k' }, 'test')).secret;
      const admitted = await inQuery.check({ method: 'GET', url: `/get-brands?page=2&apikey=${key}&q=a&password=p4ssw0rd`, headers: {} });
      // The API's own secret goes to it as sent; only a refusal's target, given to be logged, hides it.
      expect(admitted).toMatchObject({ allowed: true, url: '/get-brands?page=2&q=a&password=p4ssw0rd' });
      if (admitted.allowed) await admitted.settle(200);
      const refused = await inQuery.check({ method: 'GET', url: `/nowhere?apikey=${key}&password=p4ssw0rd`, headers: {} });
      expect(refused).toMatchObject({ allowed: false, reason: 'no_route', url: '/nowhere?apikey=[REDACTED]&password=[REDACTED]' });
      const odd = await inQuery.check({ method: 'GET', url: `/x/../get-brands?apikey=${key}`, headers: {} });
      expect(odd).toMatchObject({ allowed: false, reason: 'bad_request' });
      expect(JSON.stringify(odd)).not.toContain(key);
    } finally {
      await inQuery.close();
    }
  });

  it('gives the target without any parameter whose value is a key, though keygate does not read keys there; the handler\'s own req.url keeps it', async () => {
    const unread = await createKeygate({
      config: parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'unread.db')}`, keys: { prefix: { live: 'sk_live_', test: 'sk_test_' } } }),
      file: 'inline',
      dir,
    });
    const app = await urlEchoApp(unread);
    try {
      const account = await createAccount(unread.runtime, { name: 'Unread' }, 'test');
      const key = (await createKey(unread.runtime, { accountId: account.id, name: 'k' }, 'test')).secret;
      const other = unread.runtime.keyFormat.generate('test');
      const target = `/v1/x?api_key=${key}&page=2&ref=${other.replace('_', '%5F')}&q=a+b;k=${key}&doc=sk_live_docs`;
      const response = await fetch(`${app.url}${target}`, { headers: { authorization: `Bearer ${key}` } });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ url: '/v1/x?page=2&q=a+b&doc=sk_live_docs', reqUrl: target });
    } finally {
      await app.close();
      await unread.close();
    }
  });

  it('ignores auth.forwardCredential: the credential parameter is not in result.url, and the handler\'s req.url keeps it, as with it off', async () => {
    const forwarding = await createKeygate({
      config: parseConfigObject({
        upstream: { url: 'http://127.0.0.1:1' },
        store: `sqlite:${path.join(dir, 'forward-credential.db')}`,
        keys: { prefix: { live: 'sk_live_', test: 'sk_test_' } },
        auth: { credentials: [{ in: 'query', name: 'apikey' }], forwardCredential: true },
      }),
      file: 'inline',
      dir,
    });
    const app = await urlEchoApp(forwarding);
    try {
      const account = await createAccount(forwarding.runtime, { name: 'Forwarding' }, 'test');
      const key = (await createKey(forwarding.runtime, { accountId: account.id, name: 'k' }, 'test')).secret;
      const target = `/v1/x?page=2&apikey=${key}&q=a`;
      const response = await fetch(`${app.url}${target}`);
      expect([response.status, await response.json()]).toEqual([200, { url: '/v1/x?page=2&q=a', reqUrl: target }]);
    } finally {
      await app.close();
      await forwarding.close();
    }
  });

  it('gives the target without a parameter that holds a key inside a longer value (`?q=Bearer <key>`, `?filter=key:<key>`)', async () => {
    const inside = await createKeygate({
      config: parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'inside.db')}`, keys: { prefix: { live: 'sk_live_', test: 'sk_test_' } } }),
      file: 'inline',
      dir,
    });
    try {
      const account = await createAccount(inside.runtime, { name: 'Inside' }, 'test');
      const key = (await createKey(inside.runtime, { accountId: account.id, name: 'k' }, 'test')).secret;
      const other = inside.runtime.keyFormat.generate('test');
      const result = await inside.check({ method: 'GET', url: `/v1/x?q=Bearer%20${key}&page=2&filter=key:${other}&x=${key},abc&q2=a+b`, headers: { authorization: `Bearer ${key}` } });
      expect(result).toMatchObject({ allowed: true, url: '/v1/x?page=2&q2=a+b' });
      if (result.allowed) await result.settle(200);
    } finally {
      await inside.close();
    }
  });

  it('ignores one trailing slash when matching routes, and gives the target as it was sent', async () => {
    const slashed = await createKeygate({
      config: parseConfigObject({
        upstream: { url: 'http://127.0.0.1:1' },
        store: `sqlite:${path.join(dir, 'slash.db')}`,
        basePath: '/v1',
        plans: { scale: { meters: { credits: { limit: 100 } } } },
        routes: [
          { method: 'GET', path: '/v1/data', cost: { meter: 'credits', perRequest: 1 } },
          { method: 'GET', path: '/v1/files/' },
          { method: 'GET', path: '/v1/items/:id' },
          { method: 'GET', path: '/v1/any/*' },
        ],
      }),
      file: 'inline',
      dir,
    });
    try {
      const account = await createAccount(slashed.runtime, { name: 'Slash' }, 'test');
      const headers = { authorization: `Bearer ${(await createKey(slashed.runtime, { accountId: account.id, name: 'k' }, 'test')).secret}` };
      const judged = async (url: string) => {
        const result = await slashed.check({ method: 'GET', url, headers });
        if (result.allowed) await result.settle(200);
        return result.allowed ? { url: result.url, route: result.route.name } : { reason: result.reason };
      };
      // With or without it, the same route (its scopes, cost and rate-limit windows); the
      // target is given (and forwarded, by the gateway) as sent, slash included.
      expect(await judged('/v1/data/?page=2')).toEqual({ url: '/v1/data/?page=2', route: 'GET /v1/data' });
      expect(await judged('/v1/data')).toEqual({ url: '/v1/data', route: 'GET /v1/data' });
      // A route declared with one is the same route without it.
      expect(await judged('/v1/files')).toEqual({ url: '/v1/files', route: 'GET /v1/files/' });
      expect(await judged('/v1/items/7/')).toEqual({ url: '/v1/items/7/', route: 'GET /v1/items/:id' });
      // The slash is taken off before matching: it is no empty parameter, nor an empty `*`.
      expect(await judged('/v1/items/')).toEqual({ reason: 'no_route' });
      expect(await judged('/v1/any/')).toEqual({ reason: 'no_route' });
      expect(await judged('/v1/any/x/')).toEqual({ url: '/v1/any/x/', route: 'GET /v1/any/*' });
      // One slash only: two are `//`, which a server may merge.
      expect(await judged('/v1/data//')).toEqual({ reason: 'bad_request' });
      // Both were charged as the one route.
      await slashed.runtime.usage.flush(slashed.runtime.store);
      const day = new Date(slashed.runtime.clock()).toISOString().slice(0, 10);
      const units = (await slashed.runtime.store.listUsageDaily(account.id, day, day)).filter((row) => row.metric === 'units');
      expect(units.map((row) => [row.label, row.value])).toEqual([['credits', 2]]);
    } finally {
      await slashed.close();
    }
  });

  it("counts a revoked key's refusals in its account's daily denials, as the gateway does", async () => {
    const account = await createAccount(gate.runtime, { name: 'Revoked' }, 'test');
    const key = await createKey(gate.runtime, { accountId: account.id, name: 'old' }, 'test');
    await revokeKey(gate.runtime, key.key.id, 'test');
    const headers = { authorization: `Bearer ${key.secret}` };
    for (let i = 0; i < 3; i++) expect(await gate.check({ method: 'GET', url: '/get-brands', headers })).toMatchObject({ allowed: false, reason: 'revoked_key' });
    await gate.runtime.usage.flush(gate.runtime.store);
    const day = new Date(gate.runtime.clock()).toISOString().slice(0, 10);
    const denials = (await gate.runtime.store.listUsageDaily(account.id, day, day)).filter((row) => row.metric === 'denials');
    expect(denials.map((row) => [row.label, row.value])).toEqual([['revoked_key', 3]]);
  });

  it('refuses what the gateway refuses before reading a key: a path the API could read as another, and paths outside basePath', async () => {
    const headers = { authorization: `Bearer ${secret}` };
    for (const url of ['/x/../get-brands', '/x/%2e%2e/get-brands', '/x\\..\\get-brands', '//get-brands']) {
      const result = await gate.check({ method: 'GET', url, headers });
      expect(result, url).toMatchObject({ allowed: false, reason: 'bad_request', error: { status: 400 } });
    }
    // A read key and an admin route: paths the API's router would serve as the admin route.
    const scoped = await createKeygate({
      config: parseConfigObject({
        upstream: { url: 'http://127.0.0.1:1' },
        store: `sqlite:${path.join(dir, 'scoped.db')}`,
        scopes: ['read', 'admin'],
        routes: [{ path: '/v1/admin/*', scopes: ['admin'] }, { path: '/v1/*', scopes: ['read'] }],
      }),
      file: 'inline',
      dir,
    });
    try {
      const team = await createAccount(scoped.runtime, { name: 'Readers' }, 'test');
      const reader = { authorization: `Bearer ${(await createKey(scoped.runtime, { accountId: team.id, name: 'r', scopes: ['read'] }, 'test')).secret}` };
      // * with other scopes is refused here as by the admin API, the CLI and the dashboard.
      await expect(createKey(scoped.runtime, { accountId: team.id, name: 'both', scopes: ['*', 'admin'] }, 'test')).rejects.toMatchObject({
        kind: 'invalid',
        message: 'scope * already grants every scope, so admin would add nothing: give * alone, or the scopes the key needs without *',
      });
      expect(await scoped.check({ method: 'GET', url: '/v1/admin/users', headers: reader })).toMatchObject({ allowed: false, reason: 'insufficient_scope' });
      for (const url of ['/v1/x/../admin/users', '/v1/x/%2e%2e/admin/users', '/v1/x\\..\\admin/users', '/v1//admin/users', '/v1/admin;x/users']) {
        expect(await scoped.check({ method: 'GET', url, headers: reader }), url).toMatchObject({ allowed: false, reason: 'bad_request' });
      }
      const allowed = await scoped.check({ method: 'GET', url: '/v1/reports', headers: reader });
      expect(allowed).toMatchObject({ allowed: true });
      if (allowed.allowed) await allowed.settle(200);
    } finally {
      await scoped.close();
    }
    const based = await createKeygate({
      config: parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'based.db')}`, basePath: '/api' }),
      file: 'inline',
      dir,
    });
    try {
      expect(await based.check({ method: 'GET', url: '/other', headers })).toMatchObject({ allowed: false, reason: 'no_route', error: { status: 404 } });
      expect(await based.check({ method: 'GET', url: '/api/x', headers: {} })).toMatchObject({ allowed: false, reason: 'missing_key', error: { status: 401 } });
      // A forecast prices what the gateway routes: nothing outside basePath (the catch-all route matched it).
      await expect(forecast(based.runtime, [{ method: 'GET', path: '/other', count: 1 }])).rejects.toThrow('calls[0]: no route for GET /other');
    } finally {
      await based.close();
    }
  });
});

describe('keygate as a library, when a backend fails or it stops', () => {
  const dir = tempDir('library-stop');
  /** A profile of its own on a SQLite file of its own: a flat-cost route, a per-record one, a built-in that reads a gauge from the store. */
  const profile = (file: string, drainTimeout?: string) =>
    parseConfigObject({
      upstream: { url: 'http://127.0.0.1:1' },
      store: `sqlite:${path.join(dir, file)}`,
      keys: { prefix: { live: 'sk_live_' } },
      errors: { envelope: 'error' },
      ...(drainTimeout === undefined ? {} : { shutdown: { drainTimeout } }),
      plans: { scale: { meters: { credits: { limit: 100 }, keywords: { kind: 'gauge', limit: 10 } } } },
      routes: [
        { path: '/get-brands', cost: { meter: 'credits', perRequest: 10 } },
        { method: 'GET', path: '/rows', cost: { meter: 'credits', perRecord: 10, records: { header: 'X-Rows' }, reserveRecords: 5 } },
      ],
      builtins: [{ path: '/me', body: { account: '{{account.id}}', keywords: '{{meters.keywords.usage}}' } }],
    });
  /** The account's credits as the store holds them once the gate is closed (the balance it starts with next time). */
  const storedCredits = async (file: string, accountId: string) => {
    const again = await createKeygate({ config: profile(file), file: 'inline', dir });
    try {
      const rows = await again.runtime.store.loadMeterUsage({ accountId });
      return rows.filter((row) => row.meter === 'credits').map((row) => row.used);
    } finally {
      await again.close();
    }
  };

  it('refuses a request that arrives once close() has begun with a 503 in the envelope, as the gateway does while it stops, and charges it nothing', async () => {
    const gate = await createKeygate({ config: profile('closing.db'), file: 'inline', dir });
    const account = await createAccount(gate.runtime, { name: 'Acme' }, 'test');
    const headers = { authorization: `Bearer ${(await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test')).secret}` };
    // The docs' pattern on node:http; a keep-alive connection carries requests past the gate's close.
    const served = await serveThrough(gate, async (res, admitted) => {
      res.writeHead(200, { 'content-type': 'application/json', ...admitted.headers }).end('{"brands":[]}');
      await admitted.settle(200);
    });
    const { server } = served;
    const url = `${served.url}/get-brands`;
    try {
      const before = await fetch(url, { headers });
      expect({ status: before.status, body: await before.text() }).toEqual({ status: 200, body: '{"brands":[]}' });
      await gate.close();
      // The key is cached and the counters are in memory: without a refusal, this would be served and charged where nothing writes it out.
      const after = await fetch(url, { headers });
      expect({ status: after.status, retryAfter: after.headers.get('retry-after'), body: await after.json() }).toEqual({
        status: 503,
        retryAfter: '1',
        body: { error: 'Service temporarily unavailable. Try again shortly.' },
      });
      expect(await gate.check({ method: 'GET', url: '/get-brands', headers })).toMatchObject({ allowed: false, reason: 'service_unavailable' });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await gate.close();
    }
    expect(await storedCredits('closing.db', account.id)).toEqual([10]);
  });

  it('answers a failure on the way to an answer (a built-in whose store is closed) with a 503 in the envelope, logged, instead of rejecting', async () => {
    const lines: string[] = [];
    const log = createLog({ level: 'info', destination: { write: (line: string) => void lines.push(line) } });
    const gate = await createKeygate({ config: profile('failing.db'), file: 'inline', dir }, { log });
    try {
      const account = await createAccount(gate.runtime, { name: 'Acme' }, 'test');
      const headers = { authorization: `Bearer ${(await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test')).secret}` };
      const served = await gate.check({ method: 'GET', url: '/me', headers });
      expect(served).toMatchObject({ allowed: true, builtinBody: JSON.stringify({ account: account.id, keywords: 0 }) });
      if (served.allowed) await served.settle(200);
      // The key stays cached; the built-in reads the gauge from the store, which no longer answers.
      await gate.runtime.store.close();
      const refused = await gate.check({ method: 'GET', url: '/me', headers });
      expect(refused).toMatchObject({ allowed: false, reason: 'service_unavailable', url: '/me', error: { status: 503, headers: { 'retry-after': '5' }, body: '{"error":"Service temporarily unavailable. Try again shortly."}' } });
      const logged = lines.map((line) => JSON.parse(line) as { msg: string; target?: string; err?: unknown });
      expect(logged.find((line) => line.msg === 'library check failed')).toMatchObject({ target: '/me', err: expect.anything() });
    } finally {
      await gate.close().catch(() => undefined);
    }
  });

  it('answers a request without a method and target (plain JavaScript) with bad_request (400) instead of rejecting or a 503, says so in the log, and close() does not wait for it', async () => {
    const lines: { msg: string }[] = [];
    const log = createLog({ level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) } });
    const gate = await createKeygate({ config: profile('no-target.db'), file: 'inline', dir }, { log });
    try {
      for (const request of [undefined, { method: 'GET', headers: {} }, { method: 7, url: '/get-brands', headers: {} }]) {
        const refused = await gate.check(request as unknown as CheckRequest);
        expect(refused).toMatchObject({ allowed: false, reason: 'bad_request', error: { status: 400, body: '{"error":"Bad request."}' } });
      }
    } finally {
      await gate.close();
    }
    expect(lines.filter((line) => line.msg.startsWith('library check was given a request without a method and url'))).toHaveLength(3);
    expect(lines.filter((line) => line.msg === 'library check failed')).toEqual([]);
    expect(lines.filter((line) => line.msg.startsWith('waiting for') || line.msg.startsWith('admitted requests still unsettled'))).toEqual([]);
  });

  it('answers a request whose fields or headers throw when read (a getter, a Proxy) instead of rejecting, and close() does not wait for it', async () => {
    const lines: { msg: string }[] = [];
    const log = createLog({ level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) } });
    const gate = await createKeygate({ config: profile('throwing.db'), file: 'inline', dir }, { log });
    const fail = () => {
      throw new Error('cannot be read');
    };
    try {
      const headers = [{ get authorization(): string { return fail(); } }, new Proxy({}, { ownKeys: fail })];
      for (const each of headers) {
        // What could be read is judged: no header could be, so no key was sent.
        expect(await gate.check({ method: 'GET', url: '/get-brands', headers: each as CheckRequest['headers'] })).toMatchObject({ allowed: false, reason: 'missing_key', error: { status: 401 } });
      }
      const request = { get method(): string { return fail(); }, url: '/get-brands', headers: {} };
      expect(await gate.check(request)).toMatchObject({ allowed: false, reason: 'bad_request', error: { status: 400 } });
      // Only a method or url that throws is bad_request: other fields that throw are absent, and the rest is judged.
      for (const field of ['rawHeaders', 'remoteAddress']) {
        const odd = Object.defineProperty({ method: 'GET', url: '/get-brands', headers: {} }, field, { get: fail, enumerable: true });
        expect(await gate.check(odd), field).toMatchObject({ allowed: false, reason: 'missing_key', error: { status: 401 } });
      }
    } finally {
      await gate.close();
    }
    expect(lines.filter((line) => line.msg.startsWith('waiting for') || line.msg.startsWith('admitted requests still unsettled'))).toEqual([]);
  });

  it('close() waits for the requests it admitted to settle, then writes usage out: a failed answer given back during the stop is given back in the store too', async () => {
    // The log says when close() begins to wait: the settle below comes after that, not after a guess at how long closing takes.
    let saidWaiting!: (line: { level: number; unsettled: number }) => void;
    const waiting = new Promise<{ level: number; unsettled: number }>((resolve) => (saidWaiting = resolve));
    const write = (line: string) => {
      const parsed = JSON.parse(line) as { msg: string; level: number; unsettled: number };
      if (parsed.msg.startsWith('waiting for')) saidWaiting(parsed);
    };
    const gate = await createKeygate({ config: profile('draining.db'), file: 'inline', dir }, { log: createLog({ level: 'info', destination: { write } }) });
    const account = await createAccount(gate.runtime, { name: 'Acme' }, 'test');
    const headers = { authorization: `Bearer ${(await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test')).secret}` };
    const admitted = await gate.check({ method: 'GET', url: '/get-brands', headers });
    if (!admitted.allowed) throw new Error('GET /get-brands should be allowed');
    // The app begins to stop while this request is still being answered.
    const closing = gate.close();
    expect(await Promise.race([closing.then(() => 'closed'), waiting])).toMatchObject({ level: 30, unsettled: 1 });
    // Its answer failed: the flat cost charged at admission is given back, and the store learns so.
    await admitted.settle(500);
    await closing;
    expect(await storedCredits('draining.db', account.id)).toEqual([0]);
  });

  it('a settle after close() stopped waiting for it (shutdown.drainTimeout) records nothing and says so: charged is what the store holds, a flat cost yes, a per-record one no', async () => {
    const lines: { msg: string; level: number; route?: string; status?: number; charged?: boolean }[] = [];
    const log = createLog({ level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string; level: number }) } });
    const gate = await createKeygate({ config: profile('gave-up.db', '300ms'), file: 'inline', dir }, { log });
    const account = await createAccount(gate.runtime, { name: 'Acme' }, 'test');
    const headers = { authorization: `Bearer ${(await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test')).secret}` };
    const rows = await gate.check({ method: 'GET', url: '/rows', headers });
    const brands = await gate.check({ method: 'GET', url: '/get-brands', headers });
    if (!rows.allowed || !brands.allowed) throw new Error('GET /rows and GET /get-brands should be allowed');
    // Neither is settled in time: close() gives up on both and writes usage out without them.
    await gate.close();
    expect(lines.filter((line) => line.msg.startsWith('admitted requests still unsettled'))).toHaveLength(1);
    expect(await rows.settle(200, 3)).toEqual({ status: 200, charged: false });
    expect(await brands.settle(500)).toEqual({ status: 500, charged: true });
    expect(await rows.settle(200, 3)).toEqual({ status: 200, charged: false });
    expect(lines.filter((line) => line.msg.startsWith('settle came after close() stopped waiting')).map(({ level, route, status, charged }) => ({ level, route, status, charged }))).toEqual([
      { level: 40, route: 'GET /rows', status: 200, charged: false },
      { level: 40, route: '* /get-brands', status: 500, charged: true },
    ]);
    // The flat cost charged at admission, and nothing for the rows.
    expect(await storedCredits('gave-up.db', account.id)).toEqual([10]);
  });
});

describe('keygate as a library, given a count of records that is not one', () => {
  const dir = tempDir('library-records');

  it('charges a NaN, negative, fractional or 16-digit count as the gateway charges a count it cannot read (the reservation), and still writes every usage row', async () => {
    const config = parseConfigObject({
      upstream: { url: 'http://127.0.0.1:1' },
      store: `sqlite:${path.join(dir, 'k.db')}`,
      plans: { scale: { meters: { credits: { limit: 1000 } } } },
      routes: [{ method: 'GET', path: '/rows', cost: { meter: 'credits', perRecord: 1, records: { header: 'X-Count' }, reserveRecords: 5 } }],
    });
    const lines: { msg: string; records?: string; route?: string }[] = [];
    const log = createLog({ level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) } });
    const gate = await createKeygate({ config, file: 'inline', dir }, { log });
    const account = await createAccount(gate.runtime, { name: 'Acme' }, 'test');
    const issued = await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test');
    const headers = { authorization: `Bearer ${issued.secret}` };
    // An API that counts its rows from something it computed: `?n=` stands for it.
    const served = await serveThrough(gate, async (res, admitted) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('[]');
      await admitted.settle(200, Number(new URL(admitted.url, 'http://x').searchParams.get('n')));
    });
    const { server } = served;
    const url = `${served.url}/rows`;
    try {
      // 10^15 is past the 15 digits a count header may have (docs/quotas.md): the gateway would charge the reservation.
      for (const n of ['2', 'many', '-3', '1.5', '1000000000000000']) expect((await fetch(`${url}?n=${n}`, { headers })).status).toBe(200);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await gate.close();
    }
    // Each said with what is wrong with it: "pass 0" only for NaN (a count that could not be read).
    const said = 'settle was given a number of records that is not a whole number from 0 to 999999999999999; charged the reserved estimate';
    expect(lines.filter((line) => line.msg.startsWith('settle was given')).map((line) => [line.route, line.records, line.msg])).toEqual([
      ['/rows', 'NaN', `${said} (settle cannot see the answer: one sent without a body has no records, pass 0)`],
      ['/rows', '-3', `${said} (a count of records is never negative)`],
      ['/rows', '1.5', `${said} (records are counted whole: pass a whole number)`],
      ['/rows', '1000000000000000', `${said} (a count of records is at most 999999999999999, as a count header's 15 digits)`],
    ]);
    // What the store holds once closed: 2 counted, then the 5 reserved for each of the four.
    const again = await createKeygate({ config, file: 'inline', dir });
    try {
      const meters = await again.runtime.store.loadMeterUsage({ accountId: account.id });
      expect(meters.map((row) => [row.meter, row.used])).toEqual([['credits', 22]]);
      const day = new Date(again.runtime.clock()).toISOString().slice(0, 10);
      const daily = await again.runtime.store.listUsageDaily(account.id, day, day);
      expect(daily.map((row) => [row.metric, row.label, row.value]).sort()).toEqual([
        ['key_requests', issued.key.id, 5],
        ['requests', '2xx', 5],
        ['units', 'credits', 22],
      ]);
    } finally {
      await again.close();
    }
  });
});

/**
 * An empty 200 on a per-record route. The gateway sees that it has no body: a count header
 * it cannot read charges no records. settle sees no answer, only what it is given: records
 * it cannot read (NaN) are charged the reservation, whatever was sent, and the handler that
 * answered without a body says so with 0 (docs/library.md).
 */
describe('keygate as a library, answering an empty 200 on a per-record route', () => {
  const dir = tempDir('library-empty-200');
  const profile = {
    keys: { prefix: { live: 'sk_live_' } },
    plans: { scale: { meters: { credits: { limit: 1000 } } } },
    routes: [{ method: 'GET' as const, path: '/empty', cost: { meter: 'credits', perRecord: 10, records: { header: 'X-Record-Count' }, reserveRecords: 5 } }],
  };

  it('is charged no records when settled with 0, as the gateway charges one whose count it cannot read; records it cannot read (NaN) are the reservation, and the warning says to pass 0', async () => {
    const upstream = await startTestUpstream();
    const gateway = await startKeygate({ ...profile, upstream: { url: upstream.url } }, { dir });
    try {
      const account = await createAccount(gateway.runtime, { name: 'Acme' }, 'test');
      const { secret } = await createKey(gateway.runtime, { accountId: account.id, name: 'k' }, 'test');
      const empty = await gateway.call('/empty?status=200&count=many', { headers: { authorization: `Bearer ${secret}` } });
      expect([empty.status, await empty.text()]).toEqual([200, '']);
      expect(await gateway.runtime.counters.meterBalance(account.id, 'credits', periodBounds('month', gateway.runtime.clock()).start)).toEqual({ used: 0, reserved: 0 });
    } finally {
      await gateway.close();
      await upstream.close();
    }

    const lines: { msg: string; records?: string }[] = [];
    const log = createLog({ level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) } });
    const gate = await createKeygate({ config: parseConfigObject({ ...profile, store: `sqlite:${path.join(dir, 'library.db')}` }), file: 'inline', dir }, { log });
    // The handler answers an empty 200 and settles with `?count=` as Number() reads it.
    const { server, url } = await serveThrough(gate, async (res, admitted) => {
      res.writeHead(200, admitted.headers).end();
      await admitted.settle(200, Number(new URL(admitted.url, 'http://x').searchParams.get('count')));
    });
    try {
      const account = await createAccount(gate.runtime, { name: 'Acme' }, 'test');
      const headers = { authorization: `Bearer ${(await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test')).secret}` };
      const balance = () => gate.runtime.counters.meterBalance(account.id, 'credits', periodBounds('month', gate.runtime.clock()).start);
      const zero = await fetch(`${url}/empty?count=0`, { headers });
      expect([zero.status, await zero.text()]).toEqual([200, '']);
      expect(await balance()).toEqual({ used: 0, reserved: 0 });
      const unread = await fetch(`${url}/empty?count=many`, { headers });
      expect([unread.status, await unread.text()]).toEqual([200, '']);
      expect(await balance()).toEqual({ used: 50, reserved: 0 });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await gate.close();
    }
    expect(lines.filter((line) => line.msg.startsWith('settle was given')).map((line) => [line.records, line.msg])).toEqual([
      ['NaN', 'settle was given a number of records that is not a whole number from 0 to 999999999999999; charged the reserved estimate (settle cannot see the answer: one sent without a body has no records, pass 0)'],
    ]);
  });
});

describe('keygate as a library, with a profile without upstream (nothing is forwarded in process)', () => {
  const dir = tempDir('library-no-upstream');

  it('checks, charges and refuses over a real API, while serve refuses the profile, naming upstream.url', async () => {
    const config = parseConfigObject({
      store: `sqlite:${path.join(dir, 'k.db')}`,
      errors: { envelope: 'message' },
      plans: { free: { meters: { credits: { limit: 4 } } } },
      routes: [{ method: 'GET', path: '/rows', cost: { meter: 'credits', perRequest: 2 } }],
    });
    const gate = await createKeygate({ config, file: 'inline', dir });
    const { server, url } = await serveThrough(gate, async (res, admitted) => {
      res.writeHead(200, { 'content-type': 'application/json', ...admitted.headers }).end(JSON.stringify({ account: admitted.identity.account.name }));
      await admitted.settle(200);
    });
    try {
      const account = await createAccount(gate.runtime, { name: 'Acme' }, 'test');
      const { secret } = await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test');
      const unkeyed = await fetch(`${url}/rows`);
      expect([unkeyed.status, await unkeyed.json()]).toEqual([401, { message: expect.any(String) }]);
      const get = () => fetch(`${url}/rows`, { headers: { authorization: `Bearer ${secret}` } });
      for (let i = 0; i < 2; i++) {
        const admitted = await get();
        expect([admitted.status, await admitted.json()]).toEqual([200, { account: 'Acme' }]);
      }
      // 4 credits, 2 a request: the third finds none left.
      expect((await get()).status).toBe(402);

      const refused = await serve({ config, file: 'inline', dir }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(ConfigError);
      expect((refused as ConfigError).message).toBe(
        'inline: cannot be served without upstream.url, or gateway: false\n' +
          '  - upstream.url: required to serve the gateway, which forwards the requests it admits there (e.g. http://127.0.0.1:4000); for the admin API alone, with no gateway (a backend that checks its requests over HTTP: POST /v1/check), say gateway: false instead. A profile with neither is for keygate as a library (createKeygate), which forwards nothing',
      );
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await gate.close();
    }
  });
});

describe('keygate as a library, given something else than a loaded profile', () => {
  const dir = tempDir('library-profile');

  it('says what createKeygate takes, before opening a store, when given a bare profile or one not validated (plain JavaScript)', async () => {
    const file = path.join(dir, 'k.db');
    const profile = { upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${file}` };
    const said = "createKeygate takes a loaded profile, { config, file, dir }, as loadConfigFile('keygate.yaml') answers it";
    for (const given of [parseConfigObject(profile), profile, { config: profile, file: 'inline', dir }, undefined]) {
      await expect(createKeygate(given as unknown as LoadedConfig)).rejects.toThrow(said);
    }
    expect(existsSync(file)).toBe(false);
  });

  it('says what reload takes when given a bare profile, and keeps the one in use', async () => {
    const profile = { upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'reload.db')}`, routes: [{ path: '/a' }] };
    const gate = await createKeygate({ config: parseConfigObject(profile), file: 'inline', dir });
    try {
      const account = await createAccount(gate.runtime, { name: 'Acme' }, 'test');
      const headers = { authorization: `Bearer ${(await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test')).secret}` };
      const bare = parseConfigObject({ ...profile, routes: [{ path: '/b' }] });
      await expect(gate.reload(bare as unknown as LoadedConfig)).rejects.toThrow("reload takes a loaded profile, { config, file, dir }, as loadConfigFile('keygate.yaml') answers it");
      expect(await gate.check({ method: 'GET', url: '/b', headers })).toMatchObject({ allowed: false, reason: 'no_route' });
      expect(await gate.reload({ config: bare, file: 'inline', dir })).toEqual(['routes']);
      const admitted = await gate.check({ method: 'GET', url: '/b', headers });
      expect(admitted).toMatchObject({ allowed: true });
      if (admitted.allowed) await admitted.settle(200);
    } finally {
      await gate.close();
    }
  });
});

describe("keygate as a library, refused at start with the package's own error classes", () => {
  const dir = tempDir('library-start');

  it('rejects a second createKeygate on the SQLite file with the DatabaseInUseError the package exports, so that an app can tell it from a bad profile', async () => {
    const loaded = { config: parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'k.db')}` }), file: 'inline', dir };
    const gate = await createKeygate(loaded);
    try {
      const second = createKeygate(loaded);
      await expect(second).rejects.toBeInstanceOf(DatabaseInUseError);
      await expect(second).rejects.toThrow(/^this process already runs a keygate on this SQLite file/);
      expect(await second.catch((error: unknown) => error)).not.toBeInstanceOf(ConfigError);
    } finally {
      await gate.close();
    }
  });
});

describe("keygate as a library, with a gauge meter, which no upstream reports in process", () => {
  const dir = tempDir('library-gauge');

  it("sets an account's gauge through the package's setGauge, as the admin API's PUT /v1/accounts/{id}/gauges/{meter} does, and a built-in answers it", async () => {
    const config = parseConfigObject({
      store: `sqlite:${path.join(dir, 'k.db')}`,
      keys: { prefix: { live: 'sk_live_' } },
      plans: { pro: { meters: { keywords: { kind: 'gauge', limit: 2000 }, credits: { limit: 100 } } } },
      routes: [{ path: '/v1/*' }],
      builtins: [{ method: 'GET', path: '/v1/account/usage', body: { keywords: '{{meters.keywords.usage}}' } }],
    });
    const gate = await createKeygate({ config, file: 'inline', dir });
    try {
      const account = await createAccount(gate.runtime, { name: 'Acme' }, 'signup');
      const { secret } = await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'signup');
      const usage = async () => {
        const result = await gate.check({ method: 'GET', url: '/v1/account/usage', headers: { authorization: `Bearer ${secret}` } });
        if (!result.allowed) throw new Error(`refused: ${result.reason}`);
        await result.settle(200);
        return JSON.parse(result.builtinBody ?? '');
      };
      expect(await usage()).toEqual({ keywords: 0 });
      await setGauge(gate.runtime, account.id, 'keywords', 1234);
      expect(await usage()).toEqual({ keywords: 1234 });
      // A consumed meter is charged by requests, never set: the operator is told which are gauges.
      const consumed = setGauge(gate.runtime, account.id, 'credits', 5);
      await expect(consumed).rejects.toBeInstanceOf(OperationError);
      await expect(consumed).rejects.toThrow('"credits" is a consumed meter of the pro plan, charged by requests: only a gauge is set (its gauges: keywords)');
    } finally {
      await gate.close();
    }
  });
});

/**
 * What a plain-JavaScript caller may hand `check` as headers (no TypeScript to stop it),
 * next to the same request as bytes on the wire to `serve()`: each gets the answer the
 * gateway gives those bytes, in the profile's envelope.
 */
describe('check() with headers in shapes Node never makes answers as serve() does for the same request', () => {
  const dir = tempDir('library-header-shapes');
  const profile = {
    upstream: { url: 'http://127.0.0.1:1' },
    keys: { prefix: { live: 'sk_live_' } },
    errors: { envelope: 'error' as const },
    auth: { credentials: [{ in: 'header' as const, name: 'Authorization', scheme: 'Bearer' }] },
  };
  let gate: Keygate;
  let gateway: TestKeygate;
  let upstream: TestUpstream;
  /** A key of each: the library's store and the gateway's are two files. */
  let librarySecret: string;
  let gatewaySecret: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    gateway = await startKeygate({ ...profile, upstream: { url: upstream.url } }, { dir });
    const gatewayAccount = await createAccount(gateway.runtime, { name: 'Acme' }, 'test');
    gatewaySecret = (await createKey(gateway.runtime, { accountId: gatewayAccount.id, name: 'k' }, 'test')).secret;
    gate = await createKeygate({ config: parseConfigObject({ ...profile, store: `sqlite:${path.join(dir, 'library.db')}` }), file: 'inline', dir }, { log: createLog({ level: 'silent' }) });
    const account = await createAccount(gate.runtime, { name: 'Acme' }, 'test');
    librarySecret = (await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test')).secret;
  });

  afterAll(async () => {
    await gate?.close();
    await gateway?.close();
    await upstream?.close();
  });

  /** The gateway's answer to a GET of `target` with these header lines (`KEY`: its key), sent as bytes. */
  function overTheWire(target: string, headerLines: string[]): Promise<{ status: number; body: string }> {
    const { port } = new URL(gateway.gatewayUrl);
    const lines = headerLines.map((line) => line.replaceAll('KEY', gatewaySecret));
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: Number(port) });
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
      socket.on('error', reject);
      socket.on('close', () => resolve({ status: Number(text.slice(9, 12)), body: text.slice(text.indexOf('\r\n\r\n') + 4) }));
      socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n${lines.map((line) => `${line}\r\n`).join('')}Connection: close\r\n\r\n`);
    });
  }

  /** The library's answer to `headers` (a function of its key), as status and body (a 200 for an admitted request, as an API would send it). */
  async function inProcess(target: string, headers: (key: string) => unknown): Promise<{ status: number; body: string }> {
    const result = await gate.check({ method: 'GET', url: target, headers: headers(librarySecret) } as CheckRequest);
    if (!result.allowed) return { status: result.error.status, body: result.error.body };
    await result.settle(200);
    return { status: 200, body: 'admitted' };
  }

  const MISSING = { status: 401, body: '{"error":"Missing API key."}' };
  const INVALID = { status: 401, body: '{"error":"Invalid API key."}' };
  const ADMITTED = { status: 200 };
  const cases: [string, (key: string) => unknown, string[], { status: number; body?: string }][] = [
    ['Authorization twice, as an array', (key) => ({ authorization: [`Bearer ${key}`, `Bearer ${key}`] }), ['Authorization: Bearer KEY', 'Authorization: Bearer KEY'], INVALID],
    ['an array where one value goes', (key) => ({ authorization: [`Bearer ${key}`] }), ['Authorization: Bearer KEY', 'Authorization: Bearer KEY'], INVALID],
    ['a number', () => ({ authorization: 42 }), ['Authorization: 42'], INVALID],
    ['an object', () => ({ authorization: { value: 'Bearer x' } }), ['Authorization: [object Object]'], INVALID],
    ['a symbol', () => ({ authorization: Symbol('key') }), ['Authorization: Symbol(key)'], INVALID],
    ['undefined', () => ({ authorization: undefined }), [], MISSING],
    ['null', () => ({ authorization: null }), [], MISSING],
    ['no headers object', () => undefined, [], MISSING],
    ['headers null', () => null, [], MISSING],
    ['headers a string', () => 'authorization: Bearer x', [], MISSING],
    ['a name in its usual case', (key) => ({ Authorization: `Bearer ${key}` }), ['Authorization: Bearer KEY'], ADMITTED],
    ['one name in two cases', (key) => ({ Authorization: `Bearer ${key}`, authorization: `Bearer ${key}` }), ['Authorization: Bearer KEY', 'authorization: Bearer KEY'], INVALID],
    ['a Map', (key) => new Map([['Authorization', `Bearer ${key}`]]), ['Authorization: Bearer KEY'], ADMITTED],
    ['a Headers', (key) => new Headers({ authorization: `Bearer ${key}` }), ['Authorization: Bearer KEY'], ADMITTED],
    ['a Headers with Authorization twice', (key) => { const headers = new Headers(); headers.append('authorization', `Bearer ${key}`); headers.append('authorization', `Bearer ${key}`); return headers; }, ['Authorization: Bearer KEY', 'Authorization: Bearer KEY'], INVALID],
    ['a Map with a value of null', () => new Map([['authorization', null]]), [], MISSING],
  ];

  it.each(cases)('%s', async (_name, headers, lines, expected) => {
    const wire = await overTheWire('/v1/reports', lines);
    const library = await inProcess('/v1/reports', headers);
    expect(wire).toMatchObject(expected);
    expect(library).toMatchObject(expected);
    if (expected.status !== 200) expect(library).toEqual(wire);
  });
});

describe('keygate as a library, with auth.unknownKeys', () => {
  const dir = tempDir('library-unknown-keys');
  let gate: Keygate;

  afterAll(async () => {
    await gate?.close();
  });

  it('counts unknown keys by the remoteAddress check is given (X-Forwarded-For only from a trusted proxy), and none without one', async () => {
    const config = parseConfigObject({
      store: `sqlite:${path.join(dir, 'k.db')}`,
      trustedProxies: ['10.0.0.1'],
      auth: { unknownKeys: { limit: 2, window: '1m', block: '10m' } },
    });
    gate = await createKeygate({ config, file: 'inline', dir });
    const check = (extra: Partial<CheckRequest>, headers: Record<string, string> = {}) =>
      gate.check({ method: 'GET', url: '/x', headers: { authorization: `Bearer ${gate.runtime.keyFormat.generate('live')}`, ...headers }, ...extra });
    const reasons = async (extra: Partial<CheckRequest>, headers?: Record<string, string>) => {
      const seen: string[] = [];
      for (let i = 0; i < 3; i++) {
        const result = await check(extra, headers);
        seen.push(result.allowed ? 'allowed' : result.reason);
      }
      return seen;
    };
    expect(await reasons({})).toEqual(['unknown_key', 'unknown_key', 'unknown_key']);
    expect(await reasons({ remoteAddress: '192.0.2.7' })).toEqual(['unknown_key', 'unknown_key', 'too_many_failures']);
    const refused = await check({ remoteAddress: '192.0.2.7' });
    expect([refused.allowed, !refused.allowed && refused.error.status, !refused.allowed && refused.error.headers['retry-after']]).toEqual([false, 429, '600']);
    expect(await reasons({ remoteAddress: '10.0.0.1' }, { 'x-forwarded-for': '198.51.100.1' })).toEqual(['unknown_key', 'unknown_key', 'too_many_failures']);
    expect(await reasons({ remoteAddress: '10.0.0.1' }, { 'x-forwarded-for': '198.51.100.2' })).toEqual(['unknown_key', 'unknown_key', 'too_many_failures']);
  });
});

/**
 * An app in front of `keygate` (the library) that answers each admitted request with the
 * target keygate hands it (`result.url`) and its own `req.url`; a refusal as keygate renders it.
 */
async function urlEchoApp(keygate: Keygate): Promise<{ url: string; close: () => Promise<void> }> {
  const app = createServer(async (req, res) => {
    const result = await keygate.check({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, rawHeaders: req.rawHeaders });
    if (!result.allowed) {
      res.writeHead(result.error.status, result.error.headers).end(result.error.body);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url: result.url, reqUrl: req.url }));
    await result.settle(200);
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(app.address() as AddressInfo).port}`,
    close: async () => {
      app.closeAllConnections();
      await new Promise((resolve) => app.close(resolve));
    },
  };
}
