import { describe, expect, it } from 'vitest';
import { SlidingLog } from './sliding-log.js';

describe('SlidingLog', () => {
  it('never holds more than the limit in any window of its length', () => {
    const log = new SlidingLog(5, 1000);
    const admitted: number[] = [];
    // A request every 37 ms for 10 s, admitted whenever the log allows it.
    for (let t = 0; t < 10_000; t += 37) {
      if (log.waitMs(t) === 0) {
        log.record(t);
        admitted.push(t);
      }
    }
    for (const start of admitted) {
      const inWindow = admitted.filter((t) => t >= start && t < start + 1000).length;
      expect(inWindow).toBeLessThanOrEqual(5);
    }
    expect(admitted.length).toBeGreaterThan(40);
  });

  it('frees a slot exactly when the oldest admission leaves the window', () => {
    const log = new SlidingLog(2, 1000);
    log.record(0);
    log.record(400);
    expect(log.waitMs(999)).toBe(1);
    expect(log.waitMs(1000)).toBe(0);
    expect(log.countInWindow(1000)).toBe(1);
    expect(log.resetMs(1000)).toBe(400);
  });

  it('keeps only the times still inside the window, however high the limit', () => {
    const log = new SlidingLog(100_000_000, 1_000);
    for (let t = 0; t < 60_000; t += 1) log.record(t);
    // 60,000 admissions over a minute, of which the last second's 1,000 still count.
    expect(log.countInWindow(59_999)).toBe(1_000);
    expect(log.size).toBeLessThanOrEqual(2 * 1_024 + 1_000);
    expect(log.resetMs(59_999)).toBe(1);
  });

  it('keeps no more than the limit when more fall inside one window', () => {
    const log = new SlidingLog(3, 60_000);
    for (let t = 0; t < 10; t += 1) log.record(t);
    expect(log.size).toBe(3);
    expect(log.waitMs(10)).toBe(60_000 + 7 - 10);
  });

  it('answers as a count of its admissions would, however many leave the window between two requests', () => {
    // Bursts and gaps of every size: the search from where the window last started jumps
    // over one time, a few, or all of them. A small reference is the plain list of times.
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed % n;
    };
    for (const [limit, windowMs] of [
      [5, 100],
      [40, 1_000],
      [100_000, 1_000],
      [100_000, 3_600_000],
    ] as const) {
      const log = new SlidingLog(limit, windowMs);
      const admitted: number[] = [];
      let t = 0;
      for (let i = 0; i < 2_000; i++) {
        t += random(4) === 0 ? random(3 * windowMs) : random(3);
        const inWindow = admitted.filter((a) => a > t - windowMs);
        const wait = inWindow.length < limit ? 0 : Math.max(1, (inWindow[inWindow.length - limit] as number) + windowMs - t);
        expect(log.waitMs(t)).toBe(wait);
        expect(log.countInWindow(t)).toBe(inWindow.length);
        expect(log.resetMs(t)).toBe(inWindow.length === 0 ? 0 : (inWindow[0] as number) + windowMs - t);
        if (wait === 0) {
          log.record(t);
          admitted.push(t);
          const after = admitted.filter((a) => a > t - windowMs);
          expect(log.countInWindow(t)).toBe(after.length);
          expect(log.resetMs(t)).toBe((after[0] as number) + windowMs - t);
        }
      }
    }
  });
});
