/**
 * An exact sliding log: the times of the admissions still inside the window, oldest
 * first. A request is admitted only if fewer than `limit` of them fall inside the window
 * ending now, so no window of that length ever holds more than `limit`. Memory is
 * O(admissions in one window), at most O(limit): times that have left the window are
 * dropped as new ones come in.
 */

/** Dropped times are cut out of the array once this many have piled up at its front. */
const COMPACT_AFTER = 1024;

export class SlidingLog {
  /** Admission times, oldest first; those before `start` are dropped. */
  private times: number[] = [];
  private start = 0;
  /**
   * The last `firstInWindow` answer and the cutoff it was for: one admission asks it four
   * times with one `now` (its wait, its record, its count and its reset), and a window
   * that nothing has left since then (a long one) needs no search at all.
   */
  private seenCutoff = Number.NaN;
  private seenFirst = 0;

  constructor(
    /** Changes with the profile or an account's own limits (see `counterIds` in limits/rate-limits.ts): the times stay. */
    public limit: number,
    readonly windowMs: number,
  ) {}

  /** Admissions inside (now - windowMs, now]. */
  countInWindow(now: number): number {
    return this.times.length - this.firstInWindow(now);
  }

  /**
   * Milliseconds until the window has room for one more than it has now (0 if it holds
   * none): until its oldest admission leaves it, or, while it holds more than `limit` (a
   * limit lowered below what it holds), until enough have left for one to fit, as
   * `waitMs`. The RateLimit field's `t`: a client that waits it is admitted.
   */
  resetMs(now: number): number {
    const first = this.firstInWindow(now);
    const inWindow = this.times.length - first;
    if (inWindow === 0) return 0;
    const leaving = first + Math.max(0, inWindow - this.limit);
    return Math.max(0, (this.times[leaving] as number) + this.windowMs - now);
  }

  /** Milliseconds until one more admission fits (0 if it fits now). */
  waitMs(now: number): number {
    const first = this.firstInWindow(now);
    const inWindow = this.times.length - first;
    if (inWindow < this.limit) return 0;
    // The (inWindow - limit + 1)-th oldest in-window entry must expire.
    return Math.max(1, (this.times[first + inWindow - this.limit] as number) + this.windowMs - now);
  }

  record(now: number): void {
    const first = this.firstInWindow(now);
    this.times.push(now);
    // Times that have left the window decide nothing any more, nor any but the newest `limit`.
    let start = Math.max(first, this.times.length - this.limit);
    if (start >= COMPACT_AFTER && start * 2 >= this.times.length) {
      this.times = this.times.slice(start);
      start = 0;
    }
    this.start = start;
    // The time just added is inside the window ending at `now`: its first is where the kept times start.
    this.seenCutoff = now - this.windowMs;
    this.seenFirst = start;
  }

  /** The admissions inside the window ending at `now`, oldest first (to be saved). */
  timesInWindow(now: number): number[] {
    return this.times.slice(this.firstInWindow(now));
  }

  /**
   * A log holding these admission times (oldest first), as saved by `timesInWindow`: all
   * of them, also more than `limit` (a limit lowered below what the window held), so a
   * limit raised again by the time they are read back counts them all.
   */
  static of(limit: number, windowMs: number, times: readonly number[]): SlidingLog {
    const log = new SlidingLog(limit, windowMs);
    log.times = times.slice();
    return log;
  }

  /** The newest admission, for idle sweeping. */
  newest(): number {
    return this.times.length > this.start ? (this.times[this.times.length - 1] as number) : -Infinity;
  }

  /** How many times are kept (for tests of the memory bound). */
  get size(): number {
    return this.times.length - this.start;
  }

  /**
   * Index of the first time inside the window ending at `now`, from `start` on: the one
   * found last for the same cutoff, else a search that gallops from `start` (the times
   * that left since the last admission are few) and ends as a binary search.
   */
  private firstInWindow(now: number): number {
    const cutoff = now - this.windowMs;
    if (cutoff === this.seenCutoff) return this.seenFirst;
    const times = this.times;
    let lo = this.start;
    let hi = times.length;
    if (lo < hi && (times[lo] as number) <= cutoff) {
      // times[lo] has left: look at lo + 1, + 2, + 4, ... until one has not (or the end).
      let step = 1;
      while (lo + step < hi && (times[lo + step] as number) <= cutoff) {
        lo += step;
        step *= 2;
      }
      hi = Math.min(hi, lo + step);
      lo += 1;
    }
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((times[mid] as number) > cutoff) hi = mid;
      else lo = mid + 1;
    }
    this.seenCutoff = cutoff;
    this.seenFirst = lo;
    return lo;
  }
}
