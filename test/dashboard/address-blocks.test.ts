/**
 * The operator's Address blocks page, in real Chromium: the client addresses blocked for
 * unknown keys (`auth.unknownKeys`), as GET /v1/address-blocks lists them (an IPv6
 * address as its /64), a page at a time; a block lifted with its Lift button is served
 * again at the gateway and counted afresh, audited as address.unblocked under the
 * operator's email and address. An empty list says so; a lift sent again changes nothing;
 * a hand-edited or token-less form is refused; members never see the page. While Redis
 * does not answer, or answers with an error (an ACL that refuses scripts: NOPERM), the page
 * says its list and its lifts are this process's alone, and why. Clients are
 * told apart by X-Forwarded-For from a trusted proxy. Each test starts with no block and
 * makes those it needs, so any one of them can be run alone.
 */
import type { Page } from 'playwright-core';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { utcSecondUp } from '../../src/meters/period.js';
import { tempDir } from '../support/temp.js';
import { chromiumAvailable, expectHeading, horizontalOverflow, MEMBER, newAccount, newContext, OPERATOR, PHONE, postFromPage, screenshot, signIn, startDashboard, textOf, useDashboard, type Dashboard, type DashboardFixture } from './support.js';
import { addMember, signedInOperator, Visitor } from './visitor.js';
import { startRedisServer, type RedisServer } from '../scale-out/cluster.js';

/** As the page says it with the memory counters these tests run on. */
const INTRO =
  'A client address that presents 1 unknown key within 1m is refused for 10m (auth.unknownKeys), but for keys in use. Oldest first, 100 to a page. Each keygate process counts and blocks by itself (memory counters): this page shows and lifts the blocks of the process that answered it; another process’s, through its own admin API. Lifting a block serves the address again and counts its unknown keys afresh.';
/** Above the list while Redis does not answer. */
const REDIS_AWAY =
  'The counters (Redis) do not answer, so this list shows only the blocks this keygate process holds: others may be in force. Until Redis is back, Lift ends a block in this process alone (one Redis holds comes back once it answers), and a block not listed here cannot be lifted.';
/** Above the list while Redis answers with an error. */
const REDIS_REFUSED =
  'The counters (Redis) answer with an error, so this list shows only the blocks this keygate process holds: others may be in force. Until Redis takes commands again, Lift ends a block in this process alone (one Redis holds comes back once it does), and a block not listed here cannot be lifted.';
/** A port nothing listens on (tcpmux: no service runs there). */
const UNREACHABLE_PORT = 1;
/** The dashboard's page size (pages/address-blocks.ts). */
const PER_PAGE = 100;

interface ListedBlock {
  address: string;
  unknownKeys: number;
  blockedAt: string;
  blockedUntil: string;
}

/** Lifts every block the process holds, unaudited (not through the admin API or the page): a test's starting point. */
async function liftEvery(fixture: Dashboard): Promise<void> {
  const limit = fixture.keygate.runtime.unknownKeyLimit;
  const now = fixture.clock.now();
  for (const block of (await limit.blocksInForce(now)).blocks) await limit.lift(block.address, now);
}

describe.skipIf(!chromiumAvailable())('dashboard: the operator’s address blocks (auth.unknownKeys)', () => {
  const fixture = useDashboard('keygate-dashboard-address-blocks', (profile) => ({ ...profile, trustedProxies: ['127.0.0.1'], auth: { ...profile.auth, unknownKeys: { limit: 1, window: '1m', block: '10m' } } }));
  let page: Page;

  /** A request with a key never issued, from `client`: its status. */
  const guess = async (client: string) => {
    const response = await fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${fixture.keygate.runtime.keyFormat.generate('live')}`, 'x-forwarded-for': client } });
    await response.arrayBuffer();
    return response.status;
  };
  /** The admin API's list, every block. */
  const adminList = async () => ((await (await fixture.keygate.admin('/v1/address-blocks')).json()) as { blocks: ListedBlock[] }).blocks;
  /** A block as the page's row reads: address, unknown keys, began (to the minute), ends (to the second, rounded up), both UTC as their headings say. */
  const rowOf = (block: ListedBlock) => {
    const began = block.blockedAt;
    return [block.address, String(block.unknownKeys), `${began.slice(0, 10)} ${began.slice(11, 16)}`, utcSecondUp(Date.parse(block.blockedUntil))];
  };
  /** Blocks each client (the limit is 1: its first unknown key begins the block). */
  const block = async (...clients: string[]) => {
    for (const client of clients) expect(await guess(client)).toBe(401);
  };
  /** `count` blocks, of 198.51.100.1 on, their starts a millisecond apart every ten. */
  const blockMany = async (count: number) => {
    for (let i = 1; i <= count; i++) {
      if (i % 10 === 0) fixture.clock.advance(1);
      await block(`198.51.100.${i}`);
    }
  };
  const rows = () => page.getByRole('table', { name: 'Address blocks' }).locator('tbody tr');
  const shownRows = async () => Promise.all((await rows().all()).map(async (row) => (await row.locator('td').allInnerTexts()).slice(0, 4).map((cell) => cell.trim())));

  beforeAll(async () => {
    await addMember(fixture.keygate.runtime, OPERATOR, null, 'operator');
    await addMember(fixture.keygate.runtime, MEMBER, await newAccount(fixture, 'Acme Analytics'), 'member');
    page = await (await newContext(fixture.browser, fixture.dashboardUrl)).newPage();
    await page.goto('/sign-in');
    await signIn(page, OPERATOR);
  });

  beforeEach(() => liftEvery(fixture));

  it('is linked from the operator’s navigation, says what it lists, and that no address is blocked while none is', async () => {
    await page.goto('/accounts');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Address blocks' }).click();
    await expectHeading(page, 'Address blocks');
    expect(await textOf(page.locator('main p').first())).toBe(INTRO);
    expect(await textOf(page.locator('.empty'))).toBe('No address is blocked now.');
    expect(await page.getByRole('table').count()).toBe(0);
  });

  it('lists the blocks in force as the admin API does, oldest first, an IPv6 address as its /64, with the unknown keys, when it began and when it ends', async () => {
    expect(await guess('203.0.113.5')).toBe(401);
    fixture.clock.advance(1_000);
    expect(await guess('2001:db8:0:7::1')).toBe(401);
    expect([await guess('203.0.113.5'), await guess('2001:db8:0:7::2')]).toEqual([429, 429]);
    const listed = await adminList();
    expect(listed.map((block) => block.address)).toEqual(['203.0.113.5', '2001:db8:0:7::/64']);
    await page.reload();
    expect(await page.getByRole('table', { name: 'Address blocks' }).locator('thead th').allTextContents()).toEqual(['Address', 'Unknown keys', 'Began (UTC)', 'Ends (UTC)', 'Actions']);
    expect(await shownRows()).toEqual(listed.map(rowOf));
    await screenshot(page, 'address-blocks');
  });

  it('puts each Lift button at the top of its row, level with the address, as the keys table puts its buttons', async () => {
    await block('203.0.113.9');
    await page.goto('/address-blocks');
    const row = rows().filter({ hasText: '203.0.113.9' });
    const address = await row.locator('td[data-label="Address"]').boundingBox();
    const lift = await row.getByRole('button', { name: 'Lift the block of 203.0.113.9' }).boundingBox();
    // Both start at the cell's padding: no form margin pushing the button down the row.
    expect(Math.abs((lift?.y ?? Infinity) - (address?.y ?? 0) - 8.8), `the Lift button's top at ${lift?.y}, the address cell's at ${address?.y}`).toBeLessThanOrEqual(1);
  });

  it('lifts a block with its Lift button: served again and counted afresh, audited as address.unblocked under the operator, from their address', async () => {
    await block('203.0.113.5', '2001:db8:0:7::1');
    await page.goto('/address-blocks');
    await page.getByRole('button', { name: 'Lift the block of 203.0.113.5' }).click();
    await expectHeading(page, 'Address blocks');
    expect(await textOf(page.getByRole('status'))).toBe('The block of 203.0.113.5 is lifted: its requests are served again, and its unknown keys counted afresh.');
    expect((await shownRows()).map((row) => row[0])).toEqual(['2001:db8:0:7::/64']);
    expect((await adminList()).map((block) => block.address)).toEqual(['2001:db8:0:7::/64']);
    const [lifted] = await fixture.keygate.runtime.store.listAudit({ limit: 1 });
    expect(lifted).toMatchObject({ action: 'address.unblocked', actor: OPERATOR, actorAddress: '127.0.0.1', detail: { address: '203.0.113.5', unknownKeys: 1 } });
    // Its next unknown key is answered as unknown (and counted: the limit is 1), the one after refused again.
    expect([await guess('203.0.113.5'), await guess('203.0.113.5')]).toEqual([401, 429]);
    // The audit log says it too, under the operator.
    await page.goto('/audit');
    expect(await textOf(page.locator('tbody tr', { hasText: 'Lifted a client address' }).first())).toContain(OPERATOR);
  });

  it('says a lift sent again (Back, a second operator) changes nothing; refuses a hand-edited address without repeating it, and a form without the token', async () => {
    await block('203.0.113.5', '2001:db8:0:7::1');
    const again = await Visitor.signedIn(fixture.dashboardUrl, OPERATOR, '/address-blocks');
    await page.goto('/address-blocks');
    await page.getByRole('button', { name: 'Lift the block of 2001:db8:0:7::/64' }).click();
    await expectHeading(page, 'Address blocks');
    const audited = await fixture.keygate.runtime.store.listAudit({ limit: 1 });
    // The same lift from the page shown before.
    const stale = await again.post('/address-blocks/lift', { address: '2001:db8:0:7::/64' });
    expect([stale.status, stale.location]).toEqual([303, '/address-blocks']);
    expect((await again.get('/address-blocks')).html).toContain('Nothing changed: 2001:db8:0:7::/64 is not blocked now (its block ended, or was lifted already).');
    expect(await fixture.keygate.runtime.store.listAudit({ limit: 1 })).toEqual(audited);

    const pasted = 'rk_live_pastedbymistake0123456789';
    const edited = await again.post('/address-blocks/lift', { address: pasted });
    expect([edited.status, edited.heading, edited.alert]).toEqual([400, 'Address blocks', 'The form did not name a blocked address as this page lists them. Lift a block with its own button.']);
    expect(edited.html).not.toContain(pasted);

    // 203.0.113.5 is still blocked: a post without the page's token lifts nothing.
    await page.reload();
    expect((await postFromPage(page, '/address-blocks/lift', { address: '203.0.113.5' }, { withToken: false })).status).toBe(403);
    expect((await adminList()).map((block) => block.address)).toEqual(['203.0.113.5']);
  });

  it('keeps the page from members: no link, and a 404 for the page and the form', async () => {
    await block('203.0.113.5');
    const member = await Visitor.signedIn(fixture.dashboardUrl, MEMBER, '/keys');
    expect((await member.get('/keys')).html).not.toContain('href="/address-blocks"');
    expect((await member.get('/address-blocks')).status).toBe(404);
    expect((await member.post('/address-blocks/lift', { address: '203.0.113.5' })).status).toBe(404);
    expect((await adminList()).map((block) => block.address)).toEqual(['203.0.113.5']);
  });

  it(`lists ${PER_PAGE} blocks to a page, each once, in the admin API's order, with links to the next page and back`, async () => {
    await blockMany(PER_PAGE + 2);
    const every = (await adminList()).map((block) => block.address);
    expect(every).toHaveLength(PER_PAGE + 2);
    await page.goto('/address-blocks');
    const first = (await shownRows()).map((row) => row[0]);
    expect(first).toEqual(every.slice(0, PER_PAGE));
    expect(await page.getByRole('link', { name: 'First page' }).count()).toBe(0);
    await page.getByRole('link', { name: `Next ${PER_PAGE} blocks` }).click();
    await expectHeading(page, 'Address blocks');
    expect((await shownRows()).map((row) => row[0])).toEqual(every.slice(PER_PAGE));
    expect(await page.getByRole('link', { name: /^Next/ }).count()).toBe(0);
    // A lift from the second page leads back to the first.
    await page.getByRole('button', { name: `Lift the block of ${every.at(-1) as string}` }).click();
    expect(await textOf(page.getByRole('status'))).toBe(`The block of ${every.at(-1) as string} is lifted: its requests are served again, and its unknown keys counted afresh.`);
    expect((await shownRows()).map((row) => row[0])).toEqual(first);
    await page.getByRole('link', { name: `Next ${PER_PAGE} blocks` }).click();
    expect((await shownRows()).map((row) => row[0])).toEqual(every.slice(PER_PAGE, -1));
    await page.getByRole('link', { name: 'First page' }).click();
    expect((await shownRows()).map((row) => row[0])).toEqual(first);
  });

  it('fits a phone: the navigation and the blocks as cards, nothing to scroll sideways', async () => {
    await blockMany(PER_PAGE + 1);
    const phone = await (await newContext(fixture.browser, fixture.dashboardUrl, PHONE)).newPage();
    try {
      await phone.goto('/sign-in');
      await signIn(phone, OPERATOR);
      await phone.goto('/address-blocks');
      await expectHeading(phone, 'Address blocks');
      expect(await phone.getByRole('button', { name: /^Lift the block of / }).count()).toBe(PER_PAGE);
      expect(await horizontalOverflow(phone)).toBe(0);
      await screenshot(phone, 'phone-address-blocks');
    } finally {
      await phone.context().close();
    }
  });
});

describe.skipIf(!chromiumAvailable())('dashboard: the address blocks page with auth.unknownKeys off', () => {
  let fixture: DashboardFixture;

  beforeAll(async () => {
    fixture = await startDashboard(tempDir('keygate-dashboard-address-blocks-off'));
  });
  afterAll(async () => {
    await fixture?.close();
  });

  it('says that nothing is counted or blocked, and shows no list', async () => {
    const operator = await signedInOperator(fixture, '/address-blocks');
    const shown = await operator.get('/address-blocks');
    expect([shown.status, shown.heading]).toEqual([200, 'Address blocks']);
    expect(shown.html).toContain('<p>Unknown keys are not counted and no address is blocked: <code>auth.unknownKeys</code> is off in this profile.</p>');
    expect(shown.html).not.toContain('<table');
    expect(shown.html).not.toContain('No address is blocked now');
  });
});

describe.skipIf(!chromiumAvailable())('dashboard: lifting an address block while Redis is away', () => {
  let fixture: DashboardFixture;

  beforeAll(async () => {
    // Redis counters on a port nothing listens on: every call to Redis fails, as while it is down.
    fixture = await startDashboard(tempDir('keygate-dashboard-address-blocks-away'), (profile) => ({ ...profile, counters: `redis://127.0.0.1:${UNREACHABLE_PORT}`, auth: { ...profile.auth, unknownKeys: { limit: 1, window: '1m', block: '10m' } } }));
    await addMember(fixture.keygate.runtime, OPERATOR, null, 'operator');
  });
  beforeEach(() => liftEvery(fixture));
  afterAll(async () => {
    await fixture?.close();
  });

  /** One unknown key (the limit is 1) from 127.0.0.1 blocks it, in this process alone. */
  const blockHere = async () => {
    const guessed = await fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${fixture.keygate.runtime.keyFormat.generate('live')}` } });
    await guessed.arrayBuffer();
    expect(guessed.status).toBe(401);
  };

  it('says the block cannot be lifted now (503), not a fault of the page, and lists this process’s blocks, saying they are this process’s alone (the admin API too)', async () => {
    await blockHere();
    const operator = await Visitor.signedIn(fixture.dashboardUrl, OPERATOR, '/address-blocks');
    const listed = await operator.get('/address-blocks');
    expect([listed.status, listed.heading]).toEqual([200, 'Address blocks']);
    expect(listed.html).not.toContain('Every keygate process shares these blocks');
    expect(listed.html).toContain('Keygate processes share these blocks through the counters (Redis) while Redis answers.</p>');
    // Nor does it promise what a lift cannot do meanwhile (other processes may go on refusing the address).
    expect(listed.html).not.toContain('Lifting a block serves the address again');
    expect(listed.html).toContain(`<div class="notice warning" role="status"><p>${REDIS_AWAY}</p></div>`);
    expect(listed.html).toContain('<code>127.0.0.1</code>');
    const admin = await fixture.keygate.admin('/v1/address-blocks');
    expect([admin.status, await admin.json()]).toEqual([
      200,
      { enabled: true, policy: { limit: 1, window: '1m', block: '10m' }, from: 'this-process-redis-away', blocks: [expect.objectContaining({ address: '127.0.0.1', unknownKeys: 1 })] },
    ]);
    const lift = await operator.post('/address-blocks/lift', { address: '203.0.113.9' });
    expect([lift.status, lift.heading, lift.alert]).toEqual([503, 'Address blocks', 'The block of 203.0.113.9 cannot be lifted now: the counters (Redis) do not answer. Try again once they are back.']);
  });

  it('lifts a listed block in this process only, and says so (the other processes may still refuse it; Redis brings its block back): the admin API and the audit entry too', async () => {
    await blockHere();
    const operator = await Visitor.signedIn(fixture.dashboardUrl, OPERATOR, '/address-blocks');
    const lift = await operator.post('/address-blocks/lift', { address: '127.0.0.1' });
    expect([lift.status, lift.location]).toEqual([303, '/address-blocks']);
    const shown = await operator.get('/address-blocks');
    expect(shown.html).toContain(
      '<div class="notice warning" role="status"><p>The block of 127.0.0.1 is lifted in this keygate process only: the counters (Redis) do not answer, so other keygate processes may still refuse the address, and a block Redis holds comes back once it answers (lift it again then).</p></div>',
    );
    expect(shown.html).not.toContain('is lifted: its requests are served again');
    expect(shown.html).not.toContain('<code>127.0.0.1</code>');
    const [audited] = await fixture.keygate.runtime.store.listAudit({ limit: 1 });
    expect(audited).toMatchObject({ action: 'address.unblocked', actor: OPERATOR, detail: { address: '127.0.0.1', unknownKeys: 1, from: 'this-process-redis-away' } });

    // The admin API's lift says the same of a block held here.
    await blockHere();
    const lifted = await fixture.keygate.admin('/v1/address-blocks/127.0.0.1', { method: 'DELETE' });
    expect([lifted.status, await lifted.json()]).toEqual([200, expect.objectContaining({ address: '127.0.0.1', unknownKeys: 1, from: 'this-process-redis-away' })]);
  });
});


describe.skipIf(!chromiumAvailable())('dashboard: address blocks while Redis answers with an error', () => {
  let fixture: DashboardFixture;
  let server: RedisServer;
  let raw: Redis;

  beforeAll(async () => {
    // A private redis-server whose ACL, once keygate has started, refuses every script (NOPERM): reachable, refusing.
    server = await startRedisServer();
    fixture = await startDashboard(tempDir('keygate-dashboard-address-blocks-refused'), (profile) => ({ ...profile, counters: server.url, auth: { ...profile.auth, unknownKeys: { limit: 1, window: '1m', block: '10m' } } }));
    await addMember(fixture.keygate.runtime, OPERATOR, null, 'operator');
    raw = new Redis(server.url);
    await raw.acl('SETUSER', 'default', '-evalsha', '-eval');
  });
  beforeEach(() => liftEvery(fixture));
  afterAll(async () => {
    await raw?.acl('SETUSER', 'default', '+@all');
    raw?.disconnect();
    await fixture?.close();
    await server?.kill();
  });

  const blockHere = async () => {
    const guessed = await fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${fixture.keygate.runtime.keyFormat.generate('live')}` } });
    await guessed.arrayBuffer();
    expect(guessed.status).toBe(401);
  };

  it('says the list is this process’s alone because Redis answers with an error, not that Redis does not answer (the admin API too), and a block it does not hold cannot be lifted now (503)', async () => {
    await blockHere();
    const operator = await Visitor.signedIn(fixture.dashboardUrl, OPERATOR, '/address-blocks');
    const listed = await operator.get('/address-blocks');
    expect([listed.status, listed.heading]).toEqual([200, 'Address blocks']);
    expect(listed.html).toContain('Keygate processes share these blocks through the counters (Redis) while Redis takes their commands.</p>');
    expect(listed.html).not.toContain('Lifting a block serves the address again');
    expect(listed.html).toContain(`<div class="notice warning" role="status"><p>${REDIS_REFUSED}</p></div>`);
    expect(listed.html).not.toContain('do not answer');
    expect(listed.html).toContain('<code>127.0.0.1</code>');
    const admin = await fixture.keygate.admin('/v1/address-blocks');
    expect([admin.status, await admin.json()]).toEqual([
      200,
      { enabled: true, policy: { limit: 1, window: '1m', block: '10m' }, from: 'this-process-redis-refused', blocks: [expect.objectContaining({ address: '127.0.0.1', unknownKeys: 1 })] },
    ]);
    const lift = await operator.post('/address-blocks/lift', { address: '203.0.113.9' });
    expect([lift.status, lift.heading, lift.alert]).toEqual([503, 'Address blocks', 'The block of 203.0.113.9 cannot be lifted now: the counters (Redis) answer with an error. Try again once Redis takes commands again.']);
    // The admin API says the same: Redis answered, with its error, not that it is away.
    const refused = await fixture.keygate.admin('/v1/address-blocks/203.0.113.9', { method: 'DELETE' });
    expect([refused.status, refused.headers.get('retry-after'), await refused.json()]).toEqual([
      503,
      '5',
      expect.objectContaining({ status: 503, detail: expect.stringMatching(/^counters backend answered with an error: NOPERM .*'evalsha'.*; try again once Redis takes the command\.$/) }),
    ]);
  });

  it('lifts a listed block in this process only, and says why (the admin API and the audit log too)', async () => {
    await blockHere();
    const operator = await Visitor.signedIn(fixture.dashboardUrl, OPERATOR, '/address-blocks');
    const lift = await operator.post('/address-blocks/lift', { address: '127.0.0.1' });
    expect([lift.status, lift.location]).toEqual([303, '/address-blocks']);
    const shown = await operator.get('/address-blocks');
    expect(shown.html).toContain(
      '<div class="notice warning" role="status"><p>The block of 127.0.0.1 is lifted in this keygate process only: the counters (Redis) answer with an error, so other keygate processes may still refuse the address, and a block Redis holds comes back once Redis takes commands again (lift it again then).</p></div>',
    );
    const [audited] = await fixture.keygate.runtime.store.listAudit({ limit: 1 });
    expect(audited).toMatchObject({ action: 'address.unblocked', actor: OPERATOR, detail: { address: '127.0.0.1', unknownKeys: 1, from: 'this-process-redis-refused' } });
    const log = await operator.get('/audit');
    expect(log.html).toContain('127.0.0.1 (after 1 unknown key,');
    expect(log.html).toContain(', in one keygate process only: Redis answered with an error)');

    await blockHere();
    const lifted = await fixture.keygate.admin('/v1/address-blocks/127.0.0.1', { method: 'DELETE' });
    expect([lifted.status, await lifted.json()]).toEqual([200, expect.objectContaining({ address: '127.0.0.1', unknownKeys: 1, from: 'this-process-redis-refused' })]);
  });
});
