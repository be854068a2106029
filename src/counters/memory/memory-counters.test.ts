import { afterEach, describe, expect, it } from 'vitest';
import type { AdmitRequest } from '../counters.js';
import { MemoryCounters } from './memory-counters.js';

const T0 = Date.parse('2026-11-20T00:00:00Z');
const POLICY = { after: 1, within: 60_000, duration: 600_000, factor: 2, max: 3_600_000, forgetAfter: 86_400_000, scope: 'key' as const };

describe('memory counters: windows and blocks saved and restored', () => {
  let now = T0;
  const opened: MemoryCounters[] = [];
  const open = () => {
    const counters = new MemoryCounters(() => now);
    opened.push(counters);
    return counters;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((c) => c.close()));
    now = T0;
  });
  const request = (): AdmitRequest => ({ now, windows: [{ id: 'k:key_a:w60000:plan', name: '2-per-1m', limit: 2, windowMs: 60_000 }], block: { id: 'k:key_a', policy: POLICY } });

  it('gives a new process the same answers: a full window, a block in force and its escalation', () => {
    const first = open();
    expect([first.admitNow(request()).ok, first.admitNow(request()).ok]).toEqual([true, true]);
    now += 10;
    expect(first.admitNow(request())).toMatchObject({ ok: false, reason: 'blocked', retryAfterMs: 600_000 });
    // Blocks every flush; windows only when asked (at stop).
    const blocks = first.drainLimitChanges(false);
    expect(blocks.map((r) => [r.kind, r.id, r.expiresAt])).toEqual([['block', 'k:key_a', T0 + 10 + 600_000 + 7 * 86_400_000]]);
    const rows = first.drainLimitChanges(true);
    expect(rows.map((r) => [r.kind, r.id, r.expiresAt])).toEqual([['window', 'k:key_a:w60000:plan', T0 + 60_000]]);
    // Nothing changed since: nothing to write.
    expect(first.drainLimitChanges(true)).toEqual([]);

    const second = open();
    now += 1_000;
    expect(second.restoreLimits([...blocks, ...rows])).toBe(2);
    expect(second.admitNow(request())).toMatchObject({ ok: false, reason: 'blocked', retryAfterMs: 599_000 });
    now = T0 + 600_010;
    // The block is over; the window's two admissions have left it too: admitted.
    expect(second.admitNow(request()).ok).toBe(true);
    expect(second.admitNow(request()).ok).toBe(true);
    // The next block is the second in a row: twice as long.
    expect(second.admitNow(request())).toMatchObject({ ok: false, reason: 'blocked', retryAfterMs: 1_200_000 });
  });

  it('takes back a window saved by the previous release, under the id that had its limit in it', () => {
    const previous = open();
    const saved = { ...request(), windows: [{ id: 'k:key_a:60000:2:plan', name: '2-per-1m', limit: 2, windowMs: 60_000 }] };
    expect([previous.admitNow(saved).ok, previous.admitNow(saved).ok]).toEqual([true, true]);
    const rows = previous.drainLimitChanges(true).filter((row) => row.kind === 'window');
    expect(rows.map((row) => row.id)).toEqual(['k:key_a:60000:2:plan']);

    const upgraded = open();
    now += 1_000;
    expect(upgraded.restoreLimits(rows)).toBe(1);
    expect(upgraded.admitNow({ now, windows: request().windows })).toMatchObject({ ok: false, reason: 'rate_limited', retryAfterMs: 59_000 });
  });

  it('writes a lifted block as a row already expired, and skips rows it cannot read', () => {
    const counters = open();
    counters.admitNow(request());
    counters.admitNow(request());
    counters.admitNow(request());
    counters.drainLimitChanges(false);
    expect(counters.liftBlocksNow(['k:key_a'], now)).toBe(1);
    expect(counters.drainLimitChanges(false)).toEqual([{ kind: 'block', id: 'k:key_a', state: '{}', expiresAt: 0 }]);

    const other = open();
    const unreadable = ['not json', '{}', '{"limit":2,"windowMs":60000,"first":1,"gaps":[-5]}', '{"limit":0,"windowMs":60000,"first":1,"gaps":[]}'];
    expect(other.restoreLimits(unreadable.map((state, i) => ({ kind: i === 1 ? 'block' : 'window', id: `w${i}`, state, expiresAt: T0 + 60_000 })))).toBe(0);
  });
});
