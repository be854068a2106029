/**
 * Found in hR1's adversarial review of the gateway's request path: answers an upstream may
 * lawfully send that keygate must pass on as they are, through the shipped examples on
 * loopback, over raw sockets (fetch would itself trip over some of these answers).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { startExample, type KeyOut, type RunningExample } from '../examples/support/example.js';
import { rawAll } from './support/raw-http.js';

/**
 * An upstream that answers each request with the bytes scripted for its path (the request
 * target up to `?`), once its head is in; it closes the connection after each answer.
 */
async function scriptedUpstream(answers: Record<string, string>): Promise<{ url: string; heads: string[]; close(): Promise<void> }> {
  const heads: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let head = '';
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      heads.push(head.slice(0, head.indexOf('\r\n\r\n')));
      const target = head.split(' ')[1] ?? '';
      socket.end(answers[target.split('?')[0] as string] ?? 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      head = '';
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    heads,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The status line and the header lines (names lower-cased) of a raw answer, and its body. */
function parse(text: string): { statusLine: string; headers: Record<string, string>; body: string } {
  const split = text.indexOf('\r\n\r\n');
  const [statusLine = '', ...lines] = text.slice(0, split).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { statusLine, headers, body: text.slice(split + 4) };
}

/** One upstream scripted for every case below, behind the trakkr example, and one key. */
let upstream: Awaited<ReturnType<typeof scriptedUpstream>>;
let ex: RunningExample;
let key: KeyOut;

beforeAll(async () => {
  upstream = await scriptedUpstream({
    // A 304 may carry the Content-Length of the representation it stands for; no body follows.
    '/get-brands': 'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 42\r\n\r\n',
    // A 204 must not carry one, but one that does still has no body.
    '/delete-brand': 'HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n',
    '/create-brand': 'HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{"id":1}',
  });
  ex = await startExample('trakkr', { upstream: { url: upstream.url } });
  const account = await ex.createAccount('Acme', 'scale');
  key = await ex.createKey(account.id, 'production');
});
afterAll(async () => {
  await ex?.close();
  await upstream?.close();
});

describe('answers without a body whose upstream named a length (RFC 9110 §8.6)', () => {
  const request = (method: string, target: string, extra = '') =>
    rawAll(ex.kg.gatewayUrl, `${method} ${target} HTTP/1.1\r\nHost: ${new URL(ex.kg.gatewayUrl).host}\r\nAuthorization: Bearer ${key.secret}\r\n${extra}Connection: close\r\n\r\n`);

  it('a 304 with Content-Length reaches the client as the 304 it is, not as a 502', async () => {
    const answer = parse(await request('GET', '/get-brands', 'If-None-Match: "v1"\r\n'));
    expect(answer.statusLine).toBe('HTTP/1.1 304 Not Modified');
    expect(answer.headers.etag).toBe('"v1"');
    expect(answer.headers['content-length']).toBe('42');
    expect(answer.body).toBe('');
  });

  it('a 204 with Content-Length reaches the client as a 204, without the length it must not carry', async () => {
    const answer = parse(await request('POST', '/delete-brand', 'Content-Length: 0\r\n'));
    expect(answer.statusLine).toBe('HTTP/1.1 204 No Content');
    expect(answer.headers['content-length']).toBeUndefined();
    expect(answer.body).toBe('');
  });
});

describe('a request whose Content-Type is no media type (keygate reads no body: the upstream judges it)', () => {
  /** Values fastify's own body parsing refuses (415, which the gateway answered as a 400 bad_request). */
  const ODD_TYPES = ['', 'json', '"text/plain"', 'text/plain,application/json'];

  const post = (type: string, authorization?: string) =>
    rawAll(
      ex.kg.gatewayUrl,
      `POST /create-brand HTTP/1.1\r\nHost: ${new URL(ex.kg.gatewayUrl).host}\r\n${authorization ? `Authorization: ${authorization}\r\n` : ''}Content-Type: ${type}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
    );

  it('is forwarded with its key, Content-Type and body as sent', async () => {
    for (const type of ODD_TYPES) {
      const answer = parse(await post(type, `Bearer ${key.secret}`));
      expect([answer.statusLine, answer.body], type).toEqual(['HTTP/1.1 201 Created', '{"id":1}']);
      expect(upstream.heads.at(-1), type).toContain(`\r\ncontent-type: ${type}\r\n`);
    }
  });

  it('without a key is missing_key, the first check, not a 400', async () => {
    for (const type of ODD_TYPES) {
      const answer = parse(await post(type));
      expect([answer.statusLine, answer.body], type).toEqual(['HTTP/1.1 401 Unauthorized', '{"error":"Missing API key"}']);
    }
  });

  it('with an unknown key is refused as that key, not a 400', async () => {
    const unknown = `sk_live_${'A'.repeat(30)}`;
    const answer = parse(await post('json', `Bearer ${unknown}`));
    expect(answer.statusLine).toMatch(/^HTTP\/1\.1 40[13] /);
    expect(answer.body).toBe('{"error":"Invalid API key"}');
  });
});
