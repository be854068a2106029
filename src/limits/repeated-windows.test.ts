import { describe, expect, it } from 'vitest';
import { repeatedWindow } from './repeated-windows.js';

describe('repeated windows', () => {
  it('find the first window whose length and scope an earlier one has, and that one', () => {
    const key = (window: number) => ({ window, scope: 'key' as const });
    const account = (window: number) => ({ window, scope: 'account' as const });
    expect(repeatedWindow([])).toBeUndefined();
    expect(repeatedWindow([key(1000), account(1000), key(60_000)])).toBeUndefined();
    expect(repeatedWindow([key(60_000), key(1000), key(60_000)])).toEqual({ at: 2, earlier: 0 });
    expect(repeatedWindow([key(1000), account(3_600_000), account(3_600_000), key(1000)])).toEqual({ at: 2, earlier: 1 });
  });
});
