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
});
