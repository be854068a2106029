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
    expect((await json(await kg.admin('/v1/address-blocks'))).body).toEqual({ enabled: true, policy: { limit: 3, window: '1m', block: '10m' }, from: 'this-process', blocks: [] });
    for (let i = 0; i < 3; i++) expect((await guess('203.0.113.5')).status).toBe(401);
    now += 1_000;
    for (const host of ['2001:db8:0:7::1', '2001:db8:0:7::2', '2001:db8:0:7::3']) expect((await guess(host)).status).toBe(401);
    expect((await guess('203.0.113.5')).status).toBe(429);

    const listed = await json(await kg.admin('/v1/address-blocks'));
    expect([listed.status, listed.body.from]).toEqual([200, 'this-process']);
    expect(listed.body.blocks).toEqual([
      { address: '203.0.113.5', unknownKeys: 3, blockedAt: new Date(START).toISOString(), blockedUntil: new Date(START + 600_000).toISOString() },
      { address: '2001:db8:0:7::/64', unknownKeys: 3, blockedAt: new Date(START + 1_000).toISOString(), blockedUntil: new Date(START + 601_000).toISOString() },
    ]);
    // A read-only token may look, not lift.
    expect((await fetch(`${kg.adminUrl}/v1/address-blocks`, { headers: { authorization: `Bearer ${READ_TOKEN}` } })).status).toBe(200);
    expect((await fetch(`${kg.adminUrl}/v1/address-blocks/203.0.113.5`, { method: 'DELETE', headers: { authorization: `Bearer ${READ_TOKEN}` } })).status).toBe(403);

    now += 1_000;
    const lifted = await json(await kg.admin('/v1/address-blocks/203.0.113.5', { method: 'DELETE' }));
    // The block as listed, lifted in this process, which alone held it (memory counters).
    expect(lifted).toEqual({ status: 200, type: expect.stringMatching(/^application\/json/), body: { ...listed.body.blocks[0], from: 'this-process' } });
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
    expect(none).toMatchObject({ status: 404, type: expect.stringMatching(/^application\/problem\+json/), body: { detail: 'no block of 2001:db8:0:7::/64 is in force (GET /v1/address-blocks lists them; with memory counters each process has its own)' } });
    const notAnAddress = await json(await kg.admin('/v1/address-blocks/example.com', { method: 'DELETE' }));
    expect(notAnAddress).toMatchObject({ status: 400, body: { detail: expect.stringMatching(/^params\.address: an IP address \(192\.0\.2\.7, 2001:db8::1\) or an IPv6 \/64/) } });

    // Audited with who lifted what, and logged; never a key.
    const audit = (await json(await kg.admin('/v1/audit'))).body.filter((e: { action: string }) => e.action === 'address.unblocked');
    expect(audit.map((e: { actor: string; detail: unknown }) => [e.actor, e.detail])).toEqual([
      ['admin-api', { address: '2001:db8:0:7::/64', unknownKeys: 3, blockedAt: new Date(START + 2_000).toISOString(), blockedUntil: new Date(START + 602_000).toISOString(), from: 'this-process' }],
      ['admin-api', { address: '2001:db8:0:7::/64', unknownKeys: 3, blockedAt: new Date(START + 1_000).toISOString(), blockedUntil: new Date(START + 601_000).toISOString(), from: 'this-process' }],
      ['admin-api', { address: '203.0.113.5', unknownKeys: 3, blockedAt: new Date(START).toISOString(), blockedUntil: new Date(START + 600_000).toISOString(), from: 'this-process' }],
    ]);
    expect(logLines(kg.logs.text).filter((line) => line.msg.startsWith('client address block lifted')).map((line) => line.client)).toEqual(['203.0.113.5', '2001:db8:0:7::/64', '2001:db8:0:7::/64']);
    // What is left: the block started again from 203.0.113.5.
    expect((await json(await kg.admin('/v1/address-blocks'))).body.blocks.map((b: { address: string }) => b.address)).toEqual(['203.0.113.5']);
  });

  it('documents how far a lift reached (from) in the OpenAPI document, as the list\'s', async () => {
    const doc = (await (await fetch(`${kg.adminUrl}/openapi.json`)).json()) as { paths: Record<string, Record<string, any>> };
    const lifted = doc.paths['/v1/address-blocks/{address}']?.delete?.responses['200'].content['application/json'].schema;
    expect(lifted.required).toContain('from');
    expect(lifted.properties.from).toMatchObject({ enum: ['shared', 'this-process', 'this-process-redis-away', 'this-process-redis-refused'], description: expect.stringContaining('this-process-redis-away: Redis counters, but Redis does not answer: in this process alone') });
    expect(lifted.properties.from.description).toContain('this-process-redis-refused: the same, but Redis answers, with an error (NOPERM from its ACL, READONLY…)');
    const listed = doc.paths['/v1/address-blocks']?.get?.responses['200'].content['application/json'].schema;
    expect(listed.properties.from.anyOf).toContainEqual(expect.objectContaining({ enum: ['shared', 'this-process', 'this-process-redis-away', 'this-process-redis-refused'] }));
    expect(listed.properties.from.description).toContain('this-process-redis-refused: the same, but Redis answers, with an error (NOPERM from its ACL, READONLY…): until Redis takes these commands again');
  });

  it('no longer lists a block once it has ended', async () => {
    now += 600_000;
    expect((await json(await kg.admin('/v1/address-blocks'))).body.blocks).toEqual([]);
  });
});

describe('GET /v1/address-blocks a page at a time (?limit=, ?after= from the Link header)', () => {
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let now = START;
  /** Blocked in this order, the IPv6 ones as their /64; two begin in the same millisecond (ordered by address). */
  const CLIENTS = ['198.51.100.9', '203.0.113.5', '2001:db8:0:7::1', '192.0.2.2', '192.0.2.1'];

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        trustedProxies: ['127.0.0.1'],
        auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }], unknownKeys: { limit: 1, window: '1m', block: '10m' } },
      },
      { dir: tempDir('admin-address-blocks-pages'), clock: () => now },
    );
    for (const [i, client] of CLIENTS.entries()) {
      // The last two in the same millisecond.
      if (i < 4) now += 1_000;
      const response = await kg.call('/data', { headers: { authorization: `Bearer ${kg.runtime.keyFormat.generate('live')}`, 'x-forwarded-for': client } });
      expect(response.status).toBe(401);
    }
  });
  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  /** Follows the Link headers from `first`: each page's addresses, and the Link of each. */
  async function pages(first: string): Promise<{ addresses: string[][]; links: (string | null)[] }> {
    const addresses: string[][] = [];
    const links: (string | null)[] = [];
    for (let next: string | undefined = first; next !== undefined; ) {
      const page = await kg.admin(next);
      expect(page.status).toBe(200);
      const body = (await page.json()) as { enabled: boolean; policy: unknown; blocks: { address: string }[] };
      // Each page is the whole answer's shape: the setting and its policy come with every page.
      expect([body.enabled, body.policy]).toEqual([true, { limit: 1, window: '1m', block: '10m' }]);
      addresses.push(body.blocks.map((b) => b.address));
      links.push(page.headers.get('link'));
      next = /^<([^>]+)>; rel="next"$/.exec(page.headers.get('link') ?? '')?.[1];
    }
    return { addresses, links };
  }

  it('without ?limit= lists every block, oldest first, with no Link header (as before pages)', async () => {
    const all = await kg.admin('/v1/address-blocks');
    expect(all.headers.get('link')).toBeNull();
    expect(((await all.json()) as { blocks: { address: string }[] }).blocks.map((b) => b.address)).toEqual(['198.51.100.9', '203.0.113.5', '2001:db8:0:7::/64', '192.0.2.1', '192.0.2.2']);
  });

  it('with ?limit=2 gives two blocks a page, oldest first, each page linking to the next; the last links nowhere', async () => {
    const { addresses, links } = await pages('/v1/address-blocks?limit=2');
    expect(addresses).toEqual([['198.51.100.9', '203.0.113.5'], ['2001:db8:0:7::/64', '192.0.2.1'], ['192.0.2.2']]);
    expect(links[0]).toMatch(/^<\/v1\/address-blocks\?limit=2&after=[\w-]+>; rel="next"$/);
    expect(links[2]).toBeNull();
  });

  it('a block lifted after its page was read neither skips nor repeats one on the next page', async () => {
    const first = await kg.admin('/v1/address-blocks?limit=3');
    const next = /^<([^>]+)>; rel="next"$/.exec(first.headers.get('link') ?? '')?.[1] as string;
    // The last block of the page, the one the cursor names, is lifted meanwhile.
    expect((await kg.admin(`/v1/address-blocks/${encodeURIComponent('2001:db8:0:7::/64')}`, { method: 'DELETE' })).status).toBe(200);
    expect(((await (await kg.admin(next)).json()) as { blocks: { address: string }[] }).blocks.map((b) => b.address)).toEqual(['192.0.2.1', '192.0.2.2']);
  });

  it('refuses a limit or cursor it did not give with a 400 in problem details, as the other lists do', async () => {
    for (const [query, detail] of [
      ['limit=0', /^querystring\.limit: a whole number from 1 to 1000/],
      ['limit=1001', /^querystring\.limit: a whole number from 1 to 1000/],
      ['limit=2&after=not-a-cursor', /^after: not a cursor keygate gave/],
      // A cursor of another list (a key's id where an address goes) is no block's.
      [`limit=2&after=${Buffer.from(`${START}.key_0123456789abcdef`).toString('base64url')}`, /^after: not a cursor keygate gave/],
      ['cursor=abc', /cursor/],
    ] as const) {
      const answer = await json(await kg.admin(`/v1/address-blocks?${query}`));
      expect([answer.status, answer.type]).toEqual([400, expect.stringMatching(/^application\/problem\+json/)]);
      expect(answer.body.detail).toMatch(detail);
    }
  });
});

describe('GET and DELETE /v1/address-blocks (auth.unknownKeys off)', () => {
  let kg: TestKeygate;
  afterAll(async () => {
    await kg?.close();
  });

  it('answers an empty list saying the setting is off; a lift is a 404 saying why', async () => {
    kg = await startKeygate({ upstream: { url: 'http://127.0.0.1:9' } }, { dir: tempDir('admin-address-blocks-off') });
    expect(await json(await kg.admin('/v1/address-blocks'))).toEqual({ status: 200, type: expect.stringMatching(/^application\/json/), body: { enabled: false, policy: null, from: null, blocks: [] } });
    const lift = await json(await kg.admin('/v1/address-blocks/203.0.113.5', { method: 'DELETE' }));
    expect(lift).toMatchObject({ status: 404, body: { detail: 'no block of 203.0.113.5: auth.unknownKeys is off in this profile, so no address is blocked' } });
  });
});
