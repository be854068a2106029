/**
 * The admin API's checks waiting for their settle (`POST /v1/check/{id}/settle`). A
 * backend that never settles (it crashed, it forgot) must not hold an account's units for
 * good: a flat cost, charged as the check admits, would stay charged, and a per-record
 * reservation would hold units until the counters let it lapse. So each pending check is
 * released (settled as a request the client left, 499: a flat cost given back) once it is
 * older than the settle timeout, and the oldest goes the same way when more are pending
 * than the bound. Ids no longer pending are remembered as long, so that a late or second
 * settle is told what became of its check rather than only "no such check".
 *
 * Expiry is judged by the runtime's clock, on every add and take and on a timer for quiet
 * times: a test moves the clock rather than waiting.
 */
import type { CheckAdmitted, SettleOutcome } from '../library.js';
import { RESERVATION_TTL_MS } from '../counters/memory/memory-counters.js';
import { newId } from '../ids.js';
import { oncePer, type Log } from '../log.js';

/** Unsettled checks are released after this long: when the counters would let a per-record reservation lapse anyway. */
export const DEFAULT_SETTLE_TIMEOUT_MS = RESERVATION_TTL_MS;
/** Checks held at most, waiting for a settle: far past what a backend has in flight, a few tens of MB at worst. */
export const DEFAULT_MAX_PENDING = 50_000;
/** The status a check released unsettled is settled with: a client that left, as the gateway logs one. */
export const UNSETTLED_STATUS = 499;
/** How often an eviction (the bound reached) is logged, at most: it can come with every check. */
const EVICTION_LOG_INTERVAL_MS = 10_000;
/** setTimeout's longest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Why a pending check was released without a settle. */
export type ReleaseReason = 'timeout' | 'evicted' | 'shutdown';

/** What became of a check that is no longer pending. */
export type CheckFate = { kind: 'settled'; status: number } | { kind: 'released'; why: ReleaseReason };

export interface PendingChecksOptions {
  /** Released unsettled after this long (ms). */
  timeoutMs: number;
  /** Held at most; past it the oldest is released. */
  max: number;
  clock: () => number;
  log: Log;
  /** Told each release without a settle (a metric). */
  onReleased?: (why: ReleaseReason) => void;
}

export class PendingChecks {
  private readonly pending = new Map<string, { admitted: CheckAdmitted; expiresAt: number }>();
  /** Ids no longer pending → their fate, until `forgetAt` (in the order they ended). */
  private readonly ended = new Map<string, { fate: CheckFate; forgetAt: number }>();
  private timer: NodeJS.Timeout | undefined;
  private readonly logEviction = oncePer(EVICTION_LOG_INTERVAL_MS);
  private closed = false;

  constructor(private readonly options: PendingChecksOptions) {}

  get size(): number {
    return this.pending.size;
  }

  /** Holds an admitted check until it is settled; answers its id. */
  add(admitted: CheckAdmitted): string {
    this.sweep();
    const id = newId('chk');
    if (this.closed) {
      // Admitted while the admin API closes: nothing would settle it.
      this.release(id, admitted, 'shutdown');
      return id;
    }
    this.pending.set(id, { admitted, expiresAt: this.options.clock() + this.options.timeoutMs });
    while (this.pending.size > this.options.max) {
      const [oldest, entry] = this.pending.entries().next().value as [string, { admitted: CheckAdmitted }];
      this.pending.delete(oldest);
      this.release(oldest, entry.admitted, 'evicted');
      this.logEviction((more) =>
        this.options.log.warn({ component: 'admin', pendingChecks: this.options.max, ...more }, `more than ${this.options.max} checks waiting for their settle: the oldest was released unsettled (its reservation given back); settle each check (POST /v1/check/{id}/settle)`),
      );
    }
    this.arm();
    return id;
  }

  /**
   * Settles the pending check `id` as the library's `settle` does; answers what became of it
   * before instead when it is no longer pending, and undefined for an id never given.
   */
  async settle(id: string, status: number, records?: number): Promise<{ settled: true; outcome: SettleOutcome } | { settled: false; fate: CheckFate } | undefined> {
    this.sweep();
    const entry = this.pending.get(id);
    if (entry === undefined) {
      const ended = this.ended.get(id);
      return ended === undefined ? undefined : { settled: false, fate: ended.fate };
    }
    this.pending.delete(id);
    this.remember(id, { kind: 'settled', status });
    // None left to release: no wake-up for nothing.
    if (this.pending.size === 0) this.disarm();
    return { settled: true, outcome: await entry.admitted.settle(status, records) };
  }

  /** Releases every pending check (the admin API closes) and waits for their settles. */
  async close(): Promise<void> {
    this.closed = true;
    this.disarm();
    const releases = [...this.pending].map(([id, { admitted }]) => this.release(id, admitted, 'shutdown'));
    if (releases.length > 0) this.options.log.info({ component: 'admin', released: releases.length }, `${releases.length} check(s) never settled, released as the admin API closes`);
    this.pending.clear();
    await Promise.all(releases);
  }

  /** Releases what is past the timeout, and forgets the fates kept as long. */
  private sweep(): void {
    const now = this.options.clock();
    for (const [id, entry] of this.pending) {
      // Added in order, with one timeout: the first not yet due ends the sweep.
      if (entry.expiresAt > now) break;
      this.pending.delete(id);
      void this.release(id, entry.admitted, 'timeout');
    }
    for (const [id, entry] of this.ended) {
      if (entry.forgetAt > now && this.ended.size <= this.options.max) break;
      this.ended.delete(id);
    }
  }

  private release(id: string, admitted: CheckAdmitted, why: ReleaseReason): Promise<void> {
    this.remember(id, { kind: 'released', why });
    this.options.onReleased?.(why);
    return admitted.settle(UNSETTLED_STATUS).then(
      () => undefined,
      (error: unknown) => this.options.log.error({ err: error, component: 'admin' }, 'could not release an unsettled check'),
    );
  }

  private remember(id: string, fate: CheckFate): void {
    this.ended.set(id, { fate, forgetAt: this.options.clock() + this.options.timeoutMs });
  }

  /**
   * A timer for the oldest pending check, so that a quiet admin API releases it too; armed
   * only when none is. Checks are added in order with one timeout, so a timer armed for
   * an earlier oldest (since settled or evicted) is due no later than the oldest now: it
   * wakes, sweeps, and is armed again for whichever is oldest then.
   */
  private arm(): void {
    if (this.timer !== undefined || this.closed) return;
    const first = this.pending.values().next();
    if (first.done === true) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, first.value.expiresAt - this.options.clock()) + 1);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.sweep();
      this.arm();
    }, delay);
    // A check nobody settles never holds the process.
    this.timer.unref();
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
