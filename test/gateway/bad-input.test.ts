/**
 * Odd and hostile input gets the API's own error, never a 500, a crash or a hang:
 * empty and oversized headers, non-ASCII bytes, wrong checksums, huge keys, bytes that
 * are not HTTP. Requests go over raw sockets where fetch would refuse to send them.
 */
import { STATUS_CODES } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { rawAll } from '../support/raw-http.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';
import type { ConfigInput } from '../../src/config/schema.js';

const RANKTRACKER_401 = { errors: [{ code: 'unauthorized', status: 401, detail: 'Invalid or missing API key.' }] };

/** Sends raw bytes and returns the status line, headers and body of the answer. */
function raw(url: string, bytes: Buffer | string): Promise<{ status: number; headers: string; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const chunks: Buffer[] = [];
    socket.setTimeout(5_000, () => reject(new Error('no answer within 5 s')));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const [head = '', ...rest] = text.split('\r\n\r\n');
      resolve({ status: Number(head.split(' ')[1]), headers: head, body: rest.join('\r\n\r\n') });
    });
    socket.write(bytes);
  });
}

/**
 * Sends a request in pieces, each written once the one before has gone out and a moment
 * has passed (so that the server reads each on its own; together, they would be one read,
 * which the test would pass anyway), and returns the status and body of the answer. Pieces
 * left when the server has answered and closed are not sent.
 */
function rawInPieces(url: string, pieces: string[]): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.setNoDelay(true);
    const chunks: Buffer[] = [];
    let closed = false;
    socket.setTimeout(10_000, () => reject(new Error('no answer within 10 s')));
    socket.on('data', (c: Buffer) => chunks.push(c));
    // Writing after the server closed (it answered early) fails: the answer is what counts.
    socket.on('error', () => {});
    socket.on('close', () => {
      closed = true;
      const text = Buffer.concat(chunks).toString('latin1');
      if (text === '') reject(new Error('closed without an answer'));
      resolve({ status: Number(text.slice(9, 12)), body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    void (async () => {
      for (const piece of pieces) {
        if (closed || chunks.length > 0) return;
        await new Promise((written) => socket.write(piece, written));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
  });
}

/** A test upstream, a keygate in front of it with `profile`, and one key of an account. */
async function startWithKey(dir: string, profile: Omit<ConfigInput, 'upstream'>): Promise<{ upstream: TestUpstream; kg: TestKeygate; secret: string }> {
  const upstream = await startTestUpstream();
  const kg = await startKeygate({ upstream: { url: upstream.url }, ...profile }, { dir });
  const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
  const secret = (await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test')).secret;
  return { upstream, kg, secret };
}

describe('bad input at the gateway', () => {
  const dir = tempDir('bad-input');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let secret: string;

  beforeAll(async () => {
    ({ upstream, kg, secret } = await startWithKey(dir, {
      basePath: '/v1',
      keys: { prefix: { live: 'tkn_usr_' } },
      auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'none' }] },
      errors: {
        envelope: 'jsonapi',
        reasons: {
          missing_key: { code: 'unauthorized', message: 'Invalid or missing API key.' },
          malformed_key: { code: 'unauthorized', message: 'Invalid or missing API key.' },
          unknown_key: { code: 'unauthorized', message: 'Invalid or missing API key.' },
        },
      },
    }));
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  const get = (authorization: string | Buffer) =>
    raw(kg.gatewayUrl, Buffer.concat([Buffer.from('GET /v1/domains HTTP/1.1\r\nHost: x\r\nAuthorization: '), Buffer.from(authorization), Buffer.from('\r\nConnection: close\r\n\r\n')]));

  it('an empty Authorization header is a missing key', async () => {
    const r = await get('');
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body)).toEqual(RANKTRACKER_401);
  });

  it('a 10 KB header value is refused as a bad key, in the envelope', async () => {
    const r = await get('tkn_usr_' + 'a'.repeat(10 * 1024));
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body)).toEqual(RANKTRACKER_401);
  });

  it('headers over 16 KB get a 431 in the envelope, not Node\'s bare answer', async () => {
    const r = await get('a'.repeat(20 * 1024));
    expect(r.status).toBe(431);
    expect(JSON.parse(r.body)).toEqual({ errors: [{ code: 'headers_too_large', status: 431, detail: 'Request headers are too large.' }] });
  });

  it('a URL over the head limit (a 20 KB query string) gets 414 URI Too Long in the envelope, not 431, and never the key back', async () => {
    const longUrl = `GET /v1/domains?q=${'a'.repeat(20 * 1024)} HTTP/1.1\r\nHost: x\r\nAuthorization: ${secret}\r\nConnection: close\r\n\r\n`;
    const r = await raw(kg.gatewayUrl, longUrl);
    expect(r.status).toBe(414);
    expect(JSON.parse(r.body)).toEqual({ errors: [{ code: 'uri_too_long', status: 414, detail: 'The request URL is too long.' }] });
    expect(r.headers + r.body).not.toContain(secret);
    // Behind an answered request on the same connection too: the long one's line starts after the first's head.
    const both = await rawAll(kg.gatewayUrl, `GET /v1/domains HTTP/1.1\r\nHost: x\r\nAuthorization: ${secret}\r\n\r\n${longUrl}`);
    expect([...both.matchAll(/^HTTP\/1\.1 (\d+) /gm)].map((m) => Number(m[1]))).toEqual([200, 414]);
    expect(both).not.toContain(secret);
  });

  it('a URL over the head limit split across reads gets 414 in the envelope however it is split, and a header value over it 431', async () => {
    const URI_TOO_LONG = { errors: [{ code: 'uri_too_long', status: 414, detail: 'The request URL is too long.' }] };
    const TOO_LARGE = { errors: [{ code: 'headers_too_large', status: 431, detail: 'Request headers are too large.' }] };
    const a = (n: number) => 'a'.repeat(n);
    const rest = `Host: x\r\nAuthorization: ${secret}\r\nConnection: close\r\n\r\n`;
    const splits: [string, string[], number, unknown][] = [
      // The URL goes over the limit in the read where it ends.
      ['URL: in two reads', [`GET /v1/domains?q=${a(10_000)}`, `${a(10_000)} HTTP/1.1\r\n${rest}`], 414, URI_TOO_LONG],
      // Over the limit in a read that ends inside it: the next read ends it.
      ['URL: in three reads', [`GET /v1/domains?q=${a(10_000)}`, a(10_000), `${a(100)} HTTP/1.1\r\n${rest}`], 414, URI_TOO_LONG],
      ['URL: the version in a read of its own', [`GET /v1/domains?q=${a(10_000)}`, `${a(10_000)} HT`, `TP/1.1\r\n${rest}`], 414, URI_TOO_LONG],
      ['header: in two reads', [`GET /v1/domains HTTP/1.1\r\nX-Pad: ${a(10_000)}`, `${a(10_000)}\r\n${rest}`], 431, TOO_LARGE],
      ['header: in three reads', [`GET /v1/domains HTTP/1.1\r\nX-Pad: ${a(10_000)}`, a(10_000), `${a(100)}\r\n${rest}`], 431, TOO_LARGE],
      // A space inside a header value is no URL's end.
      ['header with spaces: in three reads', [`GET /v1/domains HTTP/1.1\r\nX-Pad: ${a(10_000)}`, a(10_000), `b c d\r\n${rest}`], 431, TOO_LARGE],
    ];
    for (const [name, pieces, status, body] of splits) {
      const r = await rawInPieces(kg.gatewayUrl, pieces);
      expect({ name, status: r.status, body: JSON.parse(r.body) as unknown }).toEqual({ name, status, body });
      expect(r.body).not.toContain(secret);
    }
  });

  it('reads a key sent after a thousand other header lines (Node would drop every line after its thousandth or so)', async () => {
    const filler = Array.from({ length: 1_200 }, (_, i) => `X-${i}: 1\r\n`).join('');
    const r = await raw(kg.gatewayUrl, `GET /v1/domains HTTP/1.1\r\nHost: x\r\n${filler}Authorization: ${secret}\r\nConnection: close\r\n\r\n`);
    expect(r.status).toBe(200);
    // The upstream (Node) keeps only its first thousand or so; keygate's identity comes first.
    expect(upstream.received.at(-1)?.headers['x-keygate-key']).toMatch(/^key_/);
  });

  /** A request with a valid key whose head (request line and headers) is `bytes` long, padded by one header. */
  const headOf = (bytes: number) => {
    const start = `GET /v1/domains HTTP/1.1\r\nHost: x\r\nAuthorization: ${secret}\r\nConnection: close\r\nX-Pad: `;
    const pad = 'p'.repeat(bytes - start.length - 4);
    return { request: `${start}${pad}\r\n\r\n`, pad };
  };

  it('a head between 15 and 16 KB gets keygate\'s 431 in the envelope, not the upstream\'s bare one after keygate added its headers', async () => {
    const { request } = headOf(16 * 1024 - 100);
    expect(request.length).toBe(16 * 1024 - 100);
    const r = await raw(kg.gatewayUrl, request);
    expect(r.status).toBe(431);
    expect(JSON.parse(r.body)).toEqual({ errors: [{ code: 'headers_too_large', status: 431, detail: 'Request headers are too large.' }] });
  });

  it('a head just under 15 KB reaches a Node upstream (16 KB limit) with the identity and X-Forwarded headers added', async () => {
    const { request, pad } = headOf(15 * 1024 - 10);
    const r = await raw(kg.gatewayUrl, request);
    expect(r.status).toBe(200);
    const seen = upstream.received.at(-1)!;
    expect(seen.headers['x-pad']).toBe(pad);
    expect(seen.headers['x-keygate-account']).toMatch(/^acc_/);
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
  });

  it('non-ASCII bytes in the key are a bad key', async () => {
    const r = await get(Buffer.from(`${secret.slice(0, -2)}é`, 'utf8'));
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body)).toEqual(RANKTRACKER_401);
  });

  it('a key with one wrong checksum character is a bad key', async () => {
    const typo = secret.slice(0, -1) + (secret.endsWith('0') ? '1' : '0');
    const r = await get(typo);
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body)).toEqual(RANKTRACKER_401);
    const good = await get(secret);
    expect(good.status).toBe(200);
  });

  it('a key with control characters is a bad key or a bad request, never a 500', async () => {
    const r = await get(Buffer.from([0x74, 0x6b, 0x6e, 0x01, 0x7f]));
    expect([400, 401]).toContain(r.status);
    expect(JSON.parse(r.body)).toHaveProperty('errors');
  });

  it('bytes that are not HTTP get a 400 in the envelope', async () => {
    const r = await raw(kg.gatewayUrl, 'HELLO THERE\r\n\r\n');
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body)).toEqual({ errors: [{ code: 'bad_request', status: 400, detail: 'Bad request.' }] });
  });

  it('a method keygate forwards on no route gets the envelope\'s 405, with the methods the path takes', async () => {
    for (const method of ['PROPFIND', 'TRACE']) {
      const r = await raw(kg.gatewayUrl, `${method} /v1/domains HTTP/1.1\r\nHost: x\r\nAuthorization: ${secret}\r\nConnection: close\r\n\r\n`);
      expect(r.status, method).toBe(405);
      expect(r.headers).toMatch(/\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n/i);
      expect(JSON.parse(r.body)).toEqual({ errors: [expect.objectContaining({ code: 'method_not_allowed', status: 405 })] });
    }
  });

  it('answers such a method without a good key as it answers GET: the key is checked first, so no route shows', async () => {
    const before = upstream.received.length;
    const answer = async (method: string, path: string) => {
      const r = await raw(kg.gatewayUrl, `${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      return { status: r.status, allow: /\r\nallow:/i.test(r.headers), body: JSON.parse(r.body) as unknown };
    };
    // Under the base path: 401 before anything else; outside it (no API there at all): 404.
    expect(await answer('GET', '/v1/domains')).toEqual({ status: 401, allow: false, body: { errors: [{ code: 'unauthorized', status: 401, detail: 'Invalid or missing API key.' }] } });
    for (const method of ['PROPFIND', 'TRACE', 'PURGE']) {
      for (const path of ['/v1/domains', '/v1/nothing-here', '/elsewhere']) expect(await answer(method, path), `${method} ${path}`).toEqual(await answer('GET', path));
    }
    expect(upstream.received.length).toBe(before);
  });

  it('path traversal is refused before it reaches the upstream', async () => {
    const before = upstream.received.length;
    const r = await raw(kg.gatewayUrl, `GET /v1/%2e%2e/admin HTTP/1.1\r\nHost: x\r\nAuthorization: ${secret}\r\nConnection: close\r\n\r\n`);
    expect(r.status).toBe(400);
    expect(upstream.received.length).toBe(before);
  });

  it('refuses backslash and dot-segment tricks, which would be matched as one route and served as another', async () => {
    const before = upstream.received.length;
    // Encoded slashes and backslashes too: an upstream that decodes the path before routing it
    // would serve /v1/admin/users for what was judged as one segment under /v1/*. A path
    // encoded twice likewise, to an upstream that decodes twice (/v1/%2561dmin: /v1/admin).
    for (const target of ['/v1/domains/x\\..\\..\\admin', '/v1/domains/x/../../admin', '/v1/a/%2E%2e/admin', '/v1/./domains', '/v1/admin%2Fusers', '/v1/x/..%2fadmin', '/v1/a%5Cb', '/v1/a%00.json', '/v1/%2561dmin/users', '/v1/admin%252Fusers']) {
      const r = await raw(kg.gatewayUrl, `GET ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: ${secret}\r\nConnection: close\r\n\r\n`);
      expect(r.status, target).toBe(400);
      expect(JSON.parse(r.body)).toEqual({ errors: [{ code: 'bad_request', status: 400, detail: 'Bad request.' }] });
    }
    expect(upstream.received.length).toBe(before);
  });

  it('answers a pipelined request in full before refusing a malformed one behind it', async () => {
    // Both in one write: keygate used to answer the 400 at once and drop the first answer.
    const answer = await rawAll(kg.gatewayUrl, `GET /v1/domains?case=pipelined HTTP/1.1\r\nHost: x\r\nAuthorization: ${secret}\r\n\r\nGARBAGE\r\n\r\n`);
    expect([...answer.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))).toEqual([200, 400]);
    expect(answer).toContain('"url":"/v1/domains?case=pipelined"');
    expect(answer.slice(answer.lastIndexOf('HTTP/1.1 '))).toContain('"status":400');
  });

  it('answers every pipelined request before refusing a malformed one behind them, in order', async () => {
    const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${secret}\r\n\r\n`;
    // The second answer is slower than the first: it is still queued when the first is sent.
    const answer = await rawAll(kg.gatewayUrl, get('/v1/slow?ms=100&case=p1') + get('/v1/slow?ms=400&case=p2') + 'GARBAGE\r\n\r\n');
    expect([...answer.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))).toEqual([200, 200, 400]);
  });

  it('survives a CONNECT whose client resets the connection at once', async () => {
    const { hostname, port } = new URL(kg.gatewayUrl);
    for (let i = 0; i < 20; i++) {
      const socket = connect({ host: hostname, port: Number(port) }, () => {
        socket.write('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
        socket.resetAndDestroy();
      });
      socket.on('error', () => {});
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    // keygate runs in this process: an uncaught error would have failed the run already.
    const response = await kg.call('/v1/domains', { headers: { Authorization: secret } });
    expect(response.status).toBe(200);
    await response.text();
  });

  it('judges every target as it comes, right after the same path was judged good (the gateway keeps the last one)', async () => {
    const get = (target: string, host = 'x') => rawAll(kg.gatewayUrl, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${secret}\r\nConnection: close\r\n\r\n`);
    for (const target of ['/v1/domains', '/v1/domains', '/v1/domains/..', '/v1/domains', '/v1/domains/..', '/v2/domains', '/v1/domains']) {
      const answer = await get(target);
      expect(answer.slice(0, 12), target).toBe(target === '/v1/domains' ? 'HTTP/1.1 200' : target.startsWith('/v2') ? 'HTTP/1.1 404' : 'HTTP/1.1 400');
    }
    // Its absolute form right after it still takes its host from the target, and a query its own path.
    expect(await get('http://api.example.com/v1/domains')).toMatch(/^HTTP\/1\.1 200 /);
    expect(upstream.received.at(-1)).toMatchObject({ url: '/v1/domains', headers: { 'x-forwarded-host': 'api.example.com' } });
    expect(await get('/v1/domains?case=after')).toMatch(/^HTTP\/1\.1 200 /);
    expect(await get('/v1/domains')).toMatch(/^HTTP\/1\.1 200 /);
    expect(upstream.received.at(-1)).toMatchObject({ url: '/v1/domains', headers: { 'x-forwarded-host': 'x' } });
  });

  it('takes a request target in absolute form as its path, and forwards that path', async () => {
    const answer = await rawAll(kg.gatewayUrl, `GET http://example.com/v1/domains?case=absolute HTTP/1.1\r\nHost: example.com\r\nAuthorization: ${secret}\r\nConnection: close\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(upstream.received.at(-1)?.url).toBe('/v1/domains?case=absolute');
  });

  it('takes the host of an absolute-form target over the Host header (RFC 9112 §3.2.2), and refuses one without a usable host', async () => {
    const answer = await rawAll(kg.gatewayUrl, `GET http://api.example.com:8443/v1/domains?case=authority HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${secret}\r\nConnection: close\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(upstream.received.at(-1)).toMatchObject({ url: '/v1/domains?case=authority', headers: { 'x-forwarded-host': 'api.example.com:8443' } });
    for (const target of ['http:///v1/domains', 'http://example.com:99999/v1/domains', 'http://:80/v1/domains']) {
      const refused = await rawAll(kg.gatewayUrl, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${secret}\r\nConnection: close\r\n\r\n`);
      expect(refused.slice(0, 12), target).toBe('HTTP/1.1 400');
    }
  });

  it('never logs the user:password of an absolute-form target, also when it is refused', async () => {
    for (const [target, status] of [
      // Userinfo in a request target is an error (RFC 9110 §4.2.4), wherever it points.
      ['http://alice:hunter2@example.com/v1/domains', 400],
      ['http://alice:hunter2@example.com/other', 400],
      ['http://alice:hunter2@example.com/v1/x/../y', 400],
      ['ftp://alice:hunter2@example.com/v1/domains', 400],
      ['ftp://alice:hun@ter2@example.com/v1/domains', 400],
    ] as const) {
      const answer = await rawAll(kg.gatewayUrl, `GET ${target} HTTP/1.1\r\nHost: example.com\r\nAuthorization: ${secret}\r\nConnection: close\r\n\r\n`);
      expect(answer.slice(0, 12), target).toBe(`HTTP/1.1 ${status}`);
    }
    expect(kg.logs.text).toContain('"target":"http://[REDACTED]@example.com/other"');
    expect(kg.logs.text).not.toMatch(/hunter2|ter2@/);
    // Without a user the absolute form is served as its path.
    expect((await rawAll(kg.gatewayUrl, `GET http://example.com/v1/domains HTTP/1.1\r\nHost: example.com\r\nAuthorization: ${secret}\r\nConnection: close\r\n\r\n`)).slice(0, 12)).toBe('HTTP/1.1 200');
  });

  it('refuses path parameters, which servlet containers and some routers drop (/v1/admin;x/users served as /v1/admin/users)', async () => {
    const answer = await rawAll(kg.gatewayUrl, `GET /v1/domains;x/list HTTP/1.1\r\nHost: x\r\nAuthorization: ${secret}\r\nConnection: close\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
  });

  it('what Node would answer with an empty body, or not at all, is answered in the envelope', async () => {
    const statusAndBody = (answer: string) => {
      const head = answer.slice(0, answer.indexOf('\r\n\r\n'));
      const body = answer.slice(head.length + 4);
      return { status: Number(head.split(' ')[1]), body: body.startsWith('{') ? (JSON.parse(body) as unknown) : { head, body } };
    };
    // No Host header (HTTP/1.1 requires one).
    expect(statusAndBody(await rawAll(kg.gatewayUrl, `GET /v1/domains HTTP/1.1\r\nAuthorization: ${secret}\r\n\r\n`))).toEqual({
      status: 400,
      body: { errors: [{ code: 'bad_request', status: 400, detail: 'Bad request.' }] },
    });
    // Two Host headers (a server must refuse them: which one names the target?), in any case.
    for (const second of ['Host: y', 'HOST: x']) {
      expect(statusAndBody(await rawAll(kg.gatewayUrl, `GET /v1/domains HTTP/1.1\r\nHost: x\r\n${second}\r\nAuthorization: ${secret}\r\n\r\n`))).toEqual({
        status: 400,
        body: { errors: [{ code: 'bad_request', status: 400, detail: 'Bad request.' }] },
      });
    }
    // A Host that is no host (an upstream would read its path, query or user as X-Forwarded-Host), or a huge one.
    const before = upstream.received.length;
    for (const host of ['a/b?c#d', 'user@evil.example', 'a b', 'x'.repeat(10 * 1024), '', ':80', 'a:99999', 'a:123456', '[::1]:70000']) {
      expect(statusAndBody(await rawAll(kg.gatewayUrl, `GET /v1/domains HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${secret}\r\nConnection: close\r\n\r\n`)), host.slice(0, 20)).toEqual({
        status: 400,
        body: { errors: [{ code: 'bad_request', status: 400, detail: 'Bad request.' }] },
      });
    }
    // Hosts as they come: a name with a port, an IPv4 and an IPv6 address.
    for (const host of ['api.example.com:8443', '127.0.0.1', '[::1]:80', 'a:65535', '[::7]:80', '[2001:db8::a]:80', '[2001:db8::]:443', '[fd00::ab]:8']) {
      expect(statusAndBody(await rawAll(kg.gatewayUrl, `GET /v1/domains HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${secret}\r\nConnection: close\r\n\r\n`)).status, host).toBe(200);
    }
    // A fragment, which no request target has: routes would match before it, the upstream read after it.
    expect(statusAndBody(await rawAll(kg.gatewayUrl, `GET /v1/domains#x HTTP/1.1\r\nHost: x\r\nAuthorization: ${secret}\r\nConnection: close\r\n\r\n`))).toEqual({
      status: 400,
      body: { errors: [{ code: 'bad_request', status: 400, detail: 'Bad request.' }] },
    });
    expect(upstream.received.length).toBe(before + 8);
    // Neither a bare request line (HTTP/0.9, no headers) nor a text HTTP/2.0 one is HTTP/1.x; nor is a user in an absolute target.
    for (const request of [`GET /v1/domains\r\n\r\n`, `GET /v1/domains HTTP/2.0\r\nHost: x\r\nAuthorization: ${secret}\r\nConnection: close\r\n\r\n`, `GET http://user:pw@x/v1/domains HTTP/1.1\r\nHost: x\r\nAuthorization: ${secret}\r\nConnection: close\r\n\r\n`]) {
      const answer = await rawAll(kg.gatewayUrl, request);
      expect(answer, request).toMatch(/^HTTP\/1\.1 400 /);
      expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({ errors: [{ code: 'bad_request', status: 400, detail: 'Bad request.' }] });
    }
    expect(upstream.received.length).toBe(before + 8);
    // An expectation other than 100-continue.
    expect(statusAndBody(await rawAll(kg.gatewayUrl, `GET /v1/domains HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nAuthorization: ${secret}\r\n\r\n`))).toEqual({
      status: 417,
      body: { errors: [{ code: 'expectation_failed', status: 417, detail: 'Only "Expect: 100-continue" is supported.' }] },
    });
    // CONNECT: not a tunnel. A host:port target is no path (methods no route takes: see 'methods no route takes').
    expect(statusAndBody(await rawAll(kg.gatewayUrl, `CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nAuthorization: ${secret}\r\n\r\n`))).toEqual({
      status: 400,
      body: { errors: [{ code: 'bad_request', status: 400, detail: 'Bad request.' }] },
    });
  });

  it('two Authorization headers are a bad key, whichever comes first', async () => {
    for (const [first, second] of [[secret, 'junk'], ['junk', secret]]) {
      const r = await raw(kg.gatewayUrl, `GET /v1/domains HTTP/1.1\r\nHost: x\r\nAuthorization: ${first}\r\nAuthorization: ${second}\r\nConnection: close\r\n\r\n`);
      expect(r.status).toBe(401);
      expect(JSON.parse(r.body)).toEqual(RANKTRACKER_401);
    }
  });

  it('an empty Authorization line beside the key is absent, as a lone empty one is: the key is given once', async () => {
    for (const lines of [[secret, ''], ['', secret], ['  ', secret, '\t']]) {
      const before = upstream.received.length;
      const r = await raw(kg.gatewayUrl, `GET /v1/domains HTTP/1.1\r\nHost: x\r\n${lines.map((line) => `Authorization: ${line}\r\n`).join('')}Connection: close\r\n\r\n`);
      expect({ lines: lines.length, status: r.status }).toEqual({ lines: lines.length, status: 200 });
      expect(upstream.received.length).toBe(before + 1);
      // The credential header is not forwarded, not even its empty copies.
      expect(upstream.received.at(-1)?.headers.authorization).toBeUndefined();
    }
  });

  it('keeps serving after all of the above', async () => {
    const response = await kg.call('/v1/domains', { headers: { Authorization: secret } });
    expect(response.status).toBe(200);
    await response.text();
  });
});

describe('methods no route takes at the gateway', () => {
  const dir = tempDir('bad-input-methods');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let secret: string;

  beforeAll(async () => {
    ({ upstream, kg, secret } = await startWithKey(dir, {
      basePath: '/v1',
      routes: [
        { method: 'GET', path: '/v1/projects' },
        { method: 'POST', path: '/v1/projects' },
      ],
      errors: { envelope: 'jsonapi' },
    }));
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  /** The status, the Allow header (undefined: none) and the envelope of the answer to `method target` (sent with `key`, or none), on a connection of its own. */
  const ask = async (method: string, target: string, key: string | null = secret) => {
    const answer = await rawAll(kg.gatewayUrl, `${method} ${target} HTTP/1.1\r\nHost: x\r\n${key === null ? '' : `Authorization: Bearer ${key}\r\n`}Connection: close\r\n\r\n`);
    const head = answer.slice(0, answer.indexOf('\r\n\r\n'));
    return {
      status: Number(head.split(' ')[1]),
      allow: /\r\nallow:([^\r]*)/i.exec(head)?.[1]?.trim(),
      body: JSON.parse(answer.slice(head.length + 4)) as unknown,
    };
  };
  const envelope = (code: string, status: number, detail: string) => ({ errors: [{ code, status, detail }] });

  it('CONNECT, TRACE and PROPFIND on a route\'s path are a 405 in the envelope whose Allow names the methods the path takes', async () => {
    const before = upstream.received.length;
    for (const method of ['CONNECT', 'TRACE', 'PROPFIND']) {
      expect(await ask(method, '/v1/projects'), method).toEqual({ status: 405, allow: 'GET, HEAD, POST', body: envelope('method_not_allowed', 405, 'This endpoint does not accept this method.') });
      // In the absolute form too.
      expect(await ask(method, 'http://x/v1/projects'), method).toMatchObject({ status: 405, allow: 'GET, HEAD, POST' });
    }
    expect(upstream.received.length).toBe(before);
  });

  it('on a path no route takes, or outside basePath, they are no_route, and without a key the key is asked for first', async () => {
    for (const method of ['CONNECT', 'TRACE']) {
      for (const path of ['/v1/nope', '/elsewhere']) expect(await ask(method, path), `${method} ${path}`).toEqual({ status: 404, allow: undefined, body: envelope('not_found', 404, 'No such endpoint.') });
      // A caller without a key learns nothing of the routes.
      expect(await ask(method, '/v1/projects', null), method).toEqual({ status: 401, allow: undefined, body: envelope('missing_key', 401, 'Missing API key.') });
    }
  });

  it('a CONNECT to host:port (no path), a method Node does not know and an RFC 10008 QUERY without a body type are a 400 in the envelope, never a 500', async () => {
    expect(await ask('CONNECT', 'example.com:443')).toEqual({ status: 400, allow: undefined, body: envelope('bad_request', 400, 'Bad request.') });
    expect(await ask('FROBNICATE', '/v1/projects')).toEqual({ status: 400, allow: undefined, body: envelope('bad_request', 400, 'Bad request.') });
    expect(await ask('QUERY', '/v1/projects')).toEqual({ status: 400, allow: undefined, body: envelope('bad_request', 400, 'Bad request.') });
  });

  it('a CONNECT pipelined behind a forwarded request is answered after it, and closes the connection', async () => {
    const get = `GET /v1/projects?case=before-connect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\n\r\n`;
    const answer = await rawAll(kg.gatewayUrl, `${get}CONNECT /v1/projects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\n\r\n`);
    expect([...answer.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))).toEqual([200, 405]);
    expect(answer.slice(answer.lastIndexOf('HTTP/1.1 '))).toMatch(/\r\nallow: GET, HEAD, POST\r\n/i);
    // The access log has a line for it, as for any refusal.
    expect(kg.logs.lines.some((line) => line.includes('"method":"CONNECT"') && line.includes('"reason":"method_not_allowed"'))).toBe(true);
  });
});

describe('messages a header cannot carry', () => {
  it('are answered in full in the body, and WWW-Authenticate says them in ASCII or not at all', async () => {
    const { upstream, kg, secret } = await startWithKey(tempDir('bad-input-messages'), {
      errors: {
        envelope: 'error',
        reasons: { unknown_key: { message: 'Invalid API key — check it, “please”' }, malformed_key: { message: 'APIキーが無効です' } },
      },
    });
    try {
      const bearer = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });
      // The process used to die here: Node refused the header, and the 503 after it too.
      const unknown = await kg.call('/x', bearer(kg.runtime.keyFormat.generate('live')));
      expect(unknown.status).toBe(401);
      expect(await unknown.json()).toEqual({ error: 'Invalid API key — check it, “please”' });
      expect(unknown.headers.get('www-authenticate')).toBe('Bearer realm="api", error="invalid_token", error_description="Invalid API key - check it, \'please\'"');

      const malformed = await kg.call('/x', bearer('nope'));
      expect(malformed.status).toBe(401);
      expect(await malformed.json()).toEqual({ error: 'APIキーが無効です' });
      expect(malformed.headers.get('www-authenticate')).toBe('Bearer realm="api", error="invalid_token"');

      const served = await kg.call('/x', bearer(secret));
      expect(served.status).toBe(200);
      await served.text();
    } finally {
      await kg.close();
      await upstream.close();
    }
  });
});

describe("a profile's own reason phrases on what Node's parser refuses", () => {
  it('are sent where the status sent is the reason\'s own, and the standard phrase where the parser keeps its own status', async () => {
    const { upstream, kg, secret } = await startWithKey(tempDir('bad-input-reason-phrases'), {
      errors: {
        envelope: 'error',
        reasons: {
          // The parser answers bytes that are not HTTP with its own 400, whatever status the profile gives bad_request.
          bad_request: { status: 422, reasonPhrase: 'Unprocessable request' },
          method_not_allowed: { reasonPhrase: 'Method not allowed' },
        },
      },
    });
    const statusLine = (answer: string) => answer.slice(0, answer.indexOf('\r\n'));
    try {
      expect(statusLine(await rawAll(kg.gatewayUrl, 'HELLO THERE\r\n\r\n'))).toBe('HTTP/1.1 400 Bad Request');
      expect(statusLine(await rawAll(kg.gatewayUrl, `CONNECT /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\n\r\n`))).toBe('HTTP/1.1 405 Method not allowed');
    } finally {
      await kg.close();
      await upstream.close();
    }
  });
});

describe('slow and unreadable requests at every listener', () => {
  const dir = tempDir('request-timeout');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let secret: string;

  beforeAll(async () => {
    ({ upstream, kg, secret } = await startWithKey(dir, {
      routes: [{ method: 'POST', path: '/upload' }],
      errors: { envelope: 'problem' },
      // The defaults are 5 minutes (gateway) and 30 s (admin, dashboard).
      listen: { port: 0, requestTimeout: '1s' },
      dashboard: { enabled: true, listen: { port: 0, requestTimeout: '1s' } },
    }));
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  /** Headers and 3 of the 1,000 body bytes they announce, then nothing. (Host: an IP literal, a name the dashboard answers to.) */
  const stalledPost = (path: string, headers = '') =>
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nabc`;

  it('a body that stops arriving gets a 408 in the envelope at the gateway, and the connection is closed', async () => {
    const answer = await rawAll(kg.gatewayUrl, stalledPost('/upload', `Authorization: Bearer ${secret}\r\n`));
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toMatch(/\r\nContent-Type: application\/problem\+json\r\n/i);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toMatchObject({ status: 408, code: 'request_timeout' });
  });

  it('the dashboard\'s sign-in form cannot be held open by a body that never ends', async () => {
    const answer = await rawAll(kg.dashboardUrl as string, stalledPost('/sign-in'));
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('the admin API answers what it cannot read in problem details, not Fastify\'s JSON', async () => {
    const badUrl = await kg.admin('/v1/keys/%zz');
    expect(badUrl.status).toBe(400);
    expect(badUrl.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await badUrl.json()).toMatchObject({ status: 400, detail: 'The request URL could not be read.' });
    const longId = await kg.admin(`/v1/keys/${'k'.repeat(3000)}`);
    expect(longId.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await longId.json()).toMatchObject({ title: STATUS_CODES[longId.status], detail: 'The request URL could not be read.' });
    const huge = await rawAll(kg.adminUrl, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(huge).toMatch(/^HTTP\/1\.1 431 /);
    expect(JSON.parse(huge.slice(huge.indexOf('\r\n\r\n') + 4))).toEqual({ type: 'about:blank', title: 'Request Header Fields Too Large', status: 431, detail: 'The request headers are too large.' });
    const longUrl = await rawAll(kg.adminUrl, `GET /health?x=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(longUrl).toMatch(/^HTTP\/1\.1 414 /);
    expect(JSON.parse(longUrl.slice(longUrl.indexOf('\r\n\r\n') + 4))).toEqual({ type: 'about:blank', title: 'URI Too Long', status: 414, detail: 'The request URL is too long.' });
  });

  /** Status, headers and body of a whole answer read off a raw connection. */
  const parts = (answer: string) => {
    const head = answer.slice(0, answer.indexOf('\r\n\r\n'));
    return { status: Number(head.split(' ')[1]), head, body: answer.slice(head.length + 4) };
  };

  it('the admin API refuses the token sent twice, whichever comes first (as the gateway refuses a key sent twice)', async () => {
    for (const second of [ADMIN_TOKEN, 'wrong']) {
      const { status, head, body } = parts(await rawAll(kg.adminUrl, `GET /v1/accounts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nAuthorization: Bearer ${second}\r\nConnection: close\r\n\r\n`));
      expect({ status, challenge: /\r\nwww-authenticate: Bearer realm="keygate-admin"/i.test(head) }).toEqual({ status: 401, challenge: true });
      expect(JSON.parse(body)).toMatchObject({ status: 401, detail: 'Send the admin token once, as "Authorization: Bearer <token>".' });
    }
  });

  it('the admin API answers in problem details what Node would answer bare or not at all: no Host, two, an odd Expect, CONNECT', async () => {
    const cases: [string, number, string][] = [
      ['GET /health HTTP/1.1\r\n\r\n', 400, 'An HTTP/1.1 request needs one Host header, naming a host.'],
      ['GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n', 400, 'An HTTP/1.1 request needs one Host header, naming a host.'],
      ['GET /health HTTP/1.1\r\nHost: a/b\r\n\r\n', 400, 'An HTTP/1.1 request needs one Host header, naming a host.'],
      ['GET /health HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n', 417, 'Only "Expect: 100-continue" is supported.'],
      // No route takes CONNECT: answered as another method a path does not take is, Allow naming those it does.
      [`CONNECT /v1/accounts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\n\r\n`, 405, '/v1/accounts takes GET, HEAD, POST, not CONNECT.'],
      [`CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\n\r\n`, 404, 'No admin route CONNECT example.com:443.'],
      ['GET /health HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n', 400, 'The request could not be read as HTTP.'],
    ];
    for (const [request, status, detail] of cases) {
      const { status: sent, head, body } = parts(await rawAll(kg.adminUrl, request));
      expect({ sent, type: /\r\ncontent-type: application\/problem\+json/i.test(head), allow: /\r\nallow: ([^\r]*)/i.exec(head)?.[1] }).toEqual({ sent: status, type: true, allow: status === 405 ? 'GET, HEAD, POST' : undefined });
      expect(JSON.parse(body)).toMatchObject({ status, detail });
    }
  });

  it('the dashboard answers with a page, with its security headers, what Node would answer bare or not at all', async () => {
    const requests = [
      'GET /sign-in HTTP/1.1\r\n\r\n',
      'GET /sign-in HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n',
      'GET /sign-in HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n',
      'GET /sign-in HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n',
      `GET /sign-in HTTP/1.1\r\nHost: x\r\nCookie: ${'a'.repeat(20_000)}\r\n\r\n`,
    ];
    const statuses: number[] = [];
    for (const request of requests) {
      const { status, head, body } = parts(await rawAll(kg.dashboardUrl as string, request));
      statuses.push(status);
      expect(head).toMatch(/\r\ncontent-type: text\/html/i);
      expect(head).toMatch(/\r\ncontent-security-policy: default-src 'none'/i);
      expect(head).toMatch(/\r\ncache-control: no-store/i);
      expect(body).toContain('<h1>');
    }
    expect(statuses).toEqual([400, 400, 417, 400, 431]);
  });

  it('the dashboard answers CONNECT as any method a page does not take, never with a 405 that names none', async () => {
    const answers = [];
    for (const method of ['CONNECT', 'TRACE']) {
      const { status, head } = parts(await rawAll(kg.dashboardUrl as string, `${method} /keys HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
      answers.push({ status, location: /\r\nlocation: ([^\r]*)/i.exec(head)?.[1], allow: /\r\nallow:/i.test(head) });
    }
    expect(answers[0]).toEqual(answers[1]);
    expect(answers[0]).toEqual({ status: 303, location: '/sign-in', allow: false });
  });

  it('the dashboard answers an unreadable address with a page', async () => {
    // With a notice cookie too (one a redirect just set): the page must not try to clear it.
    for (const headers of [{}, { cookie: 'kg_notice=x' }] as Record<string, string>[]) {
      const response = await fetch(`${kg.dashboardUrl}/keys/%zz`, { headers });
      expect(response.status).toBe(400);
      expect(response.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await response.text()).toContain('That address could not be read');
    }
  });
});

describe('a credential header Node keeps one copy of (Proxy-Authorization), sent twice', () => {
  const dir = tempDir('bad-input-proxy-authorization');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let secret: string;

  beforeAll(async () => {
    ({ upstream, kg, secret } = await startWithKey(dir, {
      basePath: '/v1',
      keys: { prefix: { live: 'pk_live_' } },
      auth: { credentials: [{ in: 'header', name: 'Proxy-Authorization', scheme: 'Bearer' }] },
      errors: { envelope: 'error', reasons: { malformed_key: { message: 'Malformed key' }, unknown_key: { message: 'Unknown key' } } },
    }));
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  const sent = (lines: string[]) => raw(kg.gatewayUrl, `GET /v1/domains HTTP/1.1\r\nHost: x\r\n${lines.map((line) => `Proxy-Authorization: ${line}\r\n`).join('')}Connection: close\r\n\r\n`);

  it('is a malformed key, whichever copy holds the key, as two Authorization lines are (Node keeps only the first in req.headers)', async () => {
    const before = upstream.received.length;
    for (const lines of [[`Bearer ${secret}`, 'Bearer junk'], ['Bearer junk', `Bearer ${secret}`], [`Bearer ${secret}`, `Bearer ${secret}`]]) {
      const r = await sent(lines);
      expect({ lines, status: r.status, body: r.body }).toEqual({ lines, status: 401, body: '{"error":"Malformed key"}' });
    }
    expect(upstream.received.length).toBe(before);
  });

  it('takes the key beside an empty copy, as given once, and forwards neither line', async () => {
    for (const lines of [[`Bearer ${secret}`, ''], ['', `Bearer ${secret}`], ['  ', `Bearer ${secret}`, '\t'], [`Bearer ${secret}`]]) {
      const before = upstream.received.length;
      const r = await sent(lines);
      expect({ lines, status: r.status }).toEqual({ lines, status: 200 });
      expect(upstream.received.length).toBe(before + 1);
      expect(upstream.received.at(-1)?.headers['proxy-authorization']).toBeUndefined();
    }
  });
});
