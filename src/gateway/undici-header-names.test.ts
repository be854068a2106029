import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { declareHeaderNames, knownToUndici } from './undici-header-names.js';

describe("keygate's header names declared to undici", () => {
  let url = '';
  let received: IncomingHttpHeaders = {};
  const server = createServer((req, res) => {
    received = req.headers;
    res.end('ok');
  });
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('enters lower-case tokens, and only those', () => {
    expect(knownToUndici('x-test-declared-account')).toBe(false);
    expect(declareHeaderNames(['x-test-declared-account', 'X-Test-Declared-Upper', 'x-test declared', 'x-tést', ''])).toEqual(['x-test-declared-account']);
    expect(knownToUndici('x-test-declared-account')).toBe(true);
    expect(knownToUndici('X-Test-Declared-Upper')).toBe(false);
    expect(knownToUndici('x-test-declared-upper')).toBe(false);
  });

  it('leaves the names undici knows already as they were', () => {
    expect(declareHeaderNames(['content-type', 'x-forwarded-for'])).toEqual(['content-type', 'x-forwarded-for']);
    expect(knownToUndici('content-type')).toBe(true);
  });

  it('a declared header still reaches the server, and an invalid value in it is still refused', async () => {
    declareHeaderNames(['x-test-declared-key']);
    const answer = await request(url, { headers: ['x-test-declared-key', 'key_1', 'x-test-other', 'other'] });
    await answer.body.text();
    expect(received['x-test-declared-key']).toBe('key_1');
    expect(received['x-test-other']).toBe('other');
    await expect(request(url, { headers: ['x-test-declared-key', 'bad\r\nx-injected: 1'] })).rejects.toThrow(/invalid x-test-declared-key header/);
  });
});
