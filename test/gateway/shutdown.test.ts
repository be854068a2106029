/**
 * Stopping keygate: requests in flight are answered, and nothing else holds the stop
 * back to the drain timeout.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';

describe('stopping', () => {
  const dir = tempDir('shutdown');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let authorization: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    // A drain timeout far beyond the test's own: a stop that waits for it fails the test.
    kg = await startKeygate({ upstream: { url: upstream.url }, auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }] } }, { dir, drainTimeoutMs: 120_000 });
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    authorization = `Bearer ${(await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'live', scopes: [] }, 'test')).secret}`;
  });

  afterAll(async () => {
    await upstream?.close();
  });

  it('answers the request in flight, closes spare connections that never sent a byte, and stops', async () => {
    // A spare connection, as browsers and load balancers open ahead of need.
    const spare = await new Promise<Socket>((resolve, reject) => {
      const socket = connect(Number(new URL(kg.gatewayUrl).port), '127.0.0.1', () => resolve(socket)).on('error', reject);
    });
    const spareClosed = new Promise<void>((resolve) => spare.once('close', () => resolve()));
    const inFlight = kg.call('/slow?ms=500', { headers: { authorization } });
    await expect.poll(() => upstream.received.some((r) => r.url === '/slow?ms=500')).toBe(true);

    const stopped = kg.close().then(() => 'stopped');
    const response = await inFlight;
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ slow: true });
    await spareClosed;
    expect(await Promise.race([stopped, new Promise((resolve) => setTimeout(() => resolve('still draining after 10 s'), 10_000))])).toBe('stopped');
  });
});
