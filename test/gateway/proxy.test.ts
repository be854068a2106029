/**
 * What the upstream receives and what the client gets back: the credential removed,
 * identity headers added (and never taken from the client), hop-by-hop headers dropped,
 * bodies streamed both ways, the upstream's statuses passed through.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { createAccount, updateAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';

describe('forwarding', () => {
  const dir = tempDir('proxy');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let secret: string;
  let accountId: string;
  let keyId: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        keys: { prefix: { live: 'sk_live_', test: 'sk_test_' } },
        auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Token' }, { in: 'query', name: 'token' }] },
        errors: { envelope: 'message' },
        scopes: ['a', 'b'],
        identityHeaders: { drop: ['X-Consumer-ID', 'x-credential-identifier'] },
      },
      { dir },
    );
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    const issued = await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'test', scopes: ['a', 'b'] }, 'test');
    secret = issued.secret;
    accountId = account.id;
    keyId = issued.key.id;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  const last = () => upstream.received.at(-1)!;

  it('removes the credential header and adds identity headers', async () => {
    const response = await kg.call('/sites?x=1', { headers: { Authorization: `Token ${secret}` } });
    expect(response.status).toBe(200);
    await response.text();
    const seen = last();
    expect(seen.url).toBe('/sites?x=1');
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers['x-keygate-account']).toBe(accountId);
    expect(seen.headers['x-keygate-key']).toBe(keyId);
    expect(seen.headers['x-keygate-mode']).toBe('test');
    expect(seen.headers['x-keygate-scopes']).toBe('a b');
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
  });

  it('logs each request with an id unique across processes and the client it came from', async () => {
    const response = await kg.call('/sites?case=logged', { headers: { Authorization: `Token ${secret}` } });
    await response.text();
    const line = kg.logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).findLast((l) => l.msg === 'request' && l.target === '/sites?case=logged');
    expect(line).toMatchObject({ client: '127.0.0.1', status: 200, outcome: 'forwarded', account: accountId });
    // This process's tag, then its count: `Zq3f9A1c-1b`.
    expect(line?.reqId).toMatch(/^[\w-]{8}-[0-9a-z]+$/);
  });

  it('keeps the dashboard\'s cookies (sent by a browser signed in to it on the same host) from the upstream, and passes the others as sent', async () => {
    const send = async (cookie: string) => {
      const response = await kg.call('/sites', { headers: { Authorization: `Token ${secret}`, Cookie: cookie } });
      expect(response.status).toBe(200);
      await response.text();
      return last().headers.cookie;
    };
    expect(await send('kg_session=s3ss10n; theirs=1; kg_form=f0rm;kg_notice={"kind":"info"}; __Host-kg_session=x; other=a=b')).toBe('theirs=1; other=a=b');
    expect(await send('kg_session=s3ss10n; __Host-kg_form=f0rm')).toBeUndefined();
    expect(await send('mykg_session=1;kg_sessions=2')).toBe('mykg_session=1;kg_sessions=2');
  });

  it('removes the credential query parameter and keeps the others as sent', async () => {
    const response = await kg.call(`/sites?q=a%20b&token=${secret}&limit=5`);
    expect(response.status).toBe(200);
    await response.text();
    expect(last().url).toBe('/sites?q=a%20b&limit=5');
    expect(JSON.stringify(last())).not.toContain(secret);
  });

  it('removes the credential parameter after a `;` too (upstreams that split on `;` would read it), with the key in the header', async () => {
    const response = await kg.call(`/sites?q=1;token=${secret}&limit=5`, { headers: { Authorization: `Token ${secret}` } });
    expect(response.status).toBe(200);
    await response.text();
    expect(last().url).toBe('/sites?q=1&limit=5');
    expect(JSON.stringify(last())).not.toContain(secret);
  });

  it('passes the identity even when the client sends nearly as many headers as an upstream keeps (Node: 2,000)', async () => {
    const many: Record<string, string> = { Authorization: `Token ${secret}` };
    for (let i = 0; i < 1_995; i++) many[`x-${i}`] = '1';
    const response = await kg.call('/sites?case=many-headers', { headers: many });
    expect(response.status).toBe(200);
    await response.text();
    expect(last().url).toBe('/sites?case=many-headers');
    expect(last().headers['x-keygate-account']).toBe(accountId);
    expect(last().headers['x-keygate-scopes']).toBe('a b');
  });

  it('never passes identity headers a client made up', async () => {
    await (await kg.call('/sites', { headers: { Authorization: `Token ${secret}`, 'X-Keygate-Account': 'acc_someone_else', 'x-keygate-plan': 'enterprise' } })).text();
    expect(last().headers['x-keygate-account']).toBe(accountId);
    expect(last().headers['x-keygate-plan']).toBe('default');
  });

  it("drops a client's copy of each header identityHeaders.drop lists (an earlier gateway's), in any case or with underscores, and nothing else", async () => {
    const headers = { Authorization: `Token ${secret}`, 'x-consumer-id': 'someone-else', 'X-CREDENTIAL-IDENTIFIER': 'forged', X_Consumer_ID: 'cgi', 'X-Consumer-Username': 'kept' };
    await (await kg.call('/sites', { headers })).text();
    const seen = last().headers;
    expect([seen['x-consumer-id'], seen['x-credential-identifier'], seen.x_consumer_id]).toEqual([undefined, undefined, undefined]);
    expect(seen['x-consumer-username']).toBe('kept');
  });

  it('drops a client header that a CGI-style upstream would read as an identity or X-Forwarded header (underscores for dashes)', async () => {
    const headers = { Authorization: `Token ${secret}`, X_Keygate_Account: 'acc_someone_else', 'x-keygate_plan': 'enterprise', X_Forwarded_For: '10.9.9.9', X_Other: 'kept' };
    await (await kg.call('/sites', { headers })).text();
    const seen = Object.keys(last().headers);
    expect(seen.filter((name) => name.includes('_'))).toEqual(['x_other']);
    expect(last().headers['x-keygate-account']).toBe(accountId);
  });

  it('writes X-Forwarded-Proto and -Host itself when the client is not a trusted proxy (the client cannot claim https or another host)', async () => {
    const headers = { Authorization: `Token ${secret}`, 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'api.example.com', 'X-Forwarded-For': '203.0.113.7' };
    await (await kg.call('/sites', { headers })).text();
    const seen = last().headers;
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe(new URL(kg.gatewayUrl).host);
    expect(seen['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
  });

  it('drops every header in which the upstream could read another client, scheme, host, path or method, or its own outgoing proxy, also spelled with underscores', async () => {
    const claims = {
      Forwarded: 'for=9.9.9.9;proto=https;host=evil.example',
      'X-Real-IP': '6.6.6.6',
      'X-Forwarded-Port': '443',
      'X-Forwarded-Ssl': 'on',
      'X-Forwarded-Scheme': 'https',
      'X-Forwarded-Prefix': '/evil',
      'X-Forwarded': 'for=9.9.9.9',
      'Client-IP': '6.6.6.1',
      'True-Client-IP': '6.6.6.2',
      'X-Client-IP': '6.6.6.3',
      'X-Original-Host': 'evil.example',
      'X-Host': 'evil.example',
      'X-Original-URL': '/admin/users',
      'X-Rewrite-URL': '/admin/users',
      'X-HTTP-Method-Override': 'DELETE',
      'CF-Connecting-IP': '6.6.6.4',
      'Fastly-Client-IP': '6.6.6.5',
      'X-ProxyUser-Ip': '6.6.6.6',
      'X-Original-URI': '/admin/users',
      'X-Envoy-Original-Path': '/admin/users',
      'X-Original-Method': 'DELETE',
      'Front-End-Https': 'on',
      'X-Url-Scheme': 'https',
      X_Real_IP: '6.6.6.7',
      X_Forwarded_Port: '8443',
      X_Original_URL: '/admin',
      // A CGI-style upstream reads it as HTTP_PROXY, the proxy of its own outgoing calls (httpoxy).
      Proxy: 'http://attacker.example:8080',
    };
    await (await kg.call('/sites', { headers: { Authorization: `Token ${secret}`, 'X-Other': 'kept', ...claims } })).text();
    const seen = last().headers;
    for (const name of Object.keys(claims)) expect(seen[name.toLowerCase()], name).toBeUndefined();
    expect(seen['x-other']).toBe('kept');
  });

  it('drops hop-by-hop headers, including those the Connection header names', async () => {
    await new Promise<void>((resolve, reject) => {
      const url = new URL(`${kg.gatewayUrl}/sites`);
      const req = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          headers: { Authorization: `Token ${secret}`, Connection: 'keep-alive, X-Private', 'X-Private': 'hop', 'Proxy-Authorization': 'Basic eA==', TE: 'trailers, deflate', 'X-Kept': 'yes' },
        },
        (res) => {
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
      req.end();
    });
    const seen = last().headers;
    expect(seen['x-private']).toBeUndefined();
    expect(seen['proxy-authorization']).toBeUndefined();
    expect(seen.te).toBeUndefined();
    expect(seen['x-kept']).toBe('yes');
  });

  it('drops the upstream\'s hop-by-hop response headers, including those its Connection header names', async () => {
    const response = await kg.call('/hop', { headers: { Authorization: `Token ${secret}` } });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('hop');
    expect(response.headers.get('x-upstream-private')).toBeNull();
    expect(response.headers.get('x-kept')).toBe('yes');
  });

  /**
   * POSTs `body` to /upload with `Expect: 100-continue`, sending the body only once told
   * to continue, as curl does; says whether it was told to, and the answer.
   */
  const postAfterContinue = (authorization: string, body: string) =>
    new Promise<{ continued: boolean; status: number; text: string; headers: IncomingHttpHeaders }>((resolve, reject) => {
      const url = new URL(`${kg.gatewayUrl}/upload`);
      const req = httpRequest({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { Authorization: authorization, Expect: '100-continue', 'content-type': 'text/plain', 'content-length': body.length },
      });
      let continued = false;
      req.on('continue', () => {
        continued = true;
        req.end(body);
      });
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ continued, status: res.statusCode ?? 0, text, headers: res.headers }));
      });
      req.on('error', reject);
    });

  it('forwards a body sent after Expect: 100-continue (as curl does for bodies over 1 KB)', async () => {
    const body = 'y'.repeat(4096);
    const answer = await postAfterContinue(`Token ${secret}`, body);
    expect(answer.status).toBe(200);
    expect(last().body).toBe(body);
    expect(last().headers.expect).toBeUndefined();
  });

  it('answers a refused Expect: 100-continue request without asking for its body, and ends the connection', async () => {
    const answer = await postAfterContinue('Token wrong', 'z'.repeat(4096));
    // (Node closes a connection whose client was not told to continue.)
    expect({ continued: answer.continued, status: answer.status, connection: answer.headers.connection }).toEqual({ continued: false, status: 401, connection: 'close' });
  });

  it('streams a 5 MB request body to the upstream intact', async () => {
    const body = 'x'.repeat(5 * 1024 * 1024);
    const response = await kg.call('/upload', { method: 'POST', body, headers: { Authorization: `Token ${secret}`, 'content-type': 'application/octet-stream' } });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { body: string }).body.length).toBe(body.length);
    expect(last().body.length).toBe(body.length);
  });

  it('passes JSON bodies through untouched, even invalid JSON (the upstream judges it)', async () => {
    const body = '{"url": "http://example.com", "title": "example1"';
    const response = await kg.call('/sites', { method: 'POST', body, headers: { Authorization: `Token ${secret}`, 'content-type': 'application/json' } });
    expect(((await response.json()) as { body: string }).body).toBe(body);
  });

  /** A request fetch cannot send (a GET with a body, a transfer coding of its own), over node:http. */
  const send = (method: string, path: string, body: string, headers: Record<string, string>) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`${kg.gatewayUrl}${path}`, { method, headers: { Authorization: `Token ${secret}`, ...headers } }, (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });

  it('passes a GET body on (a search API may take its query so), with its length', async () => {
    const body = '{"query":{"match":{"title":"seo"}}}';
    const answer = await send('GET', '/search', body, { 'content-type': 'application/json', 'content-length': String(body.length) });
    expect(answer.status).toBe(200);
    expect(last()).toMatchObject({ method: 'GET', body });
    expect(last().headers['content-length']).toBe(String(body.length));
  });

  it('refuses a body in a transfer coding other than chunked (501 in the envelope), which would reach the upstream unlabelled', async () => {
    const before = upstream.received.length;
    // (node:http frames the body in chunks itself: the header names chunked.)
    const answer = await send('POST', '/upload', 'gzip bytes', { 'transfer-encoding': 'gzip, chunked' });
    expect(answer.status).toBe(501);
    expect(JSON.parse(answer.body)).toEqual({ message: 'Only "Transfer-Encoding: chunked" is supported.' });
    expect(upstream.received.length).toBe(before);
    // Plain chunked bodies go through.
    const chunked = await send('POST', '/upload', 'hello', { 'transfer-encoding': 'chunked' });
    expect(chunked.status).toBe(200);
    expect(last().body).toBe('hello');
  });

  it("passes an event stream's head on at once, before its first event", async () => {
    const answer = kg.call('/events-held?id=sse', { headers: { Authorization: `Token ${secret}` } });
    const headFirst = await Promise.race([answer.then((r) => r), new Promise<'no head'>((resolve) => setTimeout(() => resolve('no head'), 5_000))]);
    expect(headFirst).not.toBe('no head');
    const response = headFirst as Response;
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    upstream.release('sse');
    expect(await response.text()).toBe('data: 1\n\n');
  });

  it('knows an event stream by its media type in any case, and nothing else for one', async () => {
    const headBy = async (id: string, type: string, ms: number) => {
      const answer = kg.call(`/events-held?id=${id}&type=${encodeURIComponent(type)}`, { headers: { Authorization: `Token ${secret}` } });
      try {
        return await Promise.race([answer, new Promise<'no head'>((resolve) => setTimeout(() => resolve('no head'), ms))]);
      } finally {
        upstream.release(id);
        await answer.then((r) => r.text()).catch(() => undefined);
      }
    };
    const type = 'Text/Event-Stream';
    const head = await headBy('sse-case', type, 5_000);
    expect(head).not.toBe('no head');
    expect((head as Response).headers.get('content-type')).toBe(type);
    // Another media type's head waits for its body, as every answer's does (a 502 is still possible until then).
    expect(await headBy('sse-not', 'text/event-streamx', 500)).toBe('no head');
  });

  it('streams the response as the upstream sends it', async () => {
    const response = await kg.call('/stream?chunks=5', { headers: { Authorization: `Token ${secret}` } });
    expect(await response.text()).toBe('chunk 1\nchunk 2\nchunk 3\nchunk 4\nchunk 5\n');
  });

  it('streams a 40 MB answer to a slow reader intact', async () => {
    const received = await new Promise<{ status: number; bytes: number; sample: string }>((resolve, reject) => {
      const url = new URL(`${kg.gatewayUrl}/big?mb=40`);
      const req = httpRequest({ host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, headers: { Authorization: `Token ${secret}` } }, (res) => {
        let bytes = 0;
        let sample = '';
        res.on('data', (chunk: Buffer) => {
          if (sample === '') sample = chunk.subarray(0, 36).toString('latin1');
          bytes += chunk.length;
          // A slow reader: the gateway has to pause the upstream and resume it many times.
          res.pause();
          setTimeout(() => res.resume(), 1);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, sample }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    expect(received).toEqual({ status: 200, bytes: 40 * 1024 * 1024, sample: 'abcdefghijklmnopqrstuvwxyz0123456789' });
  });

  it('passes every Set-Cookie header of the answer', async () => {
    const response = await kg.call('/cookies', { headers: { Authorization: `Token ${secret}` } });
    expect(await response.text()).toBe('cookies');
    expect(response.headers.getSetCookie()).toEqual(['a=1; Path=/', 'b=2; Path=/']);
  });

  it('answers HEAD with the upstream\'s headers and no body', async () => {
    const response = await kg.call('/big?mb=1', { method: 'HEAD', headers: { Authorization: `Token ${secret}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-length')).toBe(String(1024 * 1024));
    expect(await response.text()).toBe('');
  });

  it('passes the upstream\'s own errors through unchanged', async () => {
    const response = await kg.call('/status/404', { headers: { Authorization: `Token ${secret}` } });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ status: 404 });
  });

  it('passes the upstream\'s reason phrase, also of a status of the API\'s own', async () => {
    const own = await kg.call('/status/244?reason=Unavailable%20for%20huge%20websites', { headers: { Authorization: `Token ${secret}` } });
    expect([own.status, own.statusText]).toEqual([244, 'Unavailable for huge websites']);
    await own.text();
    const usual = await kg.call('/status/404?reason=No%20such%20site', { headers: { Authorization: `Token ${secret}` } });
    expect([usual.status, usual.statusText]).toEqual([404, 'No such site']);
    await usual.text();
    // One Node would refuse to send (a Latin-1 byte, read as UTF-8) gives way to Node's own: the answer still arrives.
    const latin = await kg.call('/status/200?reason=N%C3%A3o%20em%20cache', { headers: { Authorization: `Token ${secret}` } });
    expect([latin.status, latin.statusText]).toEqual([200, 'OK']);
    expect(await latin.json()).toEqual({ status: 200 });
  });
});

describe('copies of a credential query parameter under another spelling', () => {
  const dir = tempDir('proxy-look-alikes');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let secret: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        keys: { prefix: { live: 'sk_live_', test: 'sk_test_' } },
        auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Token' }, { in: 'query', name: 'api_key' }] },
        errors: { envelope: 'message' },
      },
      { dir },
    );
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    secret = (await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test')).secret;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  /**
   * Names a PHP upstream reads as `api_key` (`.` and spaces as `_`, `[…]` an array of it, an
   * unclosed `[` as `_`, leading spaces and all after a NUL dropped; percent-decoded, `+` a
   * space, an escape that is none kept), or ASP.NET Core reads so (any case).
   */
  const LOOK_ALIKES = ['api.key', 'api+key', 'api%20key', 'api%2Ekey', 'api_key[]', 'api_key[0]', 'api_key%5B%5D', 'api_key[a][b]', 'API_KEY', 'Api.Key[]', '%20api_key', 'api[key', 'api_key%00x', 'api%5Fkey[%zz]'];
  /** Names that are other parameters, to every reading (PHP reads `api_key.` as `api_key_`, and drops `[api_key]`). */
  const OTHERS = ['api-key', 'apikey', 'api_keys', 'api_key.', 'api_key]', 'xapi_key', '[api_key]'];

  it('are removed before forwarding, with the real one, and the access log redacts them', async () => {
    // Credential-shaped values the gateway never checks: keys of this format nobody issued.
    const other = () => kg.runtime.keyFormat.generate('test');
    const copies = LOOK_ALIKES.map((name) => `${name}=${other()}`);
    const kept = OTHERS.map((name, i) => `${name}=${i}`);
    const target = `/sites?q=1&api_key=${secret}&${copies.join('&')}&${kept.join('&')}&limit=5`;
    const response = await kg.call(target);
    expect(response.status).toBe(200);
    await response.text();
    expect(upstream.received.at(-1)?.url).toBe(`/sites?q=1&${kept.join('&')}&limit=5`);
    const logged = kg.logs.lines.map((line) => JSON.parse(line) as { msg: string; target?: string }).filter((line) => line.msg === 'request').at(-1);
    // The others go to the upstream as sent; named like a secret (`api-key`, `apikey`), their values are not logged either.
    expect(logged?.target).toBe(`/sites?q=1&api_key=[REDACTED]&${[...LOOK_ALIKES, ...OTHERS].map((name) => `${name}=[REDACTED]`).join('&')}&limit=5`);
  });

  it('are removed also when the key comes in the header, and after a `;`', async () => {
    const response = await kg.call(`/sites?q=1;API.KEY=${kg.runtime.keyFormat.generate('test')}&api_key[]=x&limit=5`, { headers: { Authorization: `Token ${secret}` } });
    expect(response.status).toBe(200);
    await response.text();
    expect(upstream.received.at(-1)?.url).toBe('/sites?q=1&limit=5');
  });

  it('never authenticate: only the configured name is read', async () => {
    const before = upstream.received.length;
    for (const name of LOOK_ALIKES) {
      const response = await kg.call(`/sites?${name}=${secret}`);
      expect(response.status, name).toBe(401);
      expect(await response.json(), name).toEqual({ message: 'Missing API key.' });
    }
    expect(upstream.received.length).toBe(before);
    // `api%5Fkey` is no look-alike but the name itself (`_` is unreserved: RFC 3986 §2.3): it is read, and beside `api_key` it is the key sent twice.
    const encoded = await kg.call(`/sites?api%5Fkey=${secret}`);
    expect(encoded.status).toBe(200);
    await encoded.text();
    expect(upstream.received.at(-1)?.url).toBe('/sites');
    const twice = await kg.call(`/sites?api_key=${secret}&api%5Fkey=${secret}`);
    expect([twice.status, await twice.json()]).toEqual([401, { message: 'Invalid API key.' }]);
  });
});

describe('keys in query parameters keygate does not read', () => {
  const dir = tempDir('proxy-unread-keys');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let secret: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    // Keys are read from `Authorization: Bearer` only (the default).
    kg = await startKeygate({ upstream: { url: upstream.url }, keys: { prefix: { live: 'sk_live_', test: 'sk_test_' } }, errors: { envelope: 'message' } }, { dir });
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    secret = (await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'live' }, 'test')).secret;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  /** The URL the upstream echoes back for `target`, sent with the key in the header. */
  const echoed = async (target: string): Promise<string> => {
    const response = await kg.call(target, { headers: { Authorization: `Bearer ${secret}` } });
    expect(response.status).toBe(200);
    return ((await response.json()) as { url: string }).url;
  };

  it('are removed before forwarding: the caller\'s own key, any other key of the profile in either mode, encoded or not; the other parameters go byte for byte', async () => {
    const live = kg.runtime.keyFormat.generate('live');
    const test = kg.runtime.keyFormat.generate('test');
    const escaped = test.replaceAll('_', '%5F');
    const target = `/v1/x?api_key=${secret}&page=2&token=${live}&q=a%20b+c&&ref=${escaped}&x=%E9;k=${secret}&${live}&pad=%20${test}%0A&flag&limit=5`;
    expect(await echoed(target)).toBe('/v1/x?page=2&q=a%20b+c&&x=%E9&flag&limit=5');
    expect(upstream.received.at(-1)?.url).toBe('/v1/x?page=2&q=a%20b+c&&x=%E9&flag&limit=5');
    // A target that held nothing but a key loses its `?`.
    expect(await echoed(`/v1/x?api_key=${secret}`)).toBe('/v1/x');
    // The access log still masks what the client sent, as before.
    const logged = kg.logs.lines.map((line) => JSON.parse(line) as { msg: string; target?: string }).filter((line) => line.msg === 'request').at(-1);
    expect(logged?.target).toBe('/v1/x?api_key=[REDACTED]');
  });

  it('are removed also inside a longer value (`Bearer <key>`, `key:<key>`, `<key>,abc`), encoded or not, and in a name; the other parameters go byte for byte', async () => {
    const other = kg.runtime.keyFormat.generate('test');
    const target = `/v1/x?q=Bearer%20${secret}&page=2&filter=key:${secret}&x=${other},abc&y=Bearer+${secret.replaceAll('_', '%5F')}&about=sk_live_docs+here&z=%22${other}%22;w=1&k${secret}=1&s=a%20b+c&t=%E9`;
    expect(await echoed(target)).toBe('/v1/x?page=2&about=sk_live_docs+here&w=1&s=a%20b+c&t=%E9');
    expect(upstream.received.at(-1)?.url).toBe('/v1/x?page=2&about=sk_live_docs+here&w=1&s=a%20b+c&t=%E9');
    expect(JSON.stringify(upstream.received)).not.toContain(secret.slice('sk_live_'.length));
  });

  it('are removed also without their prefix (`?token=<the rest>`: the prefix is public, the rest the whole secret), found by their checksum', async () => {
    const body = secret.slice('sk_live_'.length);
    const otherBody = kg.runtime.keyFormat.generate('test').slice('sk_test_'.length);
    const target = `/v1/x?token=${body}&page=2&q=Bearer%20${body}&ids=${otherBody},abc&f=key:${body}&n=sk-live-${body}&s=a%20b+c`;
    expect(await echoed(target)).toBe('/v1/x?page=2&s=a%20b+c');
    expect(upstream.received.at(-1)?.url).toBe('/v1/x?page=2&s=a%20b+c');
    expect(JSON.stringify(upstream.received)).not.toContain(body);
    expect(JSON.stringify(upstream.received)).not.toContain(otherBody);
    // A run as long whose checksum fails is no key: it goes as sent.
    const notKey = `${body.slice(0, 29)}${body[29] === 'a' ? 'b' : 'a'}`;
    expect(await echoed(`/v1/x?token=${notKey}&page=2`)).toBe(`/v1/x?token=${notKey}&page=2`);
  });

  it('keeps a value that merely begins like a key: the prefix alone, a word after it, a key-long run whose checksum fails', async () => {
    const target = `/v1/x?a=sk_live_&b=sk_live_docs&c=sk_test_${'a'.repeat(30)}&d=SK_LIVE_x&e=1`;
    expect(await echoed(target)).toBe(target);
  });
});

// What is forwarded of the query and of the headers, with bare hex keys: one profile, so one keygate for both.
describe('with bare hex keys', () => {
  const dir = tempDir('proxy-hex-keys');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let secret: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate({ upstream: { url: upstream.url }, keys: { format: 'hex', hexLength: 40 }, errors: { envelope: 'message' } }, { dir });
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    secret = (await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test')).secret;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  describe('keys in query parameters keygate does not read', () => {
    it("removes the caller's own key; another run of 40 hex digits (a SHA-1, or a key nobody can tell from one) goes as sent", async () => {
      const sha1 = 'da39a3ee5e6b4b0d3255bfef95601890afd80709';
      const response = await kg.call(`/v1/x?commit=${sha1}&api_key=${secret}&page=2&k=%20${secret}`, { headers: { Authorization: `Bearer ${secret}` } });
      expect(response.status).toBe(200);
      expect(((await response.json()) as { url: string }).url).toBe(`/v1/x?commit=${sha1}&page=2`);
    });

    it("removes the caller's own key inside a longer value too; another hex run inside one goes as sent", async () => {
      const sha1 = 'da39a3ee5e6b4b0d3255bfef95601890afd80709';
      const response = await kg.call(`/v1/x?q=Bearer%20${secret}&commit=sha:${sha1}&f=key:${secret}&x=${secret},abc&page=2`, { headers: { Authorization: `Bearer ${secret}` } });
      expect(response.status).toBe(200);
      expect(((await response.json()) as { url: string }).url).toBe(`/v1/x?commit=sha:${sha1}&page=2`);
      expect(JSON.stringify(upstream.received)).not.toContain(secret);
    });
  });

  describe('keys in request headers keygate does not read', () => {
    // Its leak check reads what this describe sent alone, as it did with an upstream of its own.
    beforeAll(() => {
      upstream.received.length = 0;
    });

    it("drops a header holding the caller's own key; another run of 40 hex digits (a SHA-1) goes as sent", async () => {
      const sha1 = 'da39a3ee5e6b4b0d3255bfef95601890afd80709';
      const seen = await sentThrough(kg.gatewayUrl, upstream, '/v1/echo', {
        Authorization: `Bearer ${secret}`,
        Cookie: `s=${secret}`,
        Referer: `http://x/?k=%20${secret}`,
        'X-Api-Key': secret,
        'If-None-Match': `"${sha1}"`,
        'X-Commit': `sha:${sha1}`,
      });
      expect([seen.cookie, seen.referer, seen['x-api-key'], seen['if-none-match'], seen['x-commit']]).toEqual([undefined, undefined, undefined, `"${sha1}"`, `sha:${sha1}`]);
      expect(JSON.stringify(upstream.received)).not.toContain(secret);
    });
  });
});

/** What the upstream received for one request sent to `gatewayUrl` over node:http (which, unlike fetch, sends any Host and Cookie). */
async function sentThrough(gatewayUrl: string, upstream: TestUpstream, path: string, headers: Record<string, string>): Promise<IncomingHttpHeaders> {
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest(`${gatewayUrl}${path}`, { headers }, (res) => {
      expect(res.statusCode).toBe(200);
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end();
  });
  return upstream.received.at(-1)!.headers;
}

describe('keys in request headers keygate does not read', () => {
  const dir = tempDir('proxy-header-keys');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let secret: string;
  let othersKey: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate({ upstream: { url: upstream.url }, keys: { prefix: { live: 'sk_live_', test: 'sk_test_' } }, errors: { envelope: 'message' } }, { dir });
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    secret = (await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'live' }, 'test')).secret;
    const other = await createAccount(kg.runtime, { name: 'Globex' }, 'test');
    othersKey = (await createKey(kg.runtime, { accountId: other.id, name: 'k', mode: 'test' }, 'test')).secret;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  const send = (headers: Record<string, string>) => sentThrough(kg.gatewayUrl, upstream, '/v1/echo', { Authorization: `Bearer ${secret}`, ...headers });

  it("are not forwarded: a Cookie, Referer or custom header holding the caller's key, another account's, or one percent-encoded, and no X-Forwarded-For or -Host made from one", async () => {
    const seen = await send({
      Cookie: `s=${secret}; theme=dark`,
      Referer: `http://x/?k=${secret}`,
      'X-Api-Key': othersKey,
      'X-Trace': `key%3A${secret.replaceAll('_', '%5F')}`,
      'X-Twice': `k=${othersKey.replaceAll('_', '%255F')}`,
      'X-Forwarded-For': secret,
      'X-Kept': 'yes',
    });
    expect([seen.cookie, seen.referer, seen['x-api-key'], seen['x-trace'], seen['x-twice'], seen['x-kept']]).toEqual([undefined, undefined, undefined, undefined, undefined, 'yes']);
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    const viaHost = await send({ Host: `${secret}.example` });
    expect(viaHost['x-forwarded-host']).toBeUndefined();
    const body = secret.slice('sk_live_'.length);
    expect(JSON.stringify(upstream.received)).not.toContain(body);
    expect(JSON.stringify(upstream.received)).not.toContain(othersKey.slice('sk_test_'.length));
  });

  it("are not forwarded as a header's name either, in any case (fetch and HTTP/2 send names lower-cased), as sent or percent-encoded; other names with a prefix alone go", async () => {
    const seen = await send({
      [`X-${secret}`]: '1',
      [othersKey.toLowerCase()]: 'yes',
      [`X-Trace-${secret.replaceAll('_', '%5F')}`]: '2',
      'X-sk_live_docs': 'kept',
      'X-Kept': 'yes',
    });
    const named = Object.keys(seen).filter((name) => !name.startsWith('x-keygate-') && (name.startsWith('x-') || name.startsWith('sk_')));
    expect(named).toEqual(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-sk_live_docs', 'x-kept']);
    const received = JSON.stringify(upstream.received).toLowerCase();
    expect(received).not.toContain(secret.slice('sk_live_'.length).toLowerCase());
    expect(received).not.toContain(othersKey.slice('sk_test_'.length).toLowerCase());
  });

  it('passes every other header byte for byte: the prefix alone, a word after it, escapes, a key-long run whose checksum fails', async () => {
    const ordinary = {
      Cookie: 'theme=dark; q=a%20b; note=sk_live_docs',
      Referer: 'http://x/docs?q=sk_live_&page=2%20',
      'X-Note': `about sk_test_${'a'.repeat(30)} and SK_LIVE_x`,
      'User-Agent': 'curl/8.5.0',
      'X-Forwarded-For': '203.0.113.7',
    };
    const seen = await send(ordinary);
    expect([seen.cookie, seen.referer, seen['x-note'], seen['user-agent']]).toEqual([ordinary.Cookie, ordinary.Referer, ordinary['X-Note'], ordinary['User-Agent']]);
    expect(seen['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
    expect(seen['x-forwarded-host']).toBe(new URL(kg.gatewayUrl).host);
  });
});

describe('behind a trusted load balancer (trustedProxies)', () => {
  const dir = tempDir('proxy-trusted');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let secret: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    // The test client connects from 127.0.0.1: it plays the load balancer.
    kg = await startKeygate({ upstream: { url: upstream.url }, trustedProxies: ['10.0.0.0/8', '127.0.0.0/8'] }, { dir });
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    secret = (await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'live', scopes: [] }, 'test')).secret;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  const last = () => upstream.received.at(-1)!;

  it('passes on the scheme and host the load balancer says the client used, and appends its address', async () => {
    const headers = { Authorization: `Bearer ${secret}`, 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'api.example.com', 'X-Forwarded-For': '203.0.113.7' };
    const response = await kg.call('/sites', { headers });
    expect(response.status).toBe(200);
    await response.text();
    const seen = last().headers;
    expect(seen['x-forwarded-proto']).toBe('https');
    expect(seen['x-forwarded-host']).toBe('api.example.com');
    expect(seen['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
  });

  it('passes on its X-Forwarded-Port, but no header it may have let through from the client (Forwarded, X-Real-IP, X-Original-URL, ...)', async () => {
    const claims = { 'X-Forwarded-Port': '443', Forwarded: 'for=6.6.6.6;host=evil.example', 'X-Real-IP': '6.6.6.6', 'X-Forwarded-Prefix': '/evil', 'X-Original-URL': '/admin' };
    await (await kg.call('/sites', { headers: { Authorization: `Bearer ${secret}`, ...claims } })).text();
    const seen = last().headers;
    expect(seen['x-forwarded-port']).toBe('443');
    for (const name of ['forwarded', 'x-real-ip', 'x-forwarded-prefix', 'x-original-url']) expect(seen[name], name).toBeUndefined();
  });

  it("does not pass on a scheme, host or port no load balancer would set (a client's, let through): keygate's own stand in", async () => {
    for (const [proto, host, port] of [['javascript', 'evil.example/path', '443x'], ['https, http', 'a.example b.example', '99999999'], ['', `${'h'.repeat(300)}.example`, '-1']] as [string, string, string][]) {
      const headers = { Authorization: `Bearer ${secret}`, 'X-Forwarded-Proto': proto, 'X-Forwarded-Host': host, 'X-Forwarded-Port': port };
      const response = await kg.call('/sites', { headers });
      expect(response.status).toBe(200);
      await response.text();
      const seen = last().headers;
      expect(seen['x-forwarded-proto'], proto).toBe('http');
      expect(seen['x-forwarded-host'], host).toBe(new URL(kg.gatewayUrl).host);
      expect(seen['x-forwarded-port'], port).toBeUndefined();
    }
  });

  it('keeps the Host a load balancer sent with an absolute-form target (the one it checked), not the target\'s host', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const url = new URL(kg.gatewayUrl);
      const req = httpRequest({ host: url.hostname, port: url.port, path: 'http://evil.example/sites', headers: { Host: 'api.example.com', Authorization: `Bearer ${secret}` } });
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(200);
    expect(last()).toMatchObject({ url: '/sites', headers: { 'x-forwarded-host': 'api.example.com' } });
  });

  it('writes its own where the load balancer sent none', async () => {
    await (await kg.call('/sites', { headers: { Authorization: `Bearer ${secret}` } })).text();
    const seen = last().headers;
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe(new URL(kg.gatewayUrl).host);
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
  });
});

describe('clients that hang up mid-answer', () => {
  const dir = tempDir('proxy-hang-up');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let authorization: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    // Two upstream connections: two answers that never give theirs back would starve every later request.
    // Both for the one account (the default is half): its next request may come before the
    // one it hung up on has given its place back.
    kg = await startKeygate({ upstream: { url: upstream.url, connections: 2, maxInFlightPerAccount: 2 } }, { dir });
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    const issued = await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'live', scopes: [] }, 'test');
    authorization = `Bearer ${issued.secret}`;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('gives the upstream connection back each time, so later requests are still answered', async () => {
    for (let i = 0; i < 6; i++) {
      const client = new AbortController();
      // 100 chunks, 20 ms apart: the client leaves after the first, two seconds before the end.
      const response = await kg.call(`/stream?chunks=100&i=${i}`, { headers: { authorization }, signal: AbortSignal.any([client.signal, AbortSignal.timeout(5_000)]) });
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toMatch(/^chunk 1\n/);
      client.abort();
      await reader.read().catch(() => undefined);
    }
    // Had any of them kept its upstream connection, a later call would wait forever (5 s here).
    const response = await kg.call('/sites', { headers: { authorization }, signal: AbortSignal.timeout(5_000) });
    expect(response.status).toBe(200);
    await response.text();
    // The upstream saw each of them go before its answer was done.
    await expect.poll(() => upstream.abandoned.filter((r) => r.url.startsWith('/stream')).length).toBe(6);
  });
});

describe('the scopes the upstream is told of', () => {
  const dir = tempDir('proxy-scopes');
  let upstream: TestUpstream;
  let kg: TestKeygate;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate({ upstream: { url: upstream.url }, scopes: ['read', 'admin'], plans: { full: {}, reader: { scopes: ['read'] } } }, { dir });
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('are the key\'s within what its plan allows now: a move to a plan with fewer scopes narrows keys made before', async () => {
    const account = await createAccount(kg.runtime, { name: 'Acme', planId: 'full' }, 'test');
    const both = (await createKey(kg.runtime, { accountId: account.id, name: 'both', scopes: ['read', 'admin'] }, 'test')).secret;
    const every = (await createKey(kg.runtime, { accountId: account.id, name: 'every', scopes: ['*'] }, 'test')).secret;
    const adminOnly = (await createKey(kg.runtime, { accountId: account.id, name: 'admin', scopes: ['admin'] }, 'test')).secret;
    const scopesSeen = async (secret: string) => {
      const response = await kg.call('/v1/x', { headers: { authorization: `Bearer ${secret}` } });
      await response.text();
      return response.status === 200 ? upstream.received.at(-1)?.headers['x-keygate-scopes'] : `refused ${response.status}`;
    };
    expect([await scopesSeen(both), await scopesSeen(every), await scopesSeen(adminOnly)]).toEqual(['read admin', '*', 'admin']);

    await updateAccount(kg.runtime, account.id, { planId: 'reader' }, 'test');
    // `admin` is no longer the plan's: not passed on as if the key still held it.
    expect([await scopesSeen(both), await scopesSeen(every), await scopesSeen(adminOnly)]).toEqual(['read', 'read', '']);
  });
});
