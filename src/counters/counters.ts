/**
 * Counters hold what changes on every request: rate-limit windows, escalating blocks
 * and meter balances with their reservations. One interface; `memory/` for a single
 * process, `redis/` for many processes sharing one Redis.
 *
 * `admit` does everything a request needs before it is forwarded, in one step (one
 * Redis round trip): refuse if blocked; check every window (all or nothing); reserve
 * the route's cost. Only when all pass is anything recorded, so a denied request counts
 * against no window and spends nothing.
 */
import type { BlockPolicy, UnknownKeyPolicy } from '../config/schema.js';
import type { BlockInForce } from '../auth/unknown-key-limit.js';
import type { LimitStateRow, MeterUsageRow } from '../store/store.js';

/** One rolling window: at most `limit` admissions in any `windowMs`. */
export interface WindowSpec {
  /** Counter identity, unique per (subject, window), without the limit: e.g. `k:key_x:w1000:plan` (see `counterIds` in limits/rate-limits.ts). */
  id: string;
  /** Policy name shown in the RateLimit headers. */
  name: string;
  limit: number;
  windowMs: number;
}

/** A counter id as the previous release saved it (`k:key_x:1000:10:plan`), in this one's form (`k:key_x:w1000:plan`); any other id as it is. */
export function upgradedWindowId(id: string): string {
  const old = /^([ka]:[^:]+):(\d+):\d+:/.exec(id);
  return old ? `${old[1]}:w${old[2]}:${id.slice(old[0].length)}` : id;
}

/** The id of a key's block (a plan's `block.scope: key`). */
export function keyBlockId(keyId: string): string {
  return `k:${keyId}`;
}

/** The id of an account's block (`block.scope: account`). */
export function accountBlockId(accountId: string): string {
  return `a:${accountId}`;
}

export interface BlockSpec {
  /** Subject identity, e.g. `k:key_x`. */
  id: string;
  policy: BlockPolicy;
}

export interface ChargeSpec {
  accountId: string;
  meter: string;
  periodStart: string;
  /** Units to reserve now (> 0). */
  amount: number;
  limit: number;
  overage: boolean;
  /**
   * Without overage: admitted while anything is left (`used + reserved < limit`), not only
   * when `amount` fits (the meter's `admit: untilZero`). The request whose amount does not
   * fit is reserved even if `final`, and its settle stops the charge at the limit.
   */
  untilZero?: boolean;
  /**
   * `amount` is exactly what a 2xx will be charged (a per-request cost): it is committed
   * at admission instead of reserved, and given back by the settle if the answer is not
   * a 2xx. Most requests then need no work at settle time. A request that is never
   * settled (its process died mid-flight) stays charged.
   */
  final?: boolean;
}

export interface AdmitRequest {
  now: number;
  windows: readonly WindowSpec[];
  block?: BlockSpec;
  charge?: ChargeSpec;
}

export interface WindowState {
  name: string;
  limit: number;
  windowMs: number;
  /** Admissions left in the window after this request. */
  remaining: number;
  /** Milliseconds until another admission frees up (0 when the window is empty). */
  resetMs: number;
}

export interface Reservation {
  accountId: string;
  meter: string;
  periodStart: string;
  amount: number;
  /** Committed at admission (see ChargeSpec.final): the settle only corrects it. */
  final: boolean;
  /**
   * The most the period's usage may reach through this settle: the plan's limit when
   * overage is off. A per-record charge larger than what is left takes the balance to
   * the limit and no further (no overage is billed to a plan without it).
   */
  cap?: number;
}

/**
 * A block this admission started: its request is the one refused with `blocked`, told to
 * retry after the block's whole length (or, when a window is full for longer, after that
 * window's wait: see `Admission`). Exactly one admission starts each block, so it can be
 * logged and counted once, where it is decided.
 */
export interface BlockStart {
  /** The window whose refusal tipped it over (the one with the longest wait, when several were full). */
  window: WindowSpec;
  /** 1 for a first block, 2 for the next one within `forgetAfter` (`factor` times longer), ... */
  escalation: number;
  /** Its length (ms), logged and counted; the refused request's Retry-After is no shorter. */
  lengthMs: number;
  /** When it ends (ms). */
  endsAt: number;
}

/**
 * A refusal's `retryAfterMs` is when a retry can be admitted (as far as windows and blocks
 * go): for `rate_limited` the longest wait of the windows; for `blocked` the block's time
 * left, or that longest wait if it is longer, so that a client that obeys it is not refused
 * by a full window, a refusal that would count toward its next, longer block.
 */
export type Admission =
  | { ok: true; windows: WindowState[]; reservation?: Reservation }
  | { ok: false; reason: 'blocked'; retryAfterMs: number; windows: WindowState[]; started?: BlockStart }
  | { ok: false; reason: 'rate_limited'; retryAfterMs: number; windows: WindowState[] }
  | { ok: false; reason: 'insufficient_funds'; windows: WindowState[]; used: number; limit: number };

export interface MeterBalance {
  /** Committed usage in the period (may exceed the limit when overage is on). */
  used: number;
  /** Reserved by requests in flight. */
  reserved: number;
}

/**
 * Units a process holds on Redis's behalf while it cannot reach Redis (see
 * redis/fallback.ts), now, summed over every meter:
 * - `inFlight`: charged or reserved by requests admitted without Redis (per-process
 *   counters, `counterFailure: open`), not settled yet;
 * - `undelivered`: committed (or given back) while Redis could not take them, held in
 *   this process until it answers: a clean stop saves them in the store, a crash loses
 *   them. Given-back units count by their size too;
 * - `unreleased`: reserved in Redis by requests whose settle could not reach it, released
 *   once it answers (or lapsing after 10 minutes): meanwhile they hold an account's balance.
 */
export interface HeldUnitTotals {
  inFlight: number;
  undelivered: number;
  unreleased: number;
}

/**
 * What the shared count (Redis) said of one more unknown key from an address: counted
 * (`count` within the window), a block this key started, or a block already in force
 * (another process started it; this key was not counted).
 */
export type SharedUnknownKey = { kind: 'counted'; count: number } | { kind: 'started'; block: BlockInForce } | { kind: 'blocked'; block: BlockInForce };

/**
 * A change to the shared address blocks, heard by every process: a block began, one was
 * lifted, messages may have been missed (the listener reconnected), or Redis answers this
 * process again after it was away (`back`: blocks it began alone meanwhile can be handed over).
 */
export type AddressBlockEvent = { type: 'blocked'; block: BlockInForce } | { type: 'lifted'; address: string } | { type: 'missed' } | { type: 'back' };

/**
 * Unknown keys per client address and the blocks they start (`auth.unknownKeys`), kept
 * where every process shares them (Redis). Each call is one round trip; each fails with
 * CountersUnavailableError when the backend cannot answer.
 */
export interface SharedAddressBlocks {
  /** Counts one more unknown key from `address` (an address group) at `now`. */
  unknownKey(address: string, now: number, policy: UnknownKeyPolicy): Promise<SharedUnknownKey>;
  /** The blocks in force at `now`. */
  inForce(now: number): Promise<BlockInForce[]>;
  /** Ends the block of `address` and its count, and tells every process; answers the block if one was in force. */
  lift(address: string, now: number): Promise<BlockInForce | undefined>;
  /**
   * Hands blocks this process began on its own while the backend was away to it, and
   * tells every process of each it took. A longer block it holds for an address stays;
   * blocks ended at `now` are skipped. Answers the block it holds now for each address
   * given (the one given, or its longer one); none for those ended.
   */
  share(blocks: readonly BlockInForce[], now: number): Promise<BlockInForce[]>;
  /** Hears each block begun or lifted by any process (this one too). */
  onChange(handler: (event: AddressBlockEvent) => void): void;
}

/** Cache invalidations every process must hear about. */
export type CacheEvent = { type: 'key'; hash: string } | { type: 'account'; accountId: string } | { type: 'all' };

export interface Counters {
  readonly kind: 'memory' | 'redis';
  /** Batches sent to the backend and the seconds they took (Redis), for /metrics. */
  readonly roundTrips?: Readonly<{ count: number; seconds: number }>;
  /** Whether the backend answers now (memory: always), for /health and metrics. */
  isReachable(): boolean;
  /**
   * What the backend answered when it last refused the connection (Redis: `WRONGPASS …`),
   * while that is why it is not reachable; undefined otherwise. For /health's reason: a
   * backend that answers "no" is not one that cannot be reached.
   */
  refusal?(): string | undefined;
  /**
   * What the backend answers admissions with while it refuses them though it is reachable
   * (Redis: `OOM command not allowed …`, `READONLY …`, `NOPERM …`); undefined once one is
   * taken. For /health's verdict: reachability (a PING, a PUBLISH) cannot tell.
   */
  admissionRefusal?(): string | undefined;
  /** Units this process holds for the backend while it is away (Redis), for /metrics. */
  heldUnits?(): HeldUnitTotals;
  admit(request: AdmitRequest): Promise<Admission>;
  /** The same as `admit`, answered synchronously, by backends that need no I/O (memory). */
  admitNow?(request: AdmitRequest): Admission;
  /**
   * Commit `actual` units for a reservation (0 releases it); resolves to the units
   * committed, which is less than `actual` only when the reservation's cap stopped it.
   */
  settle(reservation: Reservation, actual: number): Promise<number>;
  /** The same as `settle`, answered synchronously, by backends that need no I/O (memory). */
  settleNow?(reservation: Reservation, actual: number): number;
  meterBalance(accountId: string, meter: string, periodStart: string): Promise<MeterBalance>;
  /**
   * Seed balances from the store (start-up, or after the backend lost its data). Charges
   * and give-backs only grow within a period, so each balance becomes the merge of held
   * and stored (mergeUsage).
   */
  restoreMeters(rows: readonly MeterUsageRow[]): Promise<void>;
  /** Balances changed since the last call, as absolute rows for the store. */
  drainMeterChanges(): Promise<MeterUsageRow[]>;
  /**
   * Balances drained that the store would not take as keygate stops (it is unreachable):
   * left with the backend, which holds them, for another process to write (Redis: listed
   * there, taken by the next process that starts or a running one at its next write-back).
   * Resolves to whether they were; memory counters have no one to leave them to.
   */
  handOverBalances?(rows: readonly MeterUsageRow[]): Promise<boolean>;
  /**
   * Likewise the blocks whose changes the store would not take as keygate stops: the rows
   * drained (`drainLimitChanges`) that it refused, and the blocks changed since the last
   * drain. Redis holds the blocks themselves; it lists them for the next process to read
   * and write (as balances). Resolves to how many blocks and whether they were listed.
   */
  handOverBlocks?(rows: readonly LimitStateRow[]): Promise<{ blocks: number; held: boolean }>;
  /**
   * Blocks (and with `windows`, rate-limit windows) changed since they were last drained,
   * as rows for the store, so that neither a restart (memory) nor a Redis that loses its
   * data lifts a block or starts its escalation over. Memory answers at once; Redis reads
   * the blocks this process changed (windows stay in Redis alone), and puts the store's
   * blocks back if it finds Redis lost its data.
   */
  drainLimitChanges?(windows: boolean): LimitStateRow[] | Promise<LimitStateRow[]>;
  /**
   * Takes back what `drainLimitChanges` saved (start-up); answers how many rows it used.
   * Redis takes blocks only, and only if it lost its data (or never had them).
   */
  restoreLimits?(rows: readonly LimitStateRow[]): number | Promise<number>;
  /**
   * Ends the blocks with these ids (`k:<key id>`, `a:<account id>`) and forgets their
   * violations, so the next one starts the escalation afresh. Resolves to how many were
   * blocked at `now`.
   */
  liftBlocks(ids: readonly string[], now: number): Promise<number>;
  /** Of these block ids, those in force at `now`, with when each ends. */
  blocksInForce(ids: readonly string[], now: number): Promise<Map<string, number>>;
  /** Address blocks for unknown keys shared by every process (Redis); memory counters have none (each process counts its own). */
  readonly addressBlocks?: SharedAddressBlocks;
  broadcast(event: CacheEvent): Promise<void>;
  onBroadcast(handler: (event: CacheEvent) => void): void;
  /**
   * Whether other processes' broadcasts reach this one now (Redis: its subscription is
   * up). Memory counters have none: they hear this process alone.
   */
  hearsOthers(): boolean;
  close(): Promise<void>;
}

/** Thrown when the backend cannot be reached; the pipeline answers 503 (fail closed). */
export class CountersUnavailableError extends Error {
  /** `what`: what happened to the command, before the backend's own words. */
  constructor(cause: unknown, what = 'counters backend unavailable') {
    super(`${what}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'CountersUnavailableError';
  }
}

/**
 * The backend answered the command with an error (Redis: a ReplyError such as NOPERM,
 * READONLY or a script that failed): it is reachable, this command alone failed. Still a
 * CountersUnavailableError where only the command's outcome matters (a 503 to the caller).
 */
export class CountersRefusedError extends CountersUnavailableError {
  constructor(cause: unknown) {
    // Not "unavailable": it answered.
    super(cause, 'counters backend answered with an error');
    this.name = 'CountersRefusedError';
  }
}
