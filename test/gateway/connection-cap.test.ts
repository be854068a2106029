/**
 * The gateway's cap on open client connections (`listen.maxConnections`): a flood of
 * connections that are opened and kept cannot take every file descriptor, so the admin
 * API and /health keep answering; a connection over the cap is closed as it comes in,
 * counted in /metrics and logged. And the default cap, from the process's open-files limit.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';
import { defaultGatewayCap, openFilesLimit } from '../../src/connection-cap.js';

/** A connection to `url` that has sent nothing: resolved once it is open. */
function idleConnection(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** One request on a fresh connection: the answer's status line, or how the connection ended without one. */
function requestOnNewConnection(url: string, authorization: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    let text = '';
    const socket = connect(Number(port), hostname, () => socket.write(`GET /anything HTTP/1.1\r\nHost: api.example\r\nAuthorization: ${authorization}\r\nConnection: close\r\n\r\n`));
    const giveUp = setTimeout(() => {
      socket.destroy();
      resolve('no answer within 10 s');
    }, 10_000);
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(giveUp);
      resolve(text === '' ? `closed: ${error.code}` : (text.split('\r\n')[0] as string));
    });
    socket.on('close', () => {
      clearTimeout(giveUp);
      resolve(text === '' ? 'closed without an answer' : (text.split('\r\n')[0] as string));
    });
  });
}

describe('listen.maxConnections', () => {
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let authorization: string;
  const held: Socket[] = [];

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate({ upstream: { url: upstream.url }, listen: { maxConnections: 3 } }, { dir: tempDir('connection-cap') });
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    authorization = `Bearer ${(await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'live', scopes: [] }, 'test')).secret}`;
  });

  afterAll(async () => {
    for (const socket of held) socket.destroy();
    await kg?.close();
    await upstream?.close();
  });

  it('closes a connection over the cap as it comes in, while the admin API and /health answer', async () => {
    for (let i = 0; i < 3; i++) held.push(await idleConnection(kg.gatewayUrl));

    expect(await requestOnNewConnection(kg.gatewayUrl, authorization)).toMatch(/^closed/);
    expect((await kg.admin('/health')).status).toBe(200);
    expect((await kg.admin('/health/ready')).status).toBe(200);

    const metrics = await (await kg.admin('/metrics')).text();
    expect(metrics).toMatch(/^keygate_connections_dropped_total\{listener="gateway"\} [1-9]/m);
    const warning = kg.logs.lines.map((line) => JSON.parse(line) as { level: number; msg: string; listener?: string }).find((line) => line.listener === 'gateway' && line.level === 40);
    expect(warning?.msg).toContain('the gateway holds 3 connections, its most (listen.maxConnections): closed a new one as it came in');
  });

  it('takes new connections again once one closes', async () => {
    const first = held.shift() as Socket;
    await new Promise<void>((resolve) => {
      first.once('close', () => resolve());
      first.destroy();
    });
    // The server learns of the close a moment after the client: ask until it has (bounded).
    let status = '';
    for (let i = 0; i < 50 && !status.startsWith('HTTP/1.1'); i++) {
      status = await requestOnNewConnection(kg.gatewayUrl, authorization);
      if (!status.startsWith('HTTP/1.1')) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(status).toBe('HTTP/1.1 200 OK');
  });
});

describe('the default cap', () => {
  it('reads the process limit from /proc/self/limits, and leaves room for the upstream pool and the rest', () => {
    const limits = 'Limit                     Soft Limit           Hard Limit           Units     \nMax open files            20000                20000                files     \n';
    expect(openFilesLimit(() => limits)).toBe(20000);
    expect(openFilesLimit(() => limits.replace('20000                20000', 'unlimited            unlimited'))).toBeUndefined();
    expect(
      openFilesLimit(() => {
        throw new Error('no /proc here');
      }),
    ).toBeUndefined();
    expect(defaultGatewayCap(20000, 128)).toBe(20000 - 128 - 512);
    expect(defaultGatewayCap(1024, 128)).toBe(1024 - 128 - 512);
    expect(defaultGatewayCap(256, 128)).toBe(64);
    expect(defaultGatewayCap(undefined, 128)).toBeUndefined();
  });
});
