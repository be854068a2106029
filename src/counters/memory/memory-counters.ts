/**
 * Counters for one process: sliding logs, blocks and balances in memory. The runtime's
 * flusher writes balances and blocks that changed to the store every second and at stop,
 * windows at stop (`drainMeterChanges`, `drainLimitChanges`), and start-up restores them:
 * a restart neither resets a balance nor lifts a block nor refills a window. A crash
 * loses the last second of balances and blocks, and the windows.
 */
import { z } from 'zod';
import { DAY_MS, MINUTE_MS } from '../../config/duration.js';
import type {
  Admission,
  AdmitRequest,
  CacheEvent,
  Counters,
  MeterBalance,
  Reservation,
  WindowSpec,
  WindowState,
} from '../counters.js';
import { upgradedWindowId } from '../counters.js';
import { mergeUsage, type LimitStateRow, type MeterUsageRow } from '../../store/store.js';
import { SlidingLog } from './sliding-log.js';
import { readSavedBlock, type SavedBlock } from '../saved-block.js';

interface BlockState {
  violations: number[];
  blockedUntil: number;
  /** How many blocks in a row (0 = none yet); the next block lasts duration·factor^level. */
  level: number;
  lastBlockEnd: number;
}

interface MeterState {
  row: MeterUsageRow & { returned: number };
  reserved: number;
  /** Reservations not yet settled → when they lapse (in the order made: oldest first while the clock goes forward). */
  held: Map<Reservation, number>;
  dirty: boolean;
}

const SWEEP_INTERVAL_MS = MINUTE_MS;
/** The answer for a request no window, block or cost applies to (shared, never modified). */
const NOTHING_TO_COUNT: Admission = Object.freeze({ ok: true, windows: Object.freeze([]) as unknown as WindowState[] });
/** Block state of a key that has been quiet this long is forgotten. */
const BLOCK_MEMORY_MS = 7 * DAY_MS;
/**
 * A reservation its request never settled (a library caller that forgot, a request
 * lost) stops holding units after this long, as in Redis.
 */
export const RESERVATION_TTL_MS = 10 * MINUTE_MS;

export class MemoryCounters implements Counters {
  readonly kind = 'memory' as const;
  private readonly logs = new Map<string, SlidingLog>();
  private readonly blocks = new Map<string, BlockState>();
  private readonly meters = new Map<string, MeterState>();
  /** The meter used last (see `meter`). */
  private lastMeter: MeterState | undefined;
  /** Of each window saved, the newest admission it held then: saved again once it has a newer one. */
  private readonly savedWindows = new Map<string, number>();
  /** Blocks changed since they were last saved (started, violated, lifted). */
  private readonly changedBlocks = new Set<string>();
  private readonly handlers: ((event: CacheEvent) => void)[] = [];
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly clock: () => number = Date.now) {
    this.sweeper = setInterval(() => this.sweep(this.clock()), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  async admit(request: AdmitRequest): Promise<Admission> {
    return this.admitNow(request);
  }

  /** In process: always. */
  isReachable(): boolean {
    return true;
  }

  /** Synchronous core of `admit`, used directly by the per-process fallback. */
  admitNow({ now, windows, block, charge }: AdmitRequest): Admission {
    if (windows.length === 0 && !block && !charge) return NOTHING_TO_COUNT;
    // Indexed loops: `for...of` over these short lists ran V8's array iterator per request.
    const logs: SlidingLog[] = [];
    for (let i = 0; i < windows.length; i++) logs.push(this.log(windows[i] as WindowSpec));

    // The longest wait decides Retry-After; its window (the first, if several) is the one
    // named when this refusal starts a block.
    let wait = 0;
    let worst = 0;
    for (let i = 0; i < logs.length; i++) {
      const waitHere = (logs[i] as SlidingLog).waitMs(now);
      if (waitHere > wait) {
        wait = waitHere;
        worst = i;
      }
    }

    // A blocked request's Retry-After is when a retry can be admitted: the block's end, or
    // later if a window is still full then (a retry refused by it would count toward the
    // next, longer block).
    if (block) {
      const state = this.blocks.get(block.id);
      if (state && state.blockedUntil > now) {
        return { ok: false, reason: 'blocked', retryAfterMs: Math.max(state.blockedUntil - now, wait), windows: states(windows, logs, now) };
      }
    }

    if (wait > 0) {
      if (block) {
        const started = this.recordViolation(block.id, block.policy, now);
        if (started) {
          const lengthMs = started.blockedUntil - now;
          return {
            ok: false,
            reason: 'blocked',
            retryAfterMs: Math.max(lengthMs, wait),
            windows: states(windows, logs, now),
            started: { window: windows[worst] as WindowSpec, escalation: started.level, lengthMs, endsAt: started.blockedUntil },
          };
        }
      }
      return { ok: false, reason: 'rate_limited', retryAfterMs: wait, windows: states(windows, logs, now) };
    }

    let reservation: Reservation | undefined;
    if (charge && charge.amount > 0) {
      const meter = this.meter(charge.accountId, charge.meter, charge.periodStart);
      const fits = charge.overage || hasRoom(meter, charge.amount, charge.limit, now);
      if (!fits && !(charge.untilZero === true && hasAnyLeft(meter, charge.limit, now))) {
        return { ok: false, reason: 'insufficient_funds', windows: states(windows, logs, now), used: meter.row.used, limit: charge.limit };
      }
      // The request of an `untilZero` meter that reaches zero is reserved, to be capped at settle.
      const final = charge.final === true && fits;
      if (final) {
        meter.row.used += charge.amount;
        meter.dirty = true;
      }
      reservation = { accountId: charge.accountId, meter: charge.meter, periodStart: charge.periodStart, amount: charge.amount, final };
      if (!final) {
        meter.reserved += charge.amount;
        meter.held.set(reservation, now + RESERVATION_TTL_MS);
        if (!charge.overage) reservation.cap = charge.limit;
      }
    }

    for (let i = 0; i < logs.length; i++) (logs[i] as SlidingLog).record(now);
    const admitted: Admission = { ok: true, windows: states(windows, logs, now) };
    if (reservation) admitted.reservation = reservation;
    return admitted;
  }

  async settle(reservation: Reservation, actual: number): Promise<number> {
    return this.settleNow(reservation, actual);
  }

  /** See Counters.settle; returns the units committed. */
  settleNow(reservation: Reservation, actual: number): number {
    const meter = this.meter(reservation.accountId, reservation.meter, reservation.periodStart);
    if (reservation.final) {
      // Charged at admission: only a different amount (0 for anything but a 2xx) changes it.
      if (actual !== reservation.amount) {
        const before = meter.row.used;
        meter.row.used = Math.max(0, before + actual - reservation.amount);
        if (meter.row.used < before) meter.row.returned += before - meter.row.used;
        meter.dirty = true;
      }
      return actual;
    }
    // A reservation that lapsed holds nothing any more: only its units are committed.
    if (meter.held.delete(reservation)) meter.reserved = Math.max(0, meter.reserved - reservation.amount);
    const units = reservation.cap === undefined ? actual : Math.min(actual, Math.max(0, reservation.cap - meter.row.used));
    if (units > 0) {
      meter.row.used += units;
      meter.dirty = true;
    }
    return units;
  }

  async meterBalance(accountId: string, meter: string, periodStart: string): Promise<MeterBalance> {
    const state = this.meters.get(meterId(accountId, meter, periodStart));
    return { used: state?.row.used ?? 0, reserved: state?.reserved ?? 0 };
  }

  async restoreMeters(rows: readonly MeterUsageRow[]): Promise<void> {
    for (const row of rows) {
      const state = this.meter(row.accountId, row.meter, row.periodStart);
      Object.assign(state.row, mergeUsage(state.row, row));
    }
  }

  async drainMeterChanges(): Promise<MeterUsageRow[]> {
    const changed: MeterUsageRow[] = [];
    for (const state of this.meters.values()) {
      if (!state.dirty) continue;
      state.dirty = false;
      changed.push({ ...state.row });
    }
    return changed;
  }

  /**
   * Blocks, and with `windows` the windows, changed since they were last drained, as rows
   * for the store (a lifted block: a row already expired). A window holds up to `limit`
   * times, so windows are saved at stop, not with the blocks every second.
   */
  drainLimitChanges(windows: boolean): LimitStateRow[] {
    const now = this.clock();
    const rows: LimitStateRow[] = [];
    for (const [id, log] of windows ? this.logs : []) {
      const newest = log.newest();
      if (newest === -Infinity || this.savedWindows.get(id) === newest) continue;
      this.savedWindows.set(id, newest);
      const times = log.timesInWindow(now);
      if (times.length === 0) continue;
      rows.push({ kind: 'window', id, state: JSON.stringify(savedWindow(log, times)), expiresAt: newest + log.windowMs });
    }
    for (const id of this.changedBlocks) {
      const block = this.blocks.get(id);
      rows.push(
        block
          ? { kind: 'block', id, state: JSON.stringify(savedBlock(block)), expiresAt: forgottenAt(block) }
          : { kind: 'block', id, state: '{}', expiresAt: 0 },
      );
    }
    this.changedBlocks.clear();
    return rows;
  }

  /** Takes back the windows and blocks saved by `drainLimitChanges` (at start-up); rows it cannot read are skipped. */
  restoreLimits(rows: readonly LimitStateRow[]): number {
    let restored = 0;
    for (const row of rows) {
      try {
        if (row.kind === 'window') {
          const log = restoredWindow(JSON.parse(row.state) as unknown);
          if (!log) continue;
          // Saved by the previous release under an id with the limit in it: the same window.
          const id = upgradedWindowId(row.id);
          this.logs.set(id, log);
          this.savedWindows.set(id, log.newest());
        } else {
          const saved = readSavedBlock(row.state);
          if (!saved) continue;
          const block = restoredBlock(saved);
          this.blocks.set(row.id, block);
        }
        restored++;
      } catch {
        // Not JSON: written by something else; the window or block starts afresh.
      }
    }
    return restored;
  }

  async broadcast(event: CacheEvent): Promise<void> {
    for (const handler of this.handlers) handler(event);
  }

  onBroadcast(handler: (event: CacheEvent) => void): void {
    this.handlers.push(handler);
  }

  hearsOthers(): boolean {
    return false;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }

  private log(spec: WindowSpec): SlidingLog {
    let log = this.logs.get(spec.id);
    if (!log) {
      log = new SlidingLog(spec.limit, spec.windowMs);
      this.logs.set(spec.id, log);
    } else if (log.limit !== spec.limit) {
      // A new limit on the same window: it judges the admissions the window already holds.
      log.limit = spec.limit;
    }
    return log;
  }

  private meter(accountId: string, meter: string, periodStart: string): MeterState {
    // Admit and settle of one request, and most requests in a row, use the same meter:
    // skip building its id. Valid because meter states are never removed or replaced.
    const last = this.lastMeter;
    if (last && last.row.accountId === accountId && last.row.meter === meter && last.row.periodStart === periodStart) return last;
    const id = meterId(accountId, meter, periodStart);
    let state = this.meters.get(id);
    if (!state) {
      state = { row: { accountId, meter, periodStart, used: 0, returned: 0 }, reserved: 0, held: new Map(), dirty: false };
      this.meters.set(id, state);
    }
    this.lastMeter = state;
    return state;
  }

  liftBlocks(ids: readonly string[], now: number): Promise<number> {
    return Promise.resolve(this.liftBlocksNow(ids, now));
  }

  blocksInForce(ids: readonly string[], now: number): Promise<Map<string, number>> {
    return Promise.resolve(this.blocksInForceNow(ids, now));
  }

  blocksInForceNow(ids: readonly string[], now: number): Map<string, number> {
    const found = new Map<string, number>();
    for (const id of ids) {
      const until = this.blocks.get(id)?.blockedUntil ?? 0;
      if (until > now) found.set(id, until);
    }
    return found;
  }

  liftBlocksNow(ids: readonly string[], now: number): number {
    let lifted = 0;
    for (const id of ids) {
      if ((this.blocks.get(id)?.blockedUntil ?? 0) > now) lifted++;
      if (this.blocks.delete(id)) this.changedBlocks.add(id);
    }
    return lifted;
  }

  /** Records a violation; returns the subject's block state if it started a block, else undefined. */
  private recordViolation(id: string, policy: NonNullable<AdmitRequest['block']>['policy'], now: number): BlockState | undefined {
    let state = this.blocks.get(id);
    if (!state) {
      state = { violations: [], blockedUntil: 0, level: 0, lastBlockEnd: -Infinity };
      this.blocks.set(id, state);
    }
    state.violations = state.violations.filter((t) => t > now - policy.within);
    state.violations.push(now);
    this.changedBlocks.add(id);
    if (state.violations.length < policy.after) return undefined;
    if (now - state.lastBlockEnd > policy.forgetAfter) state.level = 0;
    const length = Math.min(policy.max, Math.round(policy.duration * policy.factor ** state.level));
    state.level += 1;
    state.blockedUntil = now + length;
    state.lastBlockEnd = state.blockedUntil;
    state.violations = [];
    return state;
  }

  private sweep(now: number): void {
    for (const [id, log] of this.logs) {
      if (log.newest() > now - log.windowMs) continue;
      this.logs.delete(id);
      this.savedWindows.delete(id);
    }
    for (const [id, block] of this.blocks) {
      const quiet = block.blockedUntil <= now && block.violations.every((t) => t < now - DAY_MS);
      if (quiet && now - block.lastBlockEnd > BLOCK_MEMORY_MS) this.blocks.delete(id);
    }
    for (const meter of this.meters.values()) releaseLapsed(meter, now);
  }
}

/**
 * Whether the amount fits under the limit, once lapsed reservations are let go (only
 * looked for when it does not fit). A sum of fractional costs may end a hair over the
 * limit (0.2 + 0.1 is 0.30000000000000004): within LEFT_EPSILON of it is within it, as the
 * balance shown says (0.1 left of 0.3 after two calls of 0.1 takes a third).
 */
function hasRoom(meter: MeterState, amount: number, limit: number, now: number): boolean {
  if (meter.row.used + meter.reserved + amount - limit <= LEFT_EPSILON) return true;
  releaseLapsed(meter, now);
  return meter.row.used + meter.reserved + amount - limit <= LEFT_EPSILON;
}

/** Less than this left of a limit is nothing left (as in the Redis scripts). */
const LEFT_EPSILON = 1e-9;

/** Whether anything of the limit is left (`admit: untilZero`), once lapsed reservations are let go. */
function hasAnyLeft(meter: MeterState, limit: number, now: number): boolean {
  // A sum of fractional costs may stop a hair short of the limit: that is nothing left.
  if (limit - (meter.row.used + meter.reserved) > LEFT_EPSILON) return true;
  releaseLapsed(meter, now);
  return limit - (meter.row.used + meter.reserved) > LEFT_EPSILON;
}

/** Lets go of the reservations whose time is up (looked for when a charge does not fit, and by the sweep). */
function releaseLapsed(meter: MeterState, now: number): void {
  for (const [reservation, lapsesAt] of meter.held) {
    if (lapsesAt > now) return;
    meter.held.delete(reservation);
    meter.reserved = Math.max(0, meter.reserved - reservation.amount);
  }
}

/** A window as saved: its admission times as the first and the gaps after it (shorter than the times themselves). */
const SavedWindow = z.object({
  limit: z.number().int().positive(),
  windowMs: z.number().int().positive(),
  first: z.number(),
  gaps: z.array(z.number().nonnegative()),
});

function savedWindow(log: SlidingLog, times: readonly number[]): z.infer<typeof SavedWindow> {
  const gaps: number[] = [];
  for (let i = 1; i < times.length; i++) gaps.push((times[i] as number) - (times[i - 1] as number));
  return { limit: log.limit, windowMs: log.windowMs, first: times[0] as number, gaps };
}

function restoredWindow(saved: unknown): SlidingLog | undefined {
  const parsed = SavedWindow.safeParse(saved);
  if (!parsed.success) return undefined;
  const { limit, windowMs, first, gaps } = parsed.data;
  const times = [first];
  for (const gap of gaps) times.push((times[times.length - 1] as number) + gap);
  return SlidingLog.of(limit, windowMs, times);
}

function savedBlock(block: BlockState): SavedBlock {
  return { violations: block.violations, blockedUntil: block.blockedUntil, level: block.level, lastBlockEnd: Number.isFinite(block.lastBlockEnd) ? block.lastBlockEnd : null };
}

function restoredBlock(saved: SavedBlock): BlockState {
  return { ...saved, lastBlockEnd: saved.lastBlockEnd ?? -Infinity };
}

/** When the sweep would forget a block's state (see `sweep`): its saved row expires then. */
function forgottenAt(block: BlockState): number {
  const lastViolation = block.violations.length > 0 ? Math.max(...block.violations) : -Infinity;
  return Math.max(block.blockedUntil, lastViolation + DAY_MS, block.lastBlockEnd + BLOCK_MEMORY_MS, 0);
}

function meterId(accountId: string, meter: string, periodStart: string): string {
  return `${accountId}\u0000${meter}\u0000${periodStart}`;
}

function states(windows: readonly WindowSpec[], logs: SlidingLog[], now: number): WindowState[] {
  const out: WindowState[] = [];
  for (let i = 0; i < windows.length; i++) {
    const w = windows[i] as WindowSpec;
    const log = logs[i] as SlidingLog;
    out.push({ name: w.name, limit: w.limit, windowMs: w.windowMs, remaining: Math.max(0, w.limit - log.countInWindow(now)), resetMs: log.resetMs(now) });
  }
  return out;
}
