import { describe, expect, it } from 'vitest';
import type { WindowState } from '../counters/counters.js';
import { addKongHeaders, kongPairs, kongWindowSuffix } from './kong-headers.js';

const window = (windowMs: number, limit: number, remaining: number, resetMs: number): WindowState => ({ name: `${limit}`, limit, windowMs, remaining, resetMs });
const headersOf = (windows: WindowState[]) => addKongHeaders({}, kongPairs(windows), windows);

describe("Kong's rate-limit headers", () => {
  it("names Kong's units (a month of 30 days, a year of 365), any other length by its seconds rounded up", () => {
    expect([1000, 60_000, 3_600_000, 86_400_000, 30 * 86_400_000, 365 * 86_400_000].map(kongWindowSuffix)).toEqual(['Second', 'Minute', 'Hour', 'Day', 'Month', 'Year']);
    expect([10_000, 300_000, 2 * 86_400_000, 1500, 500].map(kongWindowSuffix)).toEqual(['10', '300', '172800', '2', '1']);
  });

  it('gives RateLimit-* of the longer window where two have as few left, as Kong does', () => {
    expect(headersOf([window(1000, 5, 0, 400), window(60_000, 10, 0, 30_500)])).toMatchObject({ 'ratelimit-limit': '10', 'ratelimit-remaining': '0', 'ratelimit-reset': '31' });
  });

  it('says RateLimit-Reset: 1 at least, where the window has room at once', () => {
    expect(headersOf([window(1000, 5, 5, 0)])).toMatchObject({ 'ratelimit-reset': '1' });
  });

  it('adds to the IETF fields given, leaving them', () => {
    const windows = [window(60_000, 3, 2, 60_000)];
    expect(addKongHeaders({ ratelimit: 'x' }, kongPairs(windows), windows)).toEqual({
      ratelimit: 'x',
      'x-ratelimit-limit-minute': '3',
      'x-ratelimit-remaining-minute': '2',
      'ratelimit-limit': '3',
      'ratelimit-remaining': '2',
      'ratelimit-reset': '60',
    });
  });
});
