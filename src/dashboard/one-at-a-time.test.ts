import { describe, expect, it } from 'vitest';
import { oneAtATimeBy } from './one-at-a-time.js';

describe('work done one at a time per key', () => {
  it('runs work on one key after the work before it, whatever that answered, and work on other keys meanwhile', async () => {
    const oneAtATime = oneAtATimeBy();
    const order: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const first = oneAtATime('form', async () => {
      order.push('first starts');
      await held;
      order.push('first ends');
      throw new Error('first failed');
    });
    const second = oneAtATime('form', async () => {
      order.push('second');
      return 2;
    });
    const other = oneAtATime('other form', async () => {
      order.push('other');
      return 3;
    });
    expect(await other).toBe(3);
    release();
    await expect(first).rejects.toThrow('first failed');
    expect(await second).toBe(2);
    expect(order).toEqual(['first starts', 'other', 'first ends', 'second']);
  });
});
