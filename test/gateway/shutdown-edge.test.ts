/**
 * Stopping keygate, connection by connection: pipelined requests, a request half
 * received when the drain begins, an upload answered before its body was in, a client
 * that never closes its side, a request read late because the process stalled, and a
 * listen host with two addresses. Each keygate
 * drains with a 120 s timeout, and each stop is raced against 20 s: a stop that waits
 * for the timeout fails the test.
 */
import dns from 'node:dns';
import { connect, createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';
import { canConnect } from '../../src/spawned-upstream.js';
import type { ConfigInput } from '../../src/config/schema.js';

/** Whether this machine can listen on IPv6 loopback (the two-address test needs it). */
const hasIpv6Loopback = await new Promise<boolean>((resolve) => {
  const server = createServer()
    .once('error', () => resolve(false))
    .listen(0, '::1', () => server.close(() => resolve(true)));
});
if (!hasIpv6Loopback) console.warn('shutdown-edge: skipping the two-address test: this machine cannot listen on ::1');

const SLOW_ANSWER = '{"slow":true}';

interface Client {
  socket: Socket;
  /** Everything received so far, as latin1 text. */
  received(): string;
  closed: Promise<void>;
}

/** A raw HTTP/1.1 client connection: what it is sent and what it receives stay visible. */
function openClient(host: string, port: number, options: { allowHalfOpen?: boolean } = {}): Promise<Client> {
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = connect({ host, port, allowHalfOpen: options.allowHalfOpen ?? false }, () => resolve({ socket, received: () => text, closed }));
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    // A write racing the server's close may fail: the assertions look at what was received.
    socket.on('error', () => {});
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.once('error', reject);
  });
}

function get(path: string, authorization?: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: keygate\r\n${authorization ? `Authorization: ${authorization}\r\n` : ''}\r\n`;
}

/** The status lines of the answers received on a connection, in order. */
function statuses(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
}

/** Stops keygate, or gives up after 20 s (far below its 120 s drain timeout). */
async function stopWithin20s(kg: TestKeygate): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still draining after 20 s'), 20_000)));
  try {
    return await Promise.race([kg.close().then(() => 'stopped'), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Lets the event loop run once through its I/O phase: bytes a client in this process has
 * written over loopback have then been read by keygate.
 */
const ioTurn = () => new Promise((resolve) => setTimeout(resolve, 50));

describe('stopping, connection by connection', () => {
  let upstream: TestUpstream;
  let count = 0;

  beforeAll(async () => {
    upstream = await startTestUpstream();
  });

  afterAll(async () => {
    await upstream?.close();
  });

  /** A keygate of its own for each test (each test stops it), and a key for it. */
  async function start(profile: Partial<ConfigInput> = {}): Promise<{ kg: TestKeygate; port: number; authorization: string }> {
    const kg = await startKeygate(
      { upstream: { url: upstream.url }, routes: [{ method: 'GET', path: '/slow' }, { method: 'GET', path: '/held' }], ...profile },
      { dir: tempDir(`shutdown-edge-${++count}`), drainTimeoutMs: 120_000 },
    );
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    const authorization = `Bearer ${(await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'live', scopes: [] }, 'test')).secret}`;
    return { kg, port: Number(new URL(kg.gatewayUrl).port), authorization };
  }

  it('answers pipelined requests in full and then closes the connection', async () => {
    const { kg, port, authorization } = await start();
    const client = await openClient('127.0.0.1', port);
    // Two requests in one write: the second answer waits on the connection behind the first.
    client.socket.write(get('/held?id=pipelined-1', authorization) + get('/held?id=pipelined-2', authorization));
    await expect.poll(() => upstream.received.filter((r) => r.url.startsWith('/held?id=pipelined-')).length).toBe(2);

    const stopped = stopWithin20s(kg);
    await expect.poll(() => canConnect('127.0.0.1', port), { timeout: 10_000 }).toBe(false);
    upstream.release('pipelined-1');
    upstream.release('pipelined-2');
    expect(await stopped).toBe('stopped');
    await client.closed;
    expect(statuses(client.received())).toEqual([200, 200]);
    expect(client.received()).toContain('{"held":"pipelined-1"}');
    expect(client.received()).toContain('{"held":"pipelined-2"}');
  });

  it('answers a request whose headers were half received when the drain began', async () => {
    const { kg, port, authorization } = await start();
    const client = await openClient('127.0.0.1', port);
    // A keep-alive connection: one request answered, then half of the next one's headers.
    client.socket.write(get('/slow?ms=0&case=half-1', authorization));
    await expect.poll(() => client.received().includes(SLOW_ANSWER)).toBe(true);
    client.socket.write('GET /slow?ms=0&case=half-2 HTTP/1.1\r\nHost: keygate\r\n');
    await ioTurn();

    const stopped = stopWithin20s(kg);
    // Once the listener no longer accepts, the drain has begun: the rest of the headers.
    await expect.poll(() => canConnect('127.0.0.1', port), { timeout: 10_000 }).toBe(false);
    client.socket.write(`Authorization: ${authorization}\r\n\r\n`);

    await client.closed;
    expect(statuses(client.received())).toEqual([200, 503]);
    expect(client.received().slice(client.received().lastIndexOf('HTTP/1.1 '))).toMatch(/\r\nconnection: close\r\n/i);
    expect(await stopped).toBe('stopped');
  });

  /** Sends an upload without a key and half its body: keygate answers 401 after the headers. */
  async function uploadAnsweredEarly(port: number, options: { allowHalfOpen?: boolean } = {}): Promise<Client & { isClosed(): boolean }> {
    const client = await openClient('127.0.0.1', port, options);
    let closed = false;
    void client.closed.then(() => (closed = true));
    client.socket.write('POST /slow?case=early HTTP/1.1\r\nHost: keygate\r\nContent-Type: application/octet-stream\r\nContent-Length: 20000\r\n\r\n');
    client.socket.write('x'.repeat(10_000));
    await expect.poll(() => statuses(client.received())).toEqual([401]);
    return { ...client, isClosed: () => closed };
  }

  it('reads the rest of a request answered early, then closes its connection', async () => {
    const { kg, port } = await start();
    // A client that keeps its side open once keygate has closed its own (after the 401,
    // src/gateway/early-answer.ts), as one still sending does.
    const client = await uploadAnsweredEarly(port, { allowHalfOpen: true });

    const stopped = stopWithin20s(kg);
    await expect.poll(() => canConnect('127.0.0.1', port), { timeout: 10_000 }).toBe(false);
    await ioTurn();
    // Not cut while the client is still sending (it might not have read the 401 yet).
    expect(client.isClosed()).toBe(false);
    client.socket.write('x'.repeat(10_000));

    expect(await stopped).toBe('stopped');
    client.socket.end();
    await client.closed;
    expect(statuses(client.received())).toEqual([401]);
  });

  it('closes the connection of a request answered early whose rest does not come', async () => {
    const { kg, port } = await start();
    const client = await uploadAnsweredEarly(port);
    // The other 10,000 bytes are never sent: the stop waits a moment for them, not its
    // 120 s timeout.
    expect(await stopWithin20s(kg)).toBe('stopped');
    await client.closed;
    expect(statuses(client.received())).toEqual([401]);
  });

  it('sends nothing more when a client that was answered early stops half-way through its body', async () => {
    const { kg, port } = await start();
    // The client closes its side with half the body sent: Node's parser calls that an
    // error, and keygate used to answer it with a 400 behind the 401.
    const client = await uploadAnsweredEarly(port, { allowHalfOpen: true });
    client.socket.end();
    await client.closed;
    expect(statuses(client.received())).toEqual([401]);
    expect(await stopWithin20s(kg)).toBe('stopped');
  });

  it('does not wait for a client that keeps its side of the connection open', async () => {
    const { kg, port, authorization } = await start();
    // allowHalfOpen: the client does not answer the server's FIN with its own.
    const client = await openClient('127.0.0.1', port, { allowHalfOpen: true });
    client.socket.write(get('/slow?ms=0&case=half-open', authorization));
    await expect.poll(() => client.received().includes(SLOW_ANSWER)).toBe(true);
    try {
      expect(await stopWithin20s(kg)).toBe('stopped');
    } finally {
      client.socket.destroy();
    }
  });

  it('answers a spare connection whose request is read only after a stall of more than a second', async () => {
    const { kg, port, authorization } = await start();
    const client = await openClient('127.0.0.1', port);
    const stopped = stopWithin20s(kg);
    client.socket.write(get('/slow?ms=0&case=stall', authorization));
    // The process stalls (a long GC pause, a busy host) past the grace a spare connection is given.
    const until = Date.now() + 1_200;
    while (Date.now() < until);

    await client.closed;
    expect(statuses(client.received())).toEqual([503]);
    expect(await stopped).toBe('stopped');
  });

  it.skipIf(!hasIpv6Loopback)('drains connections on every address a host name resolves to (localhost: 127.0.0.1 and ::1)', async () => {
    // This machine's resolver may give `localhost` one address: it is made to give both.
    const lookup = dns.lookup;
    const spy = vi.spyOn(dns, 'lookup').mockImplementation(((hostname: string, options: unknown, callback?: unknown) => {
      const done = (typeof options === 'function' ? options : callback) as (...args: unknown[]) => void;
      if (hostname !== 'localhost') return (lookup as (...args: unknown[]) => void)(hostname, options, callback);
      const all = typeof options === 'object' && options !== null && (options as dns.LookupOptions).all;
      if (all) process.nextTick(done, null, [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }]);
      else process.nextTick(done, null, '127.0.0.1', 4);
    }) as typeof dns.lookup);
    let started: Awaited<ReturnType<typeof start>>;
    try {
      started = await start({ listen: { host: 'localhost', port: 0 } });
    } finally {
      spy.mockRestore();
    }
    const { kg, port, authorization } = started;

    // On ::1: a keep-alive connection between requests, and one with an answer on its way.
    const idle = await openClient('::1', port);
    idle.socket.write(get('/slow?ms=0&case=v6-idle', authorization));
    await expect.poll(() => idle.received().includes(SLOW_ANSWER)).toBe(true);
    const busy = await openClient('::1', port);
    busy.socket.write(get('/held?id=v6-busy', authorization));
    await expect.poll(() => upstream.received.some((r) => r.url === '/held?id=v6-busy')).toBe(true);

    const stopping = stopWithin20s(kg);
    await expect.poll(() => canConnect('127.0.0.1', port), { timeout: 10_000 }).toBe(false);
    upstream.release('v6-busy');
    const { result, log } = await stopping.then((result) => ({ result, log: kg.logs.text }));
    expect(result).toBe('stopped');
    // Keygate logs a request once its answer is sent: the stop waited for the one on ::1,
    expect(log).toMatch(/"target":"\/held\?id=v6-busy","status":200/);
    // and closed both connections on ::1 (before, Fastify's server for ::1 left the busy
    // one open after the stop).
    let timer: NodeJS.Timeout | undefined;
    const leftOpen = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('left open 5 s after the stop'), 5_000)));
    try {
      expect(await Promise.race([Promise.all([busy.closed, idle.closed]).then(() => 'closed'), leftOpen])).toBe('closed');
    } finally {
      clearTimeout(timer);
    }
    expect(statuses(busy.received())).toEqual([200]);
    expect(busy.received()).toContain('{"held":"v6-busy"}');
  });
});
