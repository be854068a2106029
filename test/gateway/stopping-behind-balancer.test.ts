/**
 * Stopping behind a load balancer: /health/ready turns 503 as the stop begins while the
 * gateway goes on serving for `shutdown.readinessDelay`; a second signal cuts the delay
 * short. And each listener's `keepAliveTimeout`: what it announces, and when it closes.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';

async function keyFor(kg: TestKeygate): Promise<string> {
  const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
  return `Bearer ${(await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'live', scopes: [] }, 'test')).secret}`;
}

/** One request on a fresh connection: its answer's head as text, and when the server closed the connection after it (ms), if it did within `waitMs`. */
function rawRequest(gatewayUrl: string, authorization: string | undefined, waitMs: number): Promise<{ head: string; closedAfterMs: number | undefined }> {
  const { hostname, port } = new URL(gatewayUrl);
  return new Promise((resolve, reject) => {
    let text = '';
    let answeredAt = 0;
    const credential = authorization === undefined ? '' : `Authorization: ${authorization}\r\n`;
    const socket = connect(Number(port), hostname, () => socket.write(`GET /anything HTTP/1.1\r\nHost: api.example\r\n${credential}\r\n`));
    const giveUp = setTimeout(() => {
      socket.destroy();
      resolve({ head: text.split('\r\n\r\n')[0] ?? '', closedAfterMs: undefined });
    }, waitMs);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (answeredAt === 0 && text.includes('\r\n\r\n')) answeredAt = Date.now();
    });
    socket.on('close', () => {
      clearTimeout(giveUp);
      resolve({ head: text.split('\r\n\r\n')[0] ?? '', closedAfterMs: Date.now() - answeredAt });
    });
    socket.on('error', reject);
  });
}

/** Two requests pipelined in one write on a fresh connection: everything answered until the server closed it. */
function twoPipelined(gatewayUrl: string, authorization: string | undefined): Promise<string> {
  const { port } = new URL(gatewayUrl);
  const credential = authorization === undefined ? '' : `Authorization: ${authorization}\r\n`;
  const one = (id: number) => `GET /anything?n=${id} HTTP/1.1\r\nHost: api.example\r\n${credential}\r\n`;
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = connect(Number(port), '127.0.0.1', () => socket.write(one(1) + one(2)));
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

describe('stopping behind a load balancer', () => {
  let upstream: TestUpstream;
  const started: TestKeygate[] = [];

  beforeAll(async () => {
    upstream = await startTestUpstream();
  });

  afterAll(async () => {
    for (const kg of started) kg.hurry();
    await Promise.all(started.map((kg) => kg.close()));
    await upstream?.close();
  });

  const start = async (extra: Record<string, unknown>) => {
    const kg = await startKeygate({ upstream: { url: upstream.url }, ...extra }, { dir: tempDir('stopping-lb') });
    started.push(kg);
    return kg;
  };

  it('answers /health/ready 503 at once and goes on serving through the readiness delay, then closes its listeners', async () => {
    // Ten minutes, cut short below: nothing here depends on how fast the machine is.
    const kg = await start({ shutdown: { readinessDelay: '10m' } });
    const authorization = await keyFor(kg);
    expect((await kg.admin('/health/ready')).status).toBe(200);

    let stopped = false;
    const closing = kg.close().then(() => (stopped = true));
    const ready = await kg.admin('/health/ready');
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { status: string }).status).toBe('stopping');
    // /health itself still answers 200 (the process runs), saying it is stopping.
    const health = await kg.admin('/health');
    expect(health.status).toBe(200);
    expect(((await health.json()) as { status: string }).status).toBe('stopping');
    // The gateway still forwards, on a new connection too, and closes each connection
    // after its answer (its client's next request goes to another process).
    // Waited for up to 10 s (the readiness delay is 10 minutes): a loaded machine may take
    // more than a second to answer, and the close comes right after the answer anyway.
    const during = await rawRequest(kg.gatewayUrl, authorization, 10_000);
    expect(during.head).toMatch(/^HTTP\/1\.1 200 /);
    expect(during.head).toMatch(/\r\nconnection: close(\r\n|$)/i);
    expect(during.closedAfterMs).toBeDefined();
    // Two requests pipelined in one write: both answered, the connection closed after the second.
    const pipelined = await twoPipelined(kg.gatewayUrl, authorization);
    const heads = pipelined.split('HTTP/1.1 ').slice(1);
    expect(heads.map((head) => head.slice(0, 3))).toEqual(['200', '200']);
    expect(heads[0]).not.toMatch(/\r\nconnection: close\r\n/i);
    expect(heads[1]).toMatch(/\r\nconnection: close\r\n/i);
    expect(pipelined).toContain('"url":"/anything?n=2"');
    // A refusal closes its connection too (its client would otherwise stay on this process to the end)...
    const refused = await rawRequest(kg.gatewayUrl, undefined, 10_000);
    expect(refused.head).toMatch(/^HTTP\/1\.1 401 /);
    expect(refused.head).toMatch(/\r\nconnection: close(\r\n|$)/i);
    expect(refused.closedAfterMs).toBeDefined();
    // ...but not before a request pipelined behind it in the same write is answered.
    const refusedTwice = await twoPipelined(kg.gatewayUrl, undefined);
    const refusals = refusedTwice.split('HTTP/1.1 ').slice(1);
    expect(refusals.map((head) => head.slice(0, 3))).toEqual(['401', '401']);
    expect(refusals[0]).not.toMatch(/\r\nconnection: close\r\n/i);
    expect(refusals[1]).toMatch(/\r\nconnection: close\r\n/i);
    expect(stopped).toBe(false);
    expect(kg.logs.text).toContain('keygate stopping: /health/ready answers 503');

    expect(kg.hurry()).toBe(true);
    await closing;
    // Then the listeners are closed: nothing answers any more.
    await expect(kg.call('/anything', { headers: { authorization } })).rejects.toThrow();
    expect(kg.logs.text).toContain('keygate stopped');
  });

  it('in the readiness delay, keeps a connection open for a request pipelined while the answer before it waited for its body', async () => {
    const kg = await start({ shutdown: { readinessDelay: '10m' } });
    const authorization = await keyFor(kg);
    const closing = kg.close();
    const { port } = new URL(kg.gatewayUrl);
    let text = '';
    const socket = connect(Number(port), '127.0.0.1');
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const one = (target: string) => `GET ${target} HTTP/1.1\r\nHost: api.example\r\nAuthorization: ${authorization}\r\n\r\n`;
    const arrived = async (url: string) => {
      while (!upstream.received.some((r) => r.url === url)) await new Promise((resolve) => setTimeout(resolve, 10));
    };
    // A's head comes back at once, its body only when released: B is pipelined meanwhile.
    socket.write(one('/headers-held?id=pipelined-a'));
    await arrived('/headers-held?id=pipelined-a');
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.write(one('/anything?pipelined=b'));
    await arrived('/anything?pipelined=b');
    upstream.release('pipelined-a');
    await closed;
    const heads = text.split('HTTP/1.1 ').slice(1);
    expect(heads.map((head) => head.slice(0, 3))).toEqual(['200', '200']);
    expect(heads[0]).not.toMatch(/\r\nconnection: close\r\n/i);
    expect(heads[1]).toMatch(/\r\nconnection: close\r\n/i);
    kg.hurry();
    await closing;
  });

  it('closes its listeners by itself once the readiness delay is over, and says so', async () => {
    const kg = await start({ shutdown: { readinessDelay: '300ms' } });
    await kg.close('SIGTERM');
    expect(kg.logs.text).toContain('keygate stopping (SIGTERM): /health/ready answers 503; serving 0.3 s more');
    expect(kg.logs.text).toMatch(/readiness delay over: closing the listeners \(\d+ connection\(s\) open\)/);
    await expect(kg.call('/anything')).rejects.toThrow();
  });

  it('cuts the readiness delay short when asked again (a second signal), and only once', async () => {
    // Ten minutes: a stop that waited for it would fail the test by its timeout.
    const kg = await start({ shutdown: { readinessDelay: '10m' } });
    const closing = kg.close();
    expect((await kg.admin('/health/ready')).status).toBe(503);
    expect(kg.hurry()).toBe(true);
    await closing;
    expect(kg.hurry()).toBe(false);
    expect(kg.logs.text).toContain('readiness delay cut short');
  });

  it('closes at once without a readiness delay (the default), and a hurry then has nothing to cut', async () => {
    const kg = await start({});
    const closing = kg.close('SIGTERM');
    expect(kg.hurry()).toBe(false);
    await closing;
    expect(kg.logs.text).toContain('keygate stopping (SIGTERM): closing the listeners');
    expect(kg.logs.text).not.toContain('readiness delay');
  });

  it('says how many connections were open as the listeners closed, and how long the stop took', async () => {
    const kg = await start({});
    const authorization = await keyFor(kg);
    const held = kg.call('/held?id=drained', { headers: { authorization } }).then((response) => response.status);
    while (!upstream.received.some((r) => r.url === '/held?id=drained')) await new Promise((resolve) => setTimeout(resolve, 10));
    const closing = kg.close('SIGTERM');
    upstream.release('drained');
    await closing;
    expect(await held).toBe(200);
    const lines = kg.logs.lines.map((line) => JSON.parse(line) as { msg: string; openConnections?: number; ms?: unknown });
    expect(lines.find((line) => line.msg === 'keygate stopping (SIGTERM): closing the listeners')?.openConnections).toBe(1);
    const stopped = lines.find((line) => line.msg === 'keygate stopped');
    expect(typeof stopped?.ms).toBe('number');
    expect(stopped?.ms).toBeGreaterThanOrEqual(0);
  });

  it('cuts an answer still in flight at shutdown.drainTimeout, and says so', async () => {
    const kg = await start({ shutdown: { drainTimeout: '1s' } });
    const authorization = await keyFor(kg);
    const held = kg.call('/held?id=past-drain', { headers: { authorization } }).then(
      (response) => `answered ${response.status}`,
      () => 'cut',
    );
    // The request is upstream (held there) before the stop begins.
    while (!upstream.received.some((r) => r.url === '/held?id=past-drain')) await new Promise((resolve) => setTimeout(resolve, 10));
    await kg.close();
    expect(await held).toBe('cut');
    expect(kg.logs.text).toContain('drain timeout reached: cut 1 gateway connection(s)');
    const logged = kg.logs.lines.map((line) => JSON.parse(line) as { msg: string; status?: number; outcome?: string; target?: string }).find((line) => line.msg === 'request' && line.target === '/held?id=past-drain');
    // As a request whose client left: it was forwarded; its upstream did not fail (docs/operations.md, outcome).
    expect({ status: logged?.status, outcome: logged?.outcome }).toEqual({ status: 499, outcome: 'forwarded' });
    upstream.release('past-drain');
  });

  it('announces each listener\'s keep-alive timeout and closes an idle connection after it', async () => {
    const standard = await start({});
    const brief = await start({ listen: { keepAliveTimeout: '1s' } });
    const authorization = await keyFor(brief);

    const defaultAnswer = await rawRequest(standard.gatewayUrl, 'Bearer nothing', 1_500);
    expect(defaultAnswer.head).toMatch(/^HTTP\/1\.1 401 /);
    expect(defaultAnswer.head).toMatch(/\r\nKeep-Alive: timeout=72(\r\n|$)/i);
    expect(defaultAnswer.closedAfterMs).toBeUndefined();

    const briefAnswer = await rawRequest(brief.gatewayUrl, authorization, 30_000);
    expect(briefAnswer.head).toMatch(/^HTTP\/1\.1 200 /);
    expect(briefAnswer.head).toMatch(/\r\nKeep-Alive: timeout=1(\r\n|$)/i);
    // Closed by keygate once idle for its second (not by the 30 s this test would wait).
    expect(briefAnswer.closedAfterMs).toBeDefined();
  });
});
