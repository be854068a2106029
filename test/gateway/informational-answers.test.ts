/**
 * An upstream that sends 1xx informational answers nobody asked for (`100 Continue`, as
 * IIS and some Java stacks do; `103 Early Hints`) before its real answer: the client gets
 * that final answer (status, headers, body), charged as that answer is. A raw `net` server
 * on 127.0.0.1 writes the bytes, a real keygate forwards them.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { tempDir } from '../support/temp.js';
import { eventually } from '../backends/isolation.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
const EARLY_HINTS = 'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n';
const BODY = JSON.stringify({ data: [1, 2, 3] });
const FINAL = `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Upstream: raw\r\nContent-Length: ${Buffer.byteLength(BODY)}\r\n\r\n${BODY}`;

/** What the raw upstream writes before its 200, by the request path's last segment: pieces written apart (a tick between), so a 100 head can arrive split. */
const INTERIM: Record<string, string[]> = {
  continue: [CONTINUE],
  hints: [EARLY_HINTS],
  both: [CONTINUE + EARLY_HINTS],
  twice: [CONTINUE, CONTINUE],
  split: ['HTTP/1.1 10', '0 Conti', 'nue\r\n', '\r\n'],
};
/** What each test's name says the upstream sent first. */
const SENT: Record<string, string> = {
  continue: 'an unasked 100 Continue',
  hints: '103 Early Hints',
  both: '100 Continue and 103 Early Hints',
  twice: 'two 100 Continue',
  split: 'a 100 Continue arriving in pieces',
};

/** A 200 whose body (in a piece of its own) reads like a 100 head: passed on as it is. */
const CONTINUE_TEXT = CONTINUE + 'the rest';
const LOOKS_LIKE_CONTINUE = [`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${CONTINUE_TEXT.length}\r\n\r\n`, CONTINUE_TEXT];

/** A 101 to a request that asked for no upgrade: no answer keygate can pass on. */
const SWITCHING = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n';

/** Writes each piece once the one before has been flushed and a macrotask has passed. */
async function writeApart(socket: Socket, pieces: (string | string[])[]): Promise<void> {
  for (const piece of pieces.flat()) {
    if (socket.destroyed) return;
    await new Promise<void>((resolve) => socket.write(piece, 'latin1', () => setTimeout(resolve, 5)));
  }
}

/** Answers each request (a GET, no body) on its connection with the interim answers its path names, then the 200; keeps the connection open. */
function startRawUpstream(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      let end: number;
      while ((end = text.indexOf('\r\n\r\n')) !== -1) {
        const head = text.slice(0, end);
        text = text.slice(end + 4);
        const path = head.split(' ')[1] ?? '/';
        const last = path.split('?')[0]!.split('/').pop() ?? '';
        if (last === 'switching') socket.write(SWITCHING);
        else void writeApart(socket, [...(INTERIM[last] ?? []), last === 'looks-like-continue' ? LOOKS_LIKE_CONTINUE : FINAL]);
      }
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

describe('1xx informational answers from the upstream', () => {
  const dir = tempDir('informational');
  let upstream: { url: string; close(): Promise<void> };
  let kg: TestKeygate;
  let secret: string;
  let accountId: string;

  beforeAll(async () => {
    upstream = await startRawUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        basePath: '/v1',
        keys: { format: 'hex', hexLength: 40 },
        auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Token' }] },
        plans: { big: { meters: { units: { limit: 1000 } } } },
        routes: [
          { method: 'GET', path: '/v1/records/:interim', cost: { meter: 'units', perRecord: 1, records: { json: 'data' } } },
          { method: 'GET', path: '/v1/flat/:interim', cost: { meter: 'units', perRequest: 10 } },
        ],
      },
      { dir },
    );
    const account = await createAccount(kg.runtime, { name: 'informational', planId: 'big' }, 'test');
    accountId = account.id;
    ({ secret } = await createKey(kg.runtime, { accountId, name: 'k' }, 'test'));
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  const used = async () => (await kg.runtime.counters.meterBalance(accountId, 'units', new Date().toISOString().slice(0, 7) + '-01')).used;

  for (const interim of Object.keys(INTERIM)) {
    it(`forwards the final answer after ${SENT[interim]}, charged as that answer`, async () => {
      const before = await used();
      const r = await kg.call(`/v1/records/${interim}`, { headers: { authorization: `Token ${secret}` } });
      expect({ status: r.status, type: r.headers.get('content-type'), upstream: r.headers.get('x-upstream'), link: r.headers.get('link'), body: await r.text() }).toEqual({
        status: 200,
        type: 'application/json',
        upstream: 'raw',
        link: null,
        body: BODY,
      });
      await eventually(async () => (await used()) - before === 3);
      expect((await used()) - before).toBe(3);
      const flat = await kg.call(`/v1/flat/${interim}`, { headers: { authorization: `Token ${secret}` } });
      expect({ status: flat.status, body: await flat.text() }).toEqual({ status: 200, body: BODY });
      await eventually(async () => (await used()) - before === 13);
      expect((await used()) - before).toBe(13);
    });
  }

  it('passes on a body that reads like a 100 head as it is', async () => {
    const r = await kg.call('/v1/flat/looks-like-continue', { headers: { authorization: `Token ${secret}` } });
    expect({ status: r.status, body: await r.text() }).toEqual({ status: 200, body: CONTINUE_TEXT });
  });

  it('answers a 101 nobody asked for with a 502 in the envelope, and charges nothing', async () => {
    const before = await used();
    const r = await kg.call('/v1/flat/switching', { headers: { authorization: `Token ${secret}` } });
    expect({ status: r.status, type: r.headers.get('content-type') }).toEqual({ status: 502, type: 'application/problem+json' });
    expect(((await r.json()) as { code: string }).code).toBe('bad_gateway');
    await eventually(async () => (await kg.runtime.counters.meterBalance(accountId, 'units', new Date().toISOString().slice(0, 7) + '-01')).reserved === 0);
    expect(await used()).toBe(before);
  });
});
