/**
 * An exact sliding log in O(limit) memory: the times of the last `limit` admissions in
 * a ring. A request is admitted only if fewer than `limit` of them fall inside the
 * window ending now, so no window of that length ever holds more than `limit`.
 */
export class SlidingLog {
  private times: number[] = [];
  /** Index of the oldest entry once the ring is full. */
  private head = 0;

  constructor(
    readonly limit: number,
    readonly windowMs: number,
  ) {}

  /** Admissions inside (now - windowMs, now]. */
  countInWindow(now: number): number {
    return this.times.length - this.firstInWindow(now);
  }

  /** Milliseconds until the oldest admission in the window leaves it (0 if none). */
  resetMs(now: number): number {
    const first = this.firstInWindow(now);
    if (first >= this.times.length) return 0;
    return Math.max(0, this.at(first) + this.windowMs - now);
  }

  /** Milliseconds until one more admission fits (0 if it fits now). */
  waitMs(now: number): number {
    const inWindow = this.countInWindow(now);
    if (inWindow < this.limit) return 0;
    // The (inWindow - limit + 1)-th oldest in-window entry must expire.
    const first = this.firstInWindow(now);
    return Math.max(1, this.at(first + inWindow - this.limit) + this.windowMs - now);
  }

  record(now: number): void {
    if (this.times.length < this.limit) {
      this.times.push(now);
      return;
    }
    this.times[this.head] = now;
    this.head = (this.head + 1) % this.limit;
  }

  /** The newest admission, for idle sweeping. */
  newest(): number {
    if (this.times.length === 0) return -Infinity;
    return this.at(this.times.length - 1);
  }

  /** The i-th oldest entry. */
  private at(i: number): number {
    return this.times[(this.head + i) % this.times.length] as number;
  }

  /** Index (oldest = 0) of the first entry inside the window: binary search. */
  private firstInWindow(now: number): number {
    const cutoff = now - this.windowMs;
    let lo = 0;
    let hi = this.times.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.at(mid) > cutoff) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}
