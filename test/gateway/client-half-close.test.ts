/**
 * undici, streaming a request's body upstream, destroys the request stream when the
 * exchange fails or the client leaves, and clears its `socket`. The access line written afterwards
 * must not read the client's address from there: it ended the process (a TypeError thrown
 * from inside undici's error handling) for a client that half-closed its connection after
 * a request with a body (a FIN: `nc -N`, `shutdown(SHUT_WR)`), and for an upstream that
 * closed its connection, without an answer, once it had read a request with a body.
 */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';

/** Sends `bytes` (closing the sending side after them if `halfClose`) and resolves once the server closes the connection. */
function send(url: string, bytes: string, halfClose = false): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), allowHalfOpen: true });
    let text = '';
    socket.setTimeout(5_000, () => reject(new Error(`not closed within 5 s; received: ${JSON.stringify(text)}`)));
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    socket.on('error', () => resolve(text));
    socket.on('end', () => resolve(text));
    socket.on('close', () => resolve(text));
    if (halfClose) socket.end(bytes);
    else socket.write(bytes);
  });
}

describe('a client that half-closes its connection after a request with a body', () => {
  const dir = tempDir('client-half-close');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let secret: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate({ upstream: { url: upstream.url }, errors: { envelope: 'message' } }, { dir });
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    secret = (await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test')).secret;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('is logged as a client that left (499), with its address, and keygate keeps serving', async () => {
    for (let i = 0; i < 5; i++) {
      await send(kg.gatewayUrl, `POST /v1/items?n=${i} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`, true);
    }
    const after = await kg.call('/v1/items', { headers: { authorization: `Bearer ${secret}` } });
    expect(after.status).toBe(200);
    await after.text();
    const lines = kg.logs.lines.map((line) => JSON.parse(line) as { msg?: string; target?: string; status?: number; client?: string }).filter((l) => l.msg === 'request' && l.target?.startsWith('/v1/items?n='));
    expect(lines).toHaveLength(5);
    for (const line of lines) expect({ status: line.status, client: line.client }).toEqual({ status: 499, client: '127.0.0.1' });
  });
});

describe('an upstream that closes its connection once it has read a request with a body', () => {
  const dir = tempDir('upstream-cut-body');
  let cutting: Server;
  let kg: TestKeygate;
  let secret: string;
  const post = () => send(kg.gatewayUrl, `POST /v1/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`);
  const head = (answer: string) => answer.slice(0, answer.indexOf('\r\n\r\n'));

  beforeAll(async () => {
    // Reads the whole request, then closes the connection without an answer (as an upstream that crashes does).
    cutting = createServer((request) => {
      request.resume();
      request.on('end', () => request.socket.destroy());
    });
    await new Promise<void>((resolve) => cutting.listen(0, '127.0.0.1', resolve));
    kg = await startKeygate({ upstream: { url: `http://127.0.0.1:${(cutting.address() as AddressInfo).port}` }, errors: { envelope: 'message' }, shutdown: { readinessDelay: '10m' } }, { dir });
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    secret = (await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test')).secret;
  });

  afterAll(async () => {
    kg?.hurry();
    await kg?.close();
    cutting?.closeAllConnections();
    await new Promise((resolve) => cutting?.close(resolve));
  });

  it('answers 502 in the envelope (head and body in one packet, as curl sends a small body), and keygate keeps serving', async () => {
    for (let i = 0; i < 3; i++) {
      const answer = await send(kg.gatewayUrl, `POST /v1/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`);
      expect({ head: answer.slice(0, answer.indexOf('\r\n')), body: answer.slice(answer.indexOf('\r\n\r\n') + 4) }).toEqual({ head: 'HTTP/1.1 502 Bad Gateway', body: expect.stringMatching(/^\{"message":/) });
    }
    const lines = kg.logs.lines.map((line) => JSON.parse(line) as { msg?: string; status?: number; client?: string }).filter((l) => l.msg === 'request');
    expect(lines.map((l) => ({ status: l.status, client: l.client }))).toEqual(Array(3).fill({ status: 502, client: '127.0.0.1' }));
    const health = await fetch(`${kg.adminUrl}/health`);
    expect(health.status).toBe(200);
  });

  it('while keygate stops (its readiness delay), answers the 502 and closes the connection, rather than cutting it', async () => {
    const closing = kg.close();
    const answer = await post();
    expect(head(answer)).toMatch(/^HTTP\/1\.1 502 /);
    expect(head(answer)).toMatch(/\r\nconnection: close(\r\n|$)/i);
    kg.hurry();
    await closing;
  });
});
