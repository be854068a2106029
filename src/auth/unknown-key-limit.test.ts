import { describe, expect, it } from 'vitest';
import { UnknownKeyLimit } from './unknown-key-limit.js';

const POLICY = { limit: 3, window: 60_000, block: 600_000 };

describe('UnknownKeyLimit', () => {
  it('blocks an address at its limit-th unknown key within the window, until the block ends; then counts afresh', () => {
    const limit = new UnknownKeyLimit();
    expect(limit.fail('192.0.2.1', 0, POLICY)).toBeUndefined();
    expect(limit.fail('192.0.2.1', 1, POLICY)).toBeUndefined();
    expect(limit.blockedFor('192.0.2.1', 1)).toBe(0);
    expect(limit.fail('192.0.2.1', 2, POLICY)).toEqual({ address: '192.0.2.1', unknownKeys: 3, windowMs: 60_000, blockMs: 600_000, endsAt: 600_002 });
    expect(limit.blockedFor('192.0.2.1', 2)).toBe(600_000);
    expect(limit.blockedFor('192.0.2.2', 2)).toBe(0);
    expect(limit.blockedFor('192.0.2.1', 600_002)).toBe(0);
    expect(limit.fail('192.0.2.1', 600_003, POLICY)).toBeUndefined();
    expect(limit.size).toEqual({ counted: 1, blocked: 0, times: 1 });
  });

  it('forgets unknown keys older than the window', () => {
    const limit = new UnknownKeyLimit();
    limit.fail('192.0.2.1', 0, POLICY);
    limit.fail('192.0.2.1', 1, POLICY);
    // A rolling minute: at 60,000 the one at 0 has left it, at 60,001 the one at 1.
    expect(limit.fail('192.0.2.1', 60_000, POLICY)).toBeUndefined();
    expect(limit.fail('192.0.2.1', 60_001, POLICY)).toBeUndefined();
    expect(limit.size.times).toBe(2);
    expect(limit.fail('192.0.2.1', 60_002, POLICY)?.unknownKeys).toBe(3);
  });

  it('holds at most its bounds, however many addresses send unknown keys (the oldest counted are forgotten first)', () => {
    const limit = new UnknownKeyLimit(100, 150, 10);
    for (let i = 0; i < 10_000; i++) {
      limit.fail(`10.0.${i >> 8}.${i & 255}`, i, { limit: 1 + (i % 3), window: 1e9, block: 1e9 });
      const { counted, blocked, times } = limit.size;
      expect(counted <= 100 && times <= 150 && blocked <= 10, `after ${i + 1}: ${counted} counted, ${times} times, ${blocked} blocked`).toBe(true);
    }
    // The last address blocked is blocked; the first one long forgotten.
    expect(limit.blockedFor('10.0.39.15', 10_000)).toBeGreaterThan(0);
    expect(limit.blockedFor('10.0.0.0', 10_000)).toBe(0);
  });
});

describe('UnknownKeyLimit blocks in force', () => {
  it('lists the blocks not yet ended, oldest first, as this process\'s, and lifts one as if it had ended: the count starts afresh', () => {
    const limit = new UnknownKeyLimit();
    for (let i = 0; i < 3; i++) limit.fail('192.0.2.1', i, POLICY);
    for (let i = 0; i < 3; i++) limit.fail('192.0.2.2', 10 + i, POLICY);
    expect(limit.blocksInForce(20)).toEqual({
      blocks: [
        { address: '192.0.2.1', unknownKeys: 3, startedAt: 2, endsAt: 600_002 },
        { address: '192.0.2.2', unknownKeys: 3, startedAt: 12, endsAt: 600_012 },
      ],
      from: 'this-process',
    });
    expect(limit.lift('192.0.2.1', 20)).toEqual({ block: { address: '192.0.2.1', unknownKeys: 3, startedAt: 2, endsAt: 600_002 }, from: 'this-process' });
    expect(limit.lift('192.0.2.1', 21)).toBeUndefined();
    expect(limit.blockedFor('192.0.2.1', 21)).toBe(0);
    expect(limit.fail('192.0.2.1', 22, POLICY)).toBeUndefined();
    // One ended is neither listed nor lifted.
    expect(limit.blocksInForce(600_012)).toEqual({ blocks: [], from: 'this-process' });
    expect(limit.lift('192.0.2.2', 600_012)).toBeUndefined();
  });
});
