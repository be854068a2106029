/**
 * Answers sent before the request's body is in (src/gateway/early-answer.ts): a refused
 * upload, an upstream that answers an upload early. The client gets its answer, told
 * `Connection: close`; keygate reads the rest only for a short linger, never the whole
 * body; a small body sent with its head still leaves the connection open for the next
 * request. Raw sockets on 127.0.0.1, a real keygate and upstream.
 */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { tempDir } from '../support/temp.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';
import { LINGER_MS } from '../../src/gateway/early-answer.js';

/**
 * An upload's declared length: far more than a client can send over loopback while the
 * answer is read and the linger runs out (8 GiB was not: a fast host sent it all in the
 * six lingers the client keeps sending for). The client never sends past it.
 */
const HUGE = 2 ** 40;
const CHUNK = Buffer.alloc(64 * 1024, 'x');

interface Upload {
  socket: Socket;
  /** Everything received so far, as latin1 text. */
  received(): string;
  /** Bytes of the body written so far. */
  sent(): number;
  /** Whether keygate has closed its side (a FIN: what a lingering close sends first). */
  ended(): boolean;
  /** Whether the client gave up sending after `forMs` with the connection still open. */
  gaveUp(): boolean;
  closed: Promise<void>;
}

/**
 * Starts an upload on a raw connection that keeps its side open when keygate closes its
 * own, as a client still sending does: the head, then body chunks as fast as the
 * connection takes them, for at most `forMs`, until the connection closes.
 */
async function startUpload(port: number, head: string, forMs: number): Promise<Upload> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  await new Promise((resolve) => socket.once('connect', resolve));
  let text = '';
  let sent = 0;
  let ended = false;
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('end', () => (ended = true));
  // Writes racing keygate's close fail: the assertions look at what was received.
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(head);
  const deadline = Date.now() + forMs;
  let gaveUp = false;
  void (async () => {
    while (!socket.destroyed && Date.now() < deadline && sent < HUGE) {
      if (socket.write(CHUNK)) sent += CHUNK.length;
      else {
        sent += CHUNK.length;
        await drainedOrClosed(socket, 100);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    gaveUp = !socket.destroyed;
    socket.destroy();
  })();
  return { socket, received: () => text, sent: () => sent, ended: () => ended, gaveUp: () => gaveUp, closed };
}

/**
 * Until `socket` drains or closes, or `ms` pass: whichever comes first takes the other
 * listeners away (one of each left behind per wait would pile up past Node's ten, which
 * warns of a leak: it would be one).
 */
function drainedOrClosed(socket: Socket, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    socket.once('drain', done);
    socket.once('close', done);
  });
}

/** A raw connection whose received bytes stay visible, as latin1 text. */
async function openRaw(port: number): Promise<{ socket: Socket; received(): string }> {
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise((resolve) => socket.once('connect', resolve));
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  // Writes racing keygate's close fail: the assertions look at what was received.
  socket.on('error', () => {});
  return { socket, received: () => text };
}

function statusLine(text: string): string {
  return text.slice(0, text.indexOf('\r\n'));
}

function headOf(text: string): string {
  return text.slice(0, text.indexOf('\r\n\r\n')).toLowerCase();
}

describe('answers sent before the body is in', () => {
  let upstream: Server;
  let kg: TestKeygate;
  let port: number;
  let secret: string;

  beforeAll(async () => {
    // Answers an upload to /early at once, without reading its body; everything else in full.
    upstream = createServer((req, res) => {
      if (req.url?.startsWith('/v1/early')) {
        res.writeHead(413, { 'content-type': 'application/json' });
        res.end('{"error":"too big for the upstream"}');
        return;
      }
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    kg = await startKeygate({ upstream: { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` } }, { dir: tempDir('early-answer') });
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    secret = (await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'live', scopes: [] }, 'test')).secret;
    port = Number(new URL(kg.gatewayUrl).port);
  });

  afterAll(async () => {
    await kg?.close();
    upstream?.closeAllConnections();
    await new Promise((resolve) => upstream?.close(resolve));
  });

  it('answers an upload without a key 401, Connection: close, and stops reading it after the linger rather than read it all', async () => {
    const upload = await startUpload(port, `POST /v1/files HTTP/1.1\r\nHost: keygate\r\nContent-Type: application/octet-stream\r\nContent-Length: ${HUGE}\r\n\r\n`, LINGER_MS * 6);
    await expect.poll(() => upload.received().includes('"code":"missing_key"') || upload.socket.destroyed, { timeout: 20_000 }).toBe(true);
    expect(statusLine(upload.received())).toBe('HTTP/1.1 401 Unauthorized');
    expect(headOf(upload.received())).toContain('\r\nconnection: close');
    // keygate closed its side once the answer was out, and then the connection, while the client still sent.
    await upload.closed;
    expect(upload.ended()).toBe(true);
    expect(upload.gaveUp()).toBe(false);
    expect(upload.sent()).toBeLessThan(HUGE);
    // The answer, whole, in the dialect.
    expect(upload.received()).toMatch(/\r\n\r\n\{.*"missing_key".*\}$/s);
  }, 90_000);

  it('passes an upstream\'s early answer to an upload on to the client, who is still sending (it used to be lost to a reset)', async () => {
    const upload = await startUpload(port, `POST /v1/early HTTP/1.1\r\nHost: keygate\r\nAuthorization: Bearer ${secret}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${HUGE}\r\n\r\n`, LINGER_MS * 6);
    await upload.closed;
    expect(statusLine(upload.received())).toBe('HTTP/1.1 413 Payload Too Large');
    expect(headOf(upload.received())).toContain('\r\nconnection: close');
    expect(upload.received()).toContain('{"error":"too big for the upstream"}');
    expect(upload.gaveUp()).toBe(false);
  }, 90_000);

  it('answers a client that sends its whole body before it reads: the answer waits for it', async () => {
    const { socket, received } = await openRaw(port);
    const body = Buffer.alloc(4 * 1024 * 1024, 'y');
    try {
      socket.write(`POST /v1/files HTTP/1.1\r\nHost: keygate\r\nAuthorization: Bearer wrong\r\nContent-Length: ${body.length}\r\n\r\n`);
      // All of it, at once: the client reads only once it is written.
      socket.write(body);
      await expect.poll(() => received().includes('"code":"invalid_key"'), { timeout: 20_000 }).toBe(true);
      expect(statusLine(received())).toBe('HTTP/1.1 401 Unauthorized');
    } finally {
      socket.destroy();
    }
  });

  it('keeps the connection open after refusing a small body that came with its head: the next request on it is answered', async () => {
    const { socket, received } = await openRaw(port);
    try {
      const body = '{"query":"small"}';
      socket.write(`POST /v1/search HTTP/1.1\r\nHost: keygate\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      await expect.poll(() => received().includes('"code":"missing_key"')).toBe(true);
      expect(headOf(received())).not.toContain('connection: close');
      socket.write(`GET /v1/things HTTP/1.1\r\nHost: keygate\r\nAuthorization: Bearer ${secret}\r\n\r\n`);
      await expect.poll(() => received().includes('{"ok":true}')).toBe(true);
      expect([...received().matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))).toEqual([401, 200]);
    } finally {
      socket.destroy();
    }
  });
});
