/**
 * The counters suite: one set of assertions every counters backend must pass (memory,
 * Redis). Times are passed in (`now`), so windows and blocks are checked on a clock the
 * test controls. Every test uses its own ids, so one backend instance serves them all.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Admission, AdmitRequest, BlockSpec, CacheEvent, ChargeSpec, Counters, WindowSpec } from '../../src/counters/counters.js';
import { eventually } from './isolation.js';

export interface CountersBackend {
  /** A fresh backend (its meters have no balance yet), and how to close it. */
  open(): Promise<{ counters: Counters; teardown(): Promise<void> }>;
}

/** A plausible wall-clock time, so nothing depends on times being small. */
const T0 = 1_767_225_600_000;
const PERIOD = '2026-01-01';

const unique = (prefix: string) => `${prefix}_${randomBytes(6).toString('hex')}`;

function window(limit: number, windowMs: number, id = unique('k')): WindowSpec {
  return { id: `${id}:plan:${windowMs}:${limit}`, name: `${limit}-per-${windowMs}ms`, limit, windowMs };
}

function charge(accountId: string, amount: number, limit: number, overage = false): ChargeSpec {
  return { accountId, meter: 'credits', periodStart: PERIOD, amount, limit, overage };
}

export function describeCounters(name: string, backend: CountersBackend, enabled = true): void {
  describe.skipIf(!enabled)(`counters: ${name}`, () => {
    let counters: Counters;
    let teardown: () => Promise<void>;

    beforeAll(async () => {
      ({ counters, teardown } = await backend.open());
    });
    afterAll(async () => {
      await teardown?.();
    });

    const admit = (request: AdmitRequest) => counters.admit(request);

    it('admits exactly 10 of 200 concurrent requests against a limit of 10', async () => {
      const limit = window(10, 60_000);
      const results = await Promise.all(Array.from({ length: 200 }, () => admit({ now: T0, windows: [limit] })));
      expect(results.filter((r) => r.ok)).toHaveLength(10);
      expect(results.filter((r) => !r.ok && r.reason === 'rate_limited')).toHaveLength(190);
    });

    it('charges a final amount (a per-request cost) at admission: 10 of 200 concurrent, a settle of the same amount changes nothing, one of 0 gives it back', async () => {
      const accountId = unique('acc');
      const final = { ...charge(accountId, 100, 1000), final: true };
      const results = await Promise.all(Array.from({ length: 200 }, () => admit({ now: T0, windows: [], charge: final })));
      const admitted = results.filter((r) => r.ok);
      expect(admitted).toHaveLength(10);
      expect(results.filter((r) => !r.ok && r.reason === 'insufficient_funds')).toHaveLength(190);
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 1000, reserved: 0 });
      // What the next write-back sends the store: the balance, already charged.
      expect((await counters.drainMeterChanges()).filter((row) => row.accountId === accountId)).toEqual([{ accountId, meter: 'credits', periodStart: PERIOD, used: 1000, returned: 0 }]);

      // Eight 2xx answers, two that were not: the two are given back.
      await Promise.all(admitted.map((r, i) => (r.ok && r.reservation ? counters.settle(r.reservation, i < 8 ? 100 : 0) : undefined)));
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 800, reserved: 0 });
      // The give-backs are counted apart, so the store cannot keep the earlier 1000 (mergeUsage).
      expect((await counters.drainMeterChanges()).filter((row) => row.accountId === accountId)).toEqual([{ accountId, meter: 'credits', periodStart: PERIOD, used: 800, returned: 200 }]);
      // Room for exactly two more.
      const again = await Promise.all(Array.from({ length: 20 }, () => admit({ now: T0 + 1, windows: [], charge: final })));
      expect(again.filter((r) => r.ok)).toHaveLength(2);
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 1000, reserved: 0 });
    });

    it('admits exactly 10 of 200 concurrent reservations of 100 against a balance of 1000, and never spends past it', async () => {
      const accountId = unique('acc');
      const results = await Promise.all(Array.from({ length: 200 }, () => admit({ now: T0, windows: [], charge: charge(accountId, 100, 1000) })));
      const admitted = results.filter((r) => r.ok);
      expect(admitted).toHaveLength(10);
      for (const refused of results.filter((r) => !r.ok)) {
        expect(refused).toMatchObject({ ok: false, reason: 'insufficient_funds', used: 0, limit: 1000 });
      }
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 0, reserved: 1000 });

      await Promise.all(admitted.map((r) => (r.ok && r.reservation ? counters.settle(r.reservation, 100) : undefined)));
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 1000, reserved: 0 });

      // Spent: another 200 concurrent attempts get nothing, and the balance stays at the limit.
      const again = await Promise.all(Array.from({ length: 200 }, () => admit({ now: T0 + 1, windows: [], charge: charge(accountId, 100, 1000) })));
      expect(again.filter((r) => r.ok)).toHaveLength(0);
      const balance = await counters.meterBalance(accountId, 'credits', PERIOD);
      expect(1000 - balance.used - balance.reserved).toBe(0);
    });

    it('gives each request of a burst its own remaining count, and the same reset', async () => {
      const w = window(5, 10_000);
      expect(await admit({ now: T0, windows: [w] })).toMatchObject({ ok: true, windows: [{ remaining: 4, resetMs: 10_000 }] });
      const burst = await Promise.all(Array.from({ length: 6 }, () => admit({ now: T0 + 1_000, windows: [w] })));
      const remaining = burst.filter((r) => r.ok).map((r) => r.windows[0]?.remaining);
      expect(remaining.sort()).toEqual([0, 1, 2, 3]);
      for (const r of burst) expect(r.windows[0]?.resetMs).toBe(9_000);
      // The fifth and sixth wait for the first admission (at T0) to leave the window.
      expect(burst.filter((r) => !r.ok)).toEqual([
        { ok: false, reason: 'rate_limited', retryAfterMs: 9_000, windows: [{ name: w.name, limit: 5, windowMs: 10_000, remaining: 0, resetMs: 9_000 }] },
        { ok: false, reason: 'rate_limited', retryAfterMs: 9_000, windows: [{ name: w.name, limit: 5, windowMs: 10_000, remaining: 0, resetMs: 9_000 }] },
      ]);
      // After the first leaves, one more fits; the burst's four leave together at T0 + 11 s.
      expect(await admit({ now: T0 + 10_000, windows: [w] })).toMatchObject({ ok: true, windows: [{ remaining: 0 }] });
      expect(await admit({ now: T0 + 10_001, windows: [w] })).toMatchObject({ ok: false, retryAfterMs: 999 });
      expect(await admit({ now: T0 + 11_000, windows: [w] })).toMatchObject({ ok: true, windows: [{ remaining: 3 }] });
    });

    it('blocks within a burst once enough of it was refused', async () => {
      // A window shorter than the block: the block alone decides Retry-After.
      const w = window(1, 1_000);
      const block: BlockSpec = { id: unique('k'), policy: { after: 2, within: 60_000, duration: 5_000, factor: 2, max: 60_000, forgetAfter: 600_000, scope: 'key' } };
      const burst = await Promise.all(Array.from({ length: 4 }, () => admit({ now: T0, windows: [w], block })));
      expect(burst.map((r) => (r.ok ? 'ok' : r.reason))).toEqual(['ok', 'rate_limited', 'blocked', 'blocked']);
      expect(burst.slice(2)).toMatchObject([{ retryAfterMs: 5_000 }, { retryAfterMs: 5_000 }]);
    });

    it('tells a blocked request to retry when it can be admitted: after a block shorter than a full window, when that window has room', async () => {
      const short = window(1, 1_000);
      const long = window(1, 60_000);
      const block: BlockSpec = { id: unique('k'), policy: { after: 1, within: 60_000, duration: 5_000, factor: 2, max: 60_000, forgetAfter: 600_000, scope: 'key' } };
      expect(await admit({ now: T0, windows: [short, long], block })).toMatchObject({ ok: true });
      // The refusal that starts the 5 s block: the long window has room again only at T0 + 60 s.
      // The block itself is still 5 s long (logged and counted as such).
      expect(await admit({ now: T0 + 1_000, windows: [short, long], block })).toMatchObject({
        ok: false,
        reason: 'blocked',
        retryAfterMs: 59_000,
        started: { window: long, escalation: 1, lengthMs: 5_000, endsAt: T0 + 6_000 },
      });
      // While the block is in force, alone or in a burst: the same time.
      expect(await admit({ now: T0 + 2_000, windows: [short, long], block })).toMatchObject({ ok: false, reason: 'blocked', retryAfterMs: 58_000 });
      const burst = await Promise.all(Array.from({ length: 3 }, () => admit({ now: T0 + 3_000, windows: [short, long], block })));
      expect(burst).toMatchObject(Array(3).fill({ ok: false, reason: 'blocked', retryAfterMs: 57_000 }));
      // A client that waited as told is admitted.
      expect(await admit({ now: T0 + 60_000, windows: [short, long], block })).toMatchObject({ ok: true });
      // A burst that starts a block while the window is full: each of its refusals says the same.
      const other: BlockSpec = { id: unique('k'), policy: block.policy };
      const w = window(1, 60_000);
      const started = await Promise.all(Array.from({ length: 4 }, () => admit({ now: T0, windows: [w], block: other })));
      expect(started.map((r) => (r.ok ? 'ok' : [r.reason, 'retryAfterMs' in r ? r.retryAfterMs : undefined]))).toEqual(['ok', ['blocked', 60_000], ['blocked', 60_000], ['blocked', 60_000]]);
    });

    it('names the one admission of a burst that starts a block: the window with the longest wait, the escalation, the end', async () => {
      // Both windows shorter than the block: the block alone decides Retry-After.
      const short = window(1, 1_000);
      const long = window(1, 3_000);
      const block: BlockSpec = { id: unique('k'), policy: { after: 2, within: 60_000, duration: 5_000, factor: 2, max: 60_000, forgetAfter: 600_000, scope: 'key' } };
      const startsOf = (admissions: Admission[]) => admissions.filter((r) => !r.ok && r.reason === 'blocked' && r.started !== undefined);
      const first = await Promise.all(Array.from({ length: 5 }, () => admit({ now: T0, windows: [short, long], block })));
      expect(startsOf(first)).toEqual([expect.objectContaining({ retryAfterMs: 5_000, started: { window: long, escalation: 1, lengthMs: 5_000, endsAt: T0 + 5_000 } })]);
      // Once it is over, the next block is the second in a row: twice as long.
      const second = await Promise.all(Array.from({ length: 3 }, () => admit({ now: T0 + 5_000, windows: [short, long], block })));
      expect(startsOf(second)).toEqual([expect.objectContaining({ retryAfterMs: 10_000, started: { window: long, escalation: 2, lengthMs: 10_000, endsAt: T0 + 15_000 } })]);
    });

    it('lifts a block on request: admitted again at once, its violations forgotten, the escalation started afresh', async () => {
      const policy = { after: 2, within: 60_000, duration: 5_000, factor: 2, max: 60_000, forgetAfter: 600_000, scope: 'key' as const };
      const block: BlockSpec = { id: unique('k'), policy };
      const other: BlockSpec = { id: unique('k'), policy };
      // Blocked twice: the second block is twice as long (10 s).
      const w = window(1, 1_000);
      for (const at of [T0, T0 + 6_000]) {
        await Promise.all([0, 1, 2].map(() => admit({ now: at, windows: [w], block })));
      }
      expect(await admit({ now: T0 + 6_001, windows: [], block })).toMatchObject({ ok: false, reason: 'blocked', retryAfterMs: 9_999 });
      const w2 = window(1, 1_000);
      await Promise.all([0, 1, 2].map(() => admit({ now: T0, windows: [w2], block: other })));

      // Read back: the block in force and when it ends (6 s + 10 s), for ids blocked now only.
      expect(await counters.blocksInForce([block.id, other.id, unique('k')], T0 + 6_002)).toEqual(new Map([[block.id, T0 + 16_000]]));
      expect(await counters.liftBlocks([block.id, unique('a')], T0 + 6_002)).toBe(1);
      expect((await counters.blocksInForce([block.id], T0 + 6_002)).size).toBe(0);
      expect(await admit({ now: T0 + 6_003, windows: [], block })).toMatchObject({ ok: true });
      // Another key's block stays.
      expect(await admit({ now: T0 + 3_000, windows: [], block: other })).toMatchObject({ ok: false, reason: 'blocked' });
      // The next block is the first again (5 s), not the third (20 s).
      const again = await Promise.all([0, 1, 2].map(() => admit({ now: T0 + 7_100, windows: [w], block })));
      expect(again.at(-1)).toMatchObject({ ok: false, reason: 'blocked', retryAfterMs: 5_000 });
      // Lifting what is not blocked lifts nothing.
      expect(await counters.liftBlocks([unique('k')], T0 + 7_001)).toBe(0);
    });

    it('settles the requests of a burst one by one: each releases its own reservation', async () => {
      const accountId = unique('acc');
      const burst = await Promise.all(Array.from({ length: 5 }, () => admit({ now: T0, windows: [], charge: charge(accountId, 100, 1000) })));
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 0, reserved: 500 });
      const reservations = burst.map((r) => (r.ok ? r.reservation : undefined));
      await counters.settle(reservations[0]!, 100);
      await counters.settle(reservations[1]!, 40);
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 140, reserved: 300 });
      await Promise.all(reservations.slice(2).map((r) => counters.settle(r!, 0)));
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 140, reserved: 0 });
      // Settling one again releases nothing more.
      await counters.settle(reservations[0]!, 0);
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 140, reserved: 0 });
      const refill = await Promise.all(Array.from({ length: 9 }, () => admit({ now: T0 + 1, windows: [], charge: charge(accountId, 100, 1000) })));
      expect(refill.filter((r) => r.ok)).toHaveLength(8);
    });

    it('counts a rolling window exactly, with remaining and reset for the headers', async () => {
      const w = window(3, 1_000);
      const at = async (dt: number) => admit({ now: T0 + dt, windows: [w] });

      expect(await at(0)).toEqual({ ok: true, windows: [{ name: w.name, limit: 3, windowMs: 1_000, remaining: 2, resetMs: 1_000 }] });
      expect(await at(100)).toMatchObject({ ok: true, windows: [{ remaining: 1, resetMs: 900 }] });
      expect(await at(200)).toMatchObject({ ok: true, windows: [{ remaining: 0, resetMs: 800 }] });
      expect(await at(300)).toMatchObject({ ok: false, reason: 'rate_limited', retryAfterMs: 700, windows: [{ remaining: 0, resetMs: 700 }] });
      expect(await at(999)).toMatchObject({ ok: false, reason: 'rate_limited', retryAfterMs: 1 });
      // The admission at 0 leaves the window at exactly 1000.
      expect(await at(1_000)).toMatchObject({ ok: true, windows: [{ remaining: 0, resetMs: 100 }] });
      expect(await at(1_050)).toMatchObject({ ok: false, reason: 'rate_limited', retryAfterMs: 50 });
      expect(await at(1_100)).toMatchObject({ ok: true });
      // Long quiet: the window is empty again.
      expect(await at(10_000)).toMatchObject({ ok: true, windows: [{ remaining: 2, resetMs: 1_000 }] });
    });

    it('never admits more than the limit in any rolling window', async () => {
      const limit = 4;
      const windowMs = 1_000;
      const w = window(limit, windowMs);
      // A deterministic, uneven stream of 400 requests over ~20 s.
      let seed = 42;
      const next = () => (seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648;
      const admittedAt: number[] = [];
      let t = 0;
      for (let i = 0; i < 400; i += 1) {
        t += Math.floor(next() * 100);
        const result = await admit({ now: T0 + t, windows: [w] });
        if (result.ok) admittedAt.push(t);
      }
      for (const end of admittedAt) {
        expect(admittedAt.filter((x) => x > end - windowMs && x <= end).length).toBeLessThanOrEqual(limit);
      }
      // ...and it is not merely stingy: the stream is dense enough to fill most windows.
      expect(admittedAt.length).toBeGreaterThan((t / windowMs) * limit * 0.8);
    });

    it('judges the admissions a window already holds by its new limit when the limit changes (a reload, an account\'s own limits)', async () => {
      const id = unique('k');
      // The same window (one id) as the pipeline gives it before and after the change: new lists each time.
      const limited = (limit: number): WindowSpec => ({ id, name: `${limit}-per-1m`, limit, windowMs: 60_000 });
      for (let i = 0; i < 5; i += 1) expect(await admit({ now: T0 + i, windows: [limited(5)] })).toMatchObject({ ok: true });

      // Lowered to 3: the five it holds are two too many; the wait is for the third oldest to
      // leave, and the RateLimit field's t says so too (not when the oldest leaves: r would still be 0).
      expect(await admit({ now: T0 + 10, windows: [limited(3)] })).toMatchObject({
        ok: false,
        reason: 'rate_limited',
        retryAfterMs: 60_000 - 10 + 2,
        windows: [{ limit: 3, remaining: 0, resetMs: 60_000 - 10 + 2 }],
      });
      // Raised to 8: room for three more, not eight.
      const raised = [];
      for (let i = 0; i < 4; i += 1) raised.push(await admit({ now: T0 + 20 + i, windows: [limited(8)] }));
      expect(raised.map((r) => r.ok)).toEqual([true, true, true, false]);
      expect(raised[2]).toMatchObject({ windows: [{ limit: 8, remaining: 0 }] });
      // And back to 5: eight held, refused until four of them have left.
      expect(await admit({ now: T0 + 30, windows: [limited(5)] })).toMatchObject({
        ok: false,
        reason: 'rate_limited',
        retryAfterMs: 60_000 - 30 + 3,
        windows: [{ limit: 5, remaining: 0, resetMs: 60_000 - 30 + 3 }],
      });
    });

    it('counts a refused request against no window: all windows or none', async () => {
      const subject = unique('k');
      const short = window(2, 1_000, subject);
      const long = window(5, 10_000, `${subject}-long`);
      expect(await admit({ now: T0, windows: [short, long] })).toMatchObject({ ok: true });
      expect(await admit({ now: T0 + 1, windows: [short, long] })).toMatchObject({ ok: true });
      const refused = await admit({ now: T0 + 2, windows: [short, long] });
      expect(refused).toMatchObject({ ok: false, reason: 'rate_limited', retryAfterMs: 998 });
      expect(refused.windows.map((w) => w.remaining)).toEqual([0, 3]);

      // At 1001 both earlier admissions have left the short window; the long one holds three.
      expect(await admit({ now: T0 + 1_001, windows: [short, long] })).toMatchObject({ ok: true, windows: [{ remaining: 1 }, { remaining: 2 }] });
    });

    it('counts a request refused for funds against no window and spends nothing', async () => {
      const accountId = unique('acc');
      const w = window(5, 60_000);
      const first = await admit({ now: T0, windows: [w], charge: charge(accountId, 60, 100) });
      expect(first).toMatchObject({ ok: true, windows: [{ remaining: 4 }], reservation: { accountId, meter: 'credits', periodStart: PERIOD, amount: 60 } });
      const refused = await admit({ now: T0 + 1, windows: [w], charge: charge(accountId, 60, 100) });
      expect(refused).toMatchObject({ ok: false, reason: 'insufficient_funds', used: 0, limit: 100, windows: [{ remaining: 4 }] });
      expect(await admit({ now: T0 + 2, windows: [w] })).toMatchObject({ ok: true, windows: [{ remaining: 3 }] });
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 0, reserved: 60 });
    });

    it('settles: a success commits the actual units, a failure releases the reservation', async () => {
      const accountId = unique('acc');
      const first = await admit({ now: T0, windows: [], charge: charge(accountId, 60, 100) });
      if (!first.ok || !first.reservation) throw new Error('expected a reservation');
      await counters.settle(first.reservation, 0);
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 0, reserved: 0 });

      const second = await admit({ now: T0 + 1, windows: [], charge: charge(accountId, 60, 100) });
      if (!second.ok || !second.reservation) throw new Error('expected a reservation');
      // Per-record costs: 60 reserved, 25 actually used.
      await counters.settle(second.reservation, 25);
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 25, reserved: 0 });
      expect(await admit({ now: T0 + 2, windows: [], charge: charge(accountId, 80, 100) })).toMatchObject({ ok: false, reason: 'insufficient_funds', used: 25 });
      expect(await admit({ now: T0 + 3, windows: [], charge: charge(accountId, 75, 100) })).toMatchObject({ ok: true });
    });

    it('stops a per-record charge larger than what is left at the limit when overage is off, also for settles that arrive together', async () => {
      const accountId = unique('acc');
      const first = await admit({ now: T0, windows: [], charge: charge(accountId, 10, 100) });
      if (!first.ok || !first.reservation) throw new Error('expected a reservation');
      // 10 reserved, 40 counted in the answer: all of it fits.
      expect(await counters.settle(first.reservation, 40)).toBe(40);
      const both = await Promise.all([0, 1].map((i) => admit({ now: T0 + 1 + i, windows: [], charge: charge(accountId, 10, 100) })));
      const reservations = both.map((r) => (r.ok ? r.reservation : undefined));
      if (!reservations[0] || !reservations[1]) throw new Error('expected two reservations');
      // 60 left; the answers held 50 records each: the first takes 50, the second the last 10.
      const committed = await Promise.all(reservations.map((r) => counters.settle(r!, 50)));
      expect(committed.sort((x, y) => x - y)).toEqual([10, 50]);
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 100, reserved: 0 });
      expect(await admit({ now: T0 + 5, windows: [], charge: charge(accountId, 1, 100) })).toMatchObject({ ok: false, reason: 'insufficient_funds', used: 100 });
    });

    it('lets a reservation that is never settled go after 10 minutes; its late settle commits its units and releases no one else\'s', async () => {
      const accountId = unique('acct');
      const forgotten = await admit({ now: T0, windows: [], charge: charge(accountId, 60, 100) });
      expect(forgotten.ok).toBe(true);
      const tenMinutes = 10 * 60_000;
      expect(await admit({ now: T0 + tenMinutes - 1, windows: [], charge: charge(accountId, 60, 100) })).toMatchObject({ ok: false, reason: 'insufficient_funds' });
      const next = await admit({ now: T0 + tenMinutes + 1, windows: [], charge: charge(accountId, 60, 100) });
      expect(next.ok).toBe(true);
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 0, reserved: 60 });

      if (!forgotten.ok || !forgotten.reservation) throw new Error('expected a reservation');
      expect(await counters.settle(forgotten.reservation, 30)).toBe(30);
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 30, reserved: 60 });
    });

    it('admit: untilZero admits while anything is left, one at a time at the end, and the request that reaches zero pays down to zero', async () => {
      const accountId = unique('acc');
      // A flat cost (final): charged at admission while it fits, as with whenCovered.
      const flat = { ...charge(accountId, 100, 250), untilZero: true, final: true };
      for (let i = 0; i < 2; i += 1) {
        const result = await admit({ now: T0 + i, windows: [], charge: flat });
        if (!result.ok || !result.reservation) throw new Error('expected a reservation');
        expect(result.reservation.final).toBe(true);
      }
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 200, reserved: 0 });
      // 50 left, a cost of 100: refused where the cost must be covered...
      expect(await admit({ now: T0 + 2, windows: [], charge: { ...flat, untilZero: false } })).toMatchObject({ ok: false, reason: 'insufficient_funds', used: 200 });
      // ...admitted until zero, but only one of ten at once (it holds what it may cost), and
      // reserved rather than charged: its settle stops at the limit.
      const burst = await Promise.all(Array.from({ length: 10 }, () => admit({ now: T0 + 3, windows: [], charge: flat })));
      const admitted = burst.filter((r) => r.ok);
      expect(admitted).toHaveLength(1);
      expect(burst.filter((r) => !r.ok && r.reason === 'insufficient_funds')).toHaveLength(9);
      const last = admitted[0]?.ok ? admitted[0].reservation : undefined;
      if (!last) throw new Error('expected a reservation');
      expect(last).toMatchObject({ final: false, cap: 250 });
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 200, reserved: 100 });
      // An answer that is no 2xx pays nothing, and the 50 are there for the next request.
      expect(await counters.settle(last, 0)).toBe(0);
      const again = await admit({ now: T0 + 4, windows: [], charge: flat });
      if (!again.ok || !again.reservation) throw new Error('expected a reservation');
      expect(await counters.settle(again.reservation, 100)).toBe(50);
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 250, reserved: 0 });
      // Zero reached: every request with a cost is refused.
      expect(await admit({ now: T0 + 5, windows: [], charge: { ...flat, amount: 1 } })).toMatchObject({ ok: false, reason: 'insufficient_funds', used: 250 });
    });

    it('admit: untilZero takes a sum of fractional costs that stops a hair short of the limit as nothing left', async () => {
      const accountId = unique('acc');
      const tenth = { ...charge(accountId, 0.1, 1), untilZero: true, final: true };
      for (let i = 0; i < 10; i += 1) expect(await admit({ now: T0 + i, windows: [], charge: tenth })).toMatchObject({ ok: true });
      expect(await admit({ now: T0 + 10, windows: [], charge: tenth })).toMatchObject({ ok: false, reason: 'insufficient_funds' });
    });

    it('admit: takes a fractional cost that fills the limit to within a hair (0.2 + 0.1 is 0.30000000000000004), as the balance shown says it fits', async () => {
      const accountId = unique('acc');
      const tenth = { ...charge(accountId, 0.1, 0.3), final: true };
      for (let i = 0; i < 3; i += 1) expect(await admit({ now: T0 + i, windows: [], charge: tenth }), `call ${i + 1}`).toMatchObject({ ok: true });
      expect(await admit({ now: T0 + 3, windows: [], charge: tenth })).toMatchObject({ ok: false, reason: 'insufficient_funds' });
    });

    it('lets usage run past the limit when overage is on', async () => {
      const accountId = unique('acc');
      for (let i = 0; i < 3; i += 1) {
        const result = await admit({ now: T0 + i, windows: [], charge: charge(accountId, 60, 100, true) });
        if (!result.ok || !result.reservation) throw new Error('overage should admit');
        expect(await counters.settle(result.reservation, 60)).toBe(60);
      }
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 180, reserved: 0 });
      // The same meter without overage refuses.
      expect(await admit({ now: T0 + 5, windows: [], charge: charge(accountId, 1, 100) })).toMatchObject({ ok: false, reason: 'insufficient_funds', used: 180 });
    });

    it('blocks repeat offenders, escalating up to the cap, and forgets after a quiet period', async () => {
      // A window shorter than every block: each block's length is its Retry-After, and
      // once a block is over the window has room, so offending again takes a full window.
      const subject = unique('k');
      const w = window(1, 500, subject);
      const block: BlockSpec = {
        id: `k:${subject}`,
        policy: { after: 2, within: 10_000, duration: 1_000, factor: 2, max: 3_000, forgetAfter: 60_000, scope: 'key' },
      };
      const at = (dt: number) => admit({ now: T0 + dt, windows: [w], block });

      expect(await at(0)).toMatchObject({ ok: true });
      expect(await at(1)).toMatchObject({ ok: false, reason: 'rate_limited', retryAfterMs: 499 });
      // The second violation within 10 s: the request that triggers the block is told so.
      expect(await at(2)).toMatchObject({ ok: false, reason: 'blocked', retryAfterMs: 1_000 });
      // Blocked even though the window has room again.
      expect(await at(500)).toMatchObject({ ok: false, reason: 'blocked', retryAfterMs: 502 });
      // The block is over at 1002: admitted; offending twice more...
      expect(await at(1_002)).toMatchObject({ ok: true });
      expect(await at(1_003)).toMatchObject({ ok: false, reason: 'rate_limited' });
      // ...and the next block is twice as long,
      expect(await at(1_004)).toMatchObject({ ok: false, reason: 'blocked', retryAfterMs: 2_000 });
      expect(await at(3_004)).toMatchObject({ ok: true });
      expect(await at(3_005)).toMatchObject({ ok: false, reason: 'rate_limited' });
      // then capped at max (3000, not 4000).
      expect(await at(3_006)).toMatchObject({ ok: false, reason: 'blocked', retryAfterMs: 3_000 });
      expect(await at(6_005)).toMatchObject({ ok: false, reason: 'blocked', retryAfterMs: 1 });

      // More than forgetAfter (60 s) after the last block ended (6006), the next block is the first length again.
      expect(await at(6_006 + 60_001)).toMatchObject({ ok: true });
      expect(await at(6_006 + 60_002)).toMatchObject({ ok: false, reason: 'rate_limited' });
      expect(await at(6_006 + 60_003)).toMatchObject({ ok: false, reason: 'blocked', retryAfterMs: 1_000 });

      // Violations further apart than `within` do not add up to a block.
      const other = unique('k');
      const w2 = window(1, 500, other);
      const block2: BlockSpec = { id: `k:${other}`, policy: block.policy };
      expect(await admit({ now: T0, windows: [w2], block: block2 })).toMatchObject({ ok: true });
      expect(await admit({ now: T0 + 1, windows: [w2], block: block2 })).toMatchObject({ reason: 'rate_limited' });
      expect(await admit({ now: T0 + 20_000, windows: [w2], block: block2 })).toMatchObject({ ok: true });
      expect(await admit({ now: T0 + 20_001, windows: [w2], block: block2 })).toMatchObject({ reason: 'rate_limited' });
      expect(await admit({ now: T0 + 20_002, windows: [w2], block: block2 })).toMatchObject({ reason: 'blocked', retryAfterMs: 1_000 });
    });

    it('restores a give-back written after the charge it undoes, whatever the order the readings arrive in', async () => {
      const accountId = unique('acc');
      const row = (used: number, returned: number) => ({ accountId, meter: 'credits', periodStart: PERIOD, used, returned });
      // Charged 100 (read by one process), given back (read by another), then 10 more.
      await counters.restoreMeters([row(100, 0)]);
      await counters.restoreMeters([row(0, 100)]);
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 0, reserved: 0 });
      await counters.restoreMeters([row(10, 100), row(100, 0)]);
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 10, reserved: 0 });
      // A fractional reading met again stays exactly as it was.
      const fractional = unique('acc');
      const again = { accountId: fractional, meter: 'credits', periodStart: PERIOD, used: 0.3, returned: 0.6 };
      await counters.restoreMeters([again]);
      await counters.restoreMeters([again]);
      expect(await counters.meterBalance(fractional, 'credits', PERIOD)).toEqual({ used: 0.3, reserved: 0 });
    });

    it('restores balances as the larger of held and stored, and drains only what changed', async () => {
      const accountId = unique('acc');
      const untouched = unique('acc');
      const mine = (rows: { accountId: string }[]) => rows.filter((r) => r.accountId === accountId || r.accountId === untouched);
      await counters.drainMeterChanges();

      await counters.restoreMeters([
        { accountId, meter: 'credits', periodStart: PERIOD, used: 50 },
        { accountId: untouched, meter: 'credits', periodStart: PERIOD, used: 5 },
      ]);
      expect(await counters.meterBalance(accountId, 'credits', PERIOD)).toEqual({ used: 50, reserved: 0 });
      await counters.restoreMeters([{ accountId, meter: 'credits', periodStart: PERIOD, used: 30 }]);
      expect((await counters.meterBalance(accountId, 'credits', PERIOD)).used).toBe(50);
      expect(mine(await counters.drainMeterChanges())).toEqual([]);

      const admitted = await admit({ now: T0, windows: [], charge: charge(accountId, 10, 1000) });
      if (!admitted.ok || !admitted.reservation) throw new Error('expected a reservation');
      await counters.settle(admitted.reservation, 10);
      await counters.restoreMeters([{ accountId, meter: 'credits', periodStart: PERIOD, used: 55 }]);
      expect((await counters.meterBalance(accountId, 'credits', PERIOD)).used).toBe(60);
      await counters.restoreMeters([{ accountId, meter: 'credits', periodStart: PERIOD, used: 70 }]);
      expect((await counters.meterBalance(accountId, 'credits', PERIOD)).used).toBe(70);

      expect(mine(await counters.drainMeterChanges())).toEqual([{ accountId, meter: 'credits', periodStart: PERIOD, used: 70, returned: 0 }]);
      expect(mine(await counters.drainMeterChanges())).toEqual([]);
    });

    it('keeps balances of different meters and periods apart', async () => {
      const accountId = unique('acc');
      const a = await admit({ now: T0, windows: [], charge: { ...charge(accountId, 10, 10), meter: 'credits' } });
      const b = await admit({ now: T0, windows: [], charge: { ...charge(accountId, 10, 10), meter: 'rows' } });
      const c = await admit({ now: T0, windows: [], charge: { ...charge(accountId, 10, 10), periodStart: '2026-02-01' } });
      expect([a.ok, b.ok, c.ok]).toEqual([true, true, true]);
      expect(await counters.meterBalance(accountId, 'rows', PERIOD)).toEqual({ used: 0, reserved: 10 });
      expect(await counters.meterBalance(unique('acc'), 'credits', PERIOD)).toEqual({ used: 0, reserved: 0 });
    });

    it('delivers each broadcast to the sending process too', async () => {
      const heard: CacheEvent[] = [];
      counters.onBroadcast((event) => heard.push(event));
      const hash = randomBytes(32).toString('hex');
      await counters.broadcast({ type: 'key', hash });
      await counters.broadcast({ type: 'account', accountId: 'acc_x' });
      await counters.broadcast({ type: 'all' });
      expect(await eventually(() => heard.length >= 3)).toBe(true);
      expect(heard).toEqual([{ type: 'key', hash }, { type: 'account', accountId: 'acc_x' }, { type: 'all' }]);
    });
  });
}
