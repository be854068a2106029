/**
 * Stopping keygate: answers in flight are sent in full, a request that arrives during
 * the drain gets its 503, and nothing else holds the stop back to the drain timeout.
 */
import { request as httpRequest, Agent } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';
import { canConnect } from '../../src/spawned-upstream.js';

const RECORDS = 300_000;

describe('stopping', () => {
  const dir = tempDir('shutdown');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let authorization: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    // A drain timeout far beyond the test's own: a stop that waits for it fails the test.
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        plans: { default: { meters: { units: { limit: 10_000_000 } } } },
        // Records counted in the body: keygate holds the whole answer and sends it at once.
        routes: [{ method: 'GET', path: '/records', cost: { meter: 'units', perRecord: 1, records: { json: 'data' } } }, { method: 'GET', path: '/held' }],
      },
      { dir, drainTimeoutMs: 120_000 },
    );
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    authorization = `Bearer ${(await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'live', scopes: [] }, 'test')).secret}`;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('sends answers in flight in full, answers 503 on a spare connection, closes the idle ones, and stops', async () => {
    const port = Number(new URL(kg.gatewayUrl).port);
    // Two spare connections, as browsers and load balancers open ahead of need: one stays
    // unused, the other carries a request once the drain has begun.
    const openSpare = () =>
      new Promise<Socket>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => resolve(socket)).on('error', reject);
      });
    const unused = await openSpare();
    const late = await openSpare();
    const unusedClosed = new Promise<string>((resolve) => unused.once('close', () => resolve('closed')));
    let lateAnswer = '';
    late.on('data', (d: Buffer) => (lateAnswer += d.toString('latin1')));
    const lateClosed = new Promise<void>((resolve) => late.once('close', () => resolve()));

    // A big answer (about 4 MB) read slowly on a keep-alive connection, and a request held upstream.
    const agent = new Agent({ keepAlive: true });
    let bodyStarted!: () => void;
    const started = new Promise<void>((resolve) => (bodyStarted = resolve));
    const big = new Promise<{ status: number; body: string }>((resolve, reject) => {
      httpRequest(`${kg.gatewayUrl}/records?n=${RECORDS}`, { agent, headers: { authorization } }, (res) => {
        let body = '';
        res.setEncoding('latin1');
        res.on('data', (chunk: string) => {
          if (body === '') bodyStarted();
          body += chunk;
          res.pause();
          setTimeout(() => res.resume(), 2);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      })
        .on('error', reject)
        .end();
    });
    await started;
    // Sent once the big answer is on its way, and held upstream until the drain has begun.
    const held = kg.call('/held?id=drain', { headers: { authorization } });
    await expect.poll(() => upstream.received.some((r) => r.url === '/held?id=drain')).toBe(true);

    const stopped = kg.close().then(() => 'stopped');
    // Within the grace a spare connection is given: its request is refused in the API's way.
    // (Read late because the process stalled, it still is: shutdown-edge.test.ts.)
    late.write('GET /anything HTTP/1.1\r\nHost: keygate\r\n\r\n');
    await expect.poll(() => canConnect('127.0.0.1', Number(new URL(kg.gatewayUrl).port)), { timeout: 10_000 }).toBe(false);
    upstream.release('drain');

    const heldResponse = await held;
    expect(heldResponse.status).toBe(200);
    expect(await heldResponse.json()).toEqual({ held: 'drain' });
    const bigResponse = await big;
    expect(bigResponse.status).toBe(200);
    expect((JSON.parse(bigResponse.body) as { data: unknown[] }).data).toHaveLength(RECORDS);
    await lateClosed;
    expect(lateAnswer).toMatch(/^HTTP\/1\.1 503 /);
    expect(lateAnswer).toMatch(/\r\nconnection: close\r\n/i);
    expect(lateAnswer).toMatch(/\r\ncontent-type: application\/problem\+json/i);
    expect(JSON.parse(lateAnswer.slice(lateAnswer.indexOf('\r\n\r\n') + 4))).toMatchObject({ status: 503 });
    // Its log line says why: keygate was stopping (not a backend outage, which answers the same 503).
    const refused = kg.logs.lines.map((line) => JSON.parse(line) as { msg: string; status?: number; reason?: string }).find((line) => line.msg === 'request' && line.status === 503);
    expect(refused?.reason).toBe('stopping');

    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise((resolve) => (timer = setTimeout(() => resolve('still draining after 10 s'), 10_000)));
    try {
      expect(await Promise.race([unusedClosed, deadline])).toBe('closed');
      expect(await Promise.race([stopped, deadline])).toBe('stopped');
    } finally {
      clearTimeout(timer);
      agent.destroy();
    }
  });
});
