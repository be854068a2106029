import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CheckAdmitted } from '../library.js';
import { PendingChecks, UNSETTLED_STATUS, type ReleaseReason } from './pending-checks.js';

const TIMEOUT_MS = 1_000;

/** An admitted check that records the statuses it was settled with. */
function admitted(settled: number[]): CheckAdmitted {
  return { settle: async (status: number) => void settled.push(status) } as unknown as CheckAdmitted;
}

describe('PendingChecks in a quiet admin API (no add or settle to look at the timeouts)', () => {
  // Fake timers move setTimeout and Date.now together: the clock the checks are judged by is the timer's.
  beforeEach(() => {
    vi.useFakeTimers({ now: Date.parse('2026-12-05T12:00:00Z') });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const pendingChecks = (released: ReleaseReason[]) =>
    new PendingChecks({ timeoutMs: TIMEOUT_MS, max: 10, clock: () => Date.now(), log: pino({ level: 'silent' }), onReleased: (why) => released.push(why) });

  it('releases each check on its own timeout, the later one after the earlier is released or settled', async () => {
    const released: ReleaseReason[] = [];
    const pending = pendingChecks(released);
    const first: number[] = [];
    const second: number[] = [];
    const third: number[] = [];
    pending.add(admitted(first));
    await vi.advanceTimersByTimeAsync(400);
    const secondId = pending.add(admitted(second));
    await vi.advanceTimersByTimeAsync(400);
    pending.add(admitted(third));
    // The first one's timeout passes: it alone is released.
    await vi.advanceTimersByTimeAsync(201);
    expect([first, second, third, released]).toEqual([[UNSETTLED_STATUS], [], [], ['timeout']]);
    // The second is settled in time; the third is still released when its own timeout passes.
    expect(await pending.settle(secondId, 200)).toEqual({ settled: true });
    await vi.advanceTimersByTimeAsync(799);
    expect([third, pending.size]).toEqual([[], 1]);
    await vi.advanceTimersByTimeAsync(2);
    expect([first, second, third, released, pending.size]).toEqual([[UNSETTLED_STATUS], [200], [UNSETTLED_STATUS], ['timeout', 'timeout'], 0]);
    // One added after all that is released on its timeout too.
    const fourth: number[] = [];
    pending.add(admitted(fourth));
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS + 1);
    expect(fourth).toEqual([UNSETTLED_STATUS]);
    await pending.close();
  });

  it('releases a check added after every earlier one was settled, on its own timeout', async () => {
    const pending = pendingChecks([]);
    const first: number[] = [];
    const later: number[] = [];
    const id = pending.add(admitted(first));
    await pending.settle(id, 204);
    await vi.advanceTimersByTimeAsync(500);
    pending.add(admitted(later));
    await vi.advanceTimersByTimeAsync(TIMEOUT_MS);
    expect(later).toEqual([]);
    await vi.advanceTimersByTimeAsync(2);
    expect([first, later]).toEqual([[204], [UNSETTLED_STATUS]]);
    await pending.close();
  });
});
