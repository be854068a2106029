/**
 * The admin API's view of auth.unknownKeys: the client addresses this process blocked
 * (GET /v1/address-blocks), and a block lifted without a reload (DELETE
 * /v1/address-blocks/{address}, an IPv6 address lifting its /64), audited. Real sockets,
 * a real SQLite file, a controlled clock; clients told apart by X-Forwarded-For from a
 * trusted proxy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from './support/keygate.js';
import { startTestUpstream, type TestUpstream } from './support/upstream.js';
import { tempDir } from './support/temp.js';
import { logLines } from './support/log-lines.js';

const START = Date.parse('2026-11-10T12:00:00Z');
const READ_TOKEN = 'test-read-token-0123456789';

const json = async (r: Response) => ({ status: r.status, type: r.headers.get('content-type'), body: (await r.json()) as any });

describe('GET and DELETE /v1/address-blocks (auth.unknownKeys on)', () => {
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let now = START;

  /** A request with a key never issued, from `client`. */
  const guess = (client: string) => kg.call('/data', { headers: { authorization: `Bearer ${kg.runtime.keyFormat.generate('live')}`, 'x-forwarded-for': client } });

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        trustedProxies: ['127.0.0.1'],
        auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }], unknownKeys: { limit: 3, window: '1m', block: '10m' } },
      },
      { dir: tempDir('admin-address-blocks'), clock: () => now, adminReadToken: READ_TOKEN },
    );
  });
  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('lists the blocks in force, IPv6 as its /64, and lifts one: the address is served again and counted afresh; audited', async () => {
    expect((await json(await kg.admin('/v1/address-blocks'))).body).toEqual({ enabled: true, policy: { limit: 3, window: '1m', block: '10m' }, blocks: [] });
    for (let i = 0; i < 3; i++) expect((await guess('203.0.113.5')).status).toBe(401);
    now += 1_000;
    for (const host of ['2001:db8:0:7::1', '2001:db8:0:7::2', '2001:db8:0:7::3']) expect((await guess(host)).status).toBe(401);
    expect((await guess('203.0.113.5')).status).toBe(429);

    const listed = await json(await kg.admin('/v1/address-blocks'));
    expect(listed.status).toBe(200);
    expect(listed.body.blocks).toEqual([
      { address: '203.0.113.5', unknownKeys: 3, blockedAt: new Date(START).toISOString(), blockedUntil: new Date(START + 600_000).toISOString() },
      { address: '2001:db8:0:7::/64', unknownKeys: 3, blockedAt: new Date(START + 1_000).toISOString(), blockedUntil: new Date(START + 601_000).toISOString() },
    ]);
    // A read-only token may look, not lift.
    expect((await fetch(`${kg.adminUrl}/v1/address-blocks`, { headers: { authorization: `Bearer ${READ_TOKEN}` } })).status).toBe(200);
    expect((await fetch(`${kg.adminUrl}/v1/address-blocks/203.0.113.5`, { method: 'DELETE', headers: { authorization: `Bearer ${READ_TOKEN}` } })).status).toBe(403);

    now += 1_000;
    const lifted = await json(await kg.admin('/v1/address-blocks/203.0.113.5', { method: 'DELETE' }));
    expect(lifted).toEqual({ status: 200, type: expect.stringMatching(/^application\/json/), body: listed.body.blocks[0] });
    // Served as any address: its unknown keys are answered unknown_key and counted from zero.
    for (let i = 0; i < 3; i++) expect((await guess('203.0.113.5')).status).toBe(401);
    expect((await guess('203.0.113.5')).status).toBe(429);

    // Any address of the /64 lifts it; the /64 as listed does too.
    expect((await json(await kg.admin('/v1/address-blocks/2001:db8:0:7::abcd', { method: 'DELETE' }))).body.address).toBe('2001:db8:0:7::/64');
    expect((await guess('2001:db8:0:7::9')).status).toBe(401);
    for (let i = 0; i < 2; i++) await guess('2001:db8:0:7::9');
    expect((await json(await kg.admin(`/v1/address-blocks/${encodeURIComponent('2001:db8:0:7::/64')}`, { method: 'DELETE' }))).body.address).toBe('2001:db8:0:7::/64');

    // None in force: 404 in problem details, saying so.
    const none = await json(await kg.admin('/v1/address-blocks/2001:db8:0:7::abcd', { method: 'DELETE' }));
    expect(none).toMatchObject({ status: 404, type: expect.stringMatching(/^application\/problem\+json/), body: { detail: 'no block of 2001:db8:0:7::/64 is in force in this keygate process (GET /v1/address-blocks lists them; each process has its own)' } });
    const notAnAddress = await json(await kg.admin('/v1/address-blocks/example.com', { method: 'DELETE' }));
    expect(notAnAddress).toMatchObject({ status: 400, body: { detail: expect.stringMatching(/^params\.address: an IP address \(192\.0\.2\.7, 2001:db8::1\) or an IPv6 \/64/) } });

    // Audited with who lifted what, and logged; never a key.
    const audit = (await json(await kg.admin('/v1/audit'))).body.filter((e: { action: string }) => e.action === 'address.unblocked');
    expect(audit.map((e: { actor: string; detail: unknown }) => [e.actor, e.detail])).toEqual([
      ['admin-api', { address: '2001:db8:0:7::/64', unknownKeys: 3, blockedAt: new Date(START + 2_000).toISOString(), blockedUntil: new Date(START + 602_000).toISOString() }],
      ['admin-api', { address: '2001:db8:0:7::/64', unknownKeys: 3, blockedAt: new Date(START + 1_000).toISOString(), blockedUntil: new Date(START + 601_000).toISOString() }],
      ['admin-api', { address: '203.0.113.5', unknownKeys: 3, blockedAt: new Date(START).toISOString(), blockedUntil: new Date(START + 600_000).toISOString() }],
    ]);
    expect(logLines(kg.logs.text).filter((line) => line.msg.startsWith('client address block lifted')).map((line) => line.client)).toEqual(['203.0.113.5', '2001:db8:0:7::/64', '2001:db8:0:7::/64']);
    // What is left: the block started again from 203.0.113.5.
    expect((await json(await kg.admin('/v1/address-blocks'))).body.blocks.map((b: { address: string }) => b.address)).toEqual(['203.0.113.5']);
  });

  it('no longer lists a block once it has ended', async () => {
    now += 600_000;
    expect((await json(await kg.admin('/v1/address-blocks'))).body.blocks).toEqual([]);
  });
});

describe('GET and DELETE /v1/address-blocks (auth.unknownKeys off)', () => {
  let kg: TestKeygate;
  afterAll(async () => {
    await kg?.close();
  });

  it('answers an empty list saying the setting is off; a lift is a 404 saying why', async () => {
    kg = await startKeygate({ upstream: { url: 'http://127.0.0.1:9' } }, { dir: tempDir('admin-address-blocks-off') });
    expect(await json(await kg.admin('/v1/address-blocks'))).toEqual({ status: 200, type: expect.stringMatching(/^application\/json/), body: { enabled: false, policy: null, blocks: [] } });
    const lift = await json(await kg.admin('/v1/address-blocks/203.0.113.5', { method: 'DELETE' }));
    expect(lift).toMatchObject({ status: 404, body: { detail: 'no block of 203.0.113.5: auth.unknownKeys is off in this profile, so no address is blocked' } });
  });
});
