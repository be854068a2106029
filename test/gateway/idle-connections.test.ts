/**
 * A client that sends only blank lines (`\r\n`, again and again) holds no connection
 * for long: before a first request they count as its head (408 at the head's timeout),
 * after an answer they do not keep the connection alive past `keepAliveTimeout`. The
 * shortest timeouts the profile takes, real sockets.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';

/** The profile's: the head (and whole request) within 2 s, an idle connection kept 1 s (the least it takes). */
const REQUEST_TIMEOUT_MS = 2_000;
const KEEP_ALIVE_MS = 1_000;
/** How often the client sends a blank line: more often than the keep-alive timer runs out. */
const BLANK_LINE_EVERY_MS = 300;
/** How long the test waits for the server to close, at most. */
const GIVE_UP_MS = 8_000;

interface Held {
  /** Who closed: the server, or the test, which gave up waiting. */
  closedBy: 'server' | 'test';
  ms: number;
  /** Everything received, latin1. */
  text: string;
}

/**
 * Opens a connection, writes `first`, then a blank line every BLANK_LINE_EVERY_MS
 * (`then`: more requests, at times from the start) until the server closes it or
 * GIVE_UP_MS pass.
 */
function holdWithBlankLines(url: string, first: string, then: { atMs: number; bytes: string }[] = []): Promise<Held> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const started = performance.now();
    let text = '';
    const blankLines = setInterval(() => socket.writable && socket.write('\r\n'), BLANK_LINE_EVERY_MS);
    const later = then.map(({ atMs, bytes }) => setTimeout(() => socket.writable && socket.write(bytes), atMs));
    const done = (closedBy: Held['closedBy']) => {
      clearInterval(blankLines);
      for (const timer of later) clearTimeout(timer);
      clearTimeout(giveUp);
      resolve({ closedBy, ms: performance.now() - started, text });
    };
    const giveUp = setTimeout(() => {
      socket.destroy();
      done('test');
    }, GIVE_UP_MS);
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => done('server'));
    if (first !== '') socket.write(first);
  });
}

const statusLines = (text: string) => text.match(/^HTTP\/1\.1 \d{3} [^\r]*/gm) ?? [];

describe('a connection that sends only blank lines', () => {
  const dir = tempDir('idle-connections');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let request: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        errors: { envelope: 'problem' },
        listen: { port: 0, requestTimeout: `${REQUEST_TIMEOUT_MS}ms`, keepAliveTimeout: `${KEEP_ALIVE_MS}ms` },
        routes: [{ method: 'GET', path: '/*' }],
      },
      { dir },
    );
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    const secret = (await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test')).secret;
    request = `GET /rows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\n\r\n`;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it("before any request: a 408 in the envelope at the head's timeout (listen.requestTimeout here, 60 s by default), and the connection closed", async () => {
    const held = await holdWithBlankLines(kg.gatewayUrl, '');
    expect(held.closedBy).toBe('server');
    expect(statusLines(held.text)).toEqual(['HTTP/1.1 408 Request Timeout']);
    expect(held.text).toMatch(/\r\nContent-Type: application\/problem\+json\r\n/i);
    expect(JSON.parse(held.text.slice(held.text.indexOf('\r\n\r\n') + 4))).toMatchObject({ status: 408, code: 'request_timeout' });
    // Node looks every requestTimeout / 4: between 2 and 2.5 s, and some room for a busy host.
    expect(held.ms).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
    expect(held.ms).toBeLessThan(REQUEST_TIMEOUT_MS + 2_000);
  });

  it('after an answer: closed once it has been between requests for keepAliveTimeout, whatever blank lines it sends (they held it without end)', async () => {
    const held = await holdWithBlankLines(kg.gatewayUrl, request);
    expect(statusLines(held.text)).toEqual(['HTTP/1.1 200 OK']);
    expect(held.closedBy).toBe('server');
    // keepAliveTimeout, then the next look (every keepAliveTimeout / 4), with room for a busy host.
    expect(held.ms).toBeGreaterThanOrEqual(KEEP_ALIVE_MS);
    expect(held.ms).toBeLessThan(KEEP_ALIVE_MS + 2_500);
  });

  it('a connection in use stays open: requests one after another past keepAliveTimeout, and an answer slower than it (nothing written meanwhile)', async () => {
    const slow = request.replace('/rows', `/slow?ms=${KEEP_ALIVE_MS * 2}`);
    const held = await holdWithBlankLines(kg.gatewayUrl, request, [
      { atMs: 600, bytes: request },
      { atMs: 1_200, bytes: request },
      { atMs: 1_800, bytes: slow },
      { atMs: 4_000, bytes: `${request.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n')}` },
    ]);
    expect(statusLines(held.text)).toEqual(Array(5).fill('HTTP/1.1 200 OK'));
    // Closed by the server after the last answer (Connection: close), not before.
    expect(held.closedBy).toBe('server');
    expect(held.ms).toBeGreaterThanOrEqual(4_000);
  });
});
