/**
 * What a gateway does on its own while Redis is unreachable.
 *
 * - Fail-open profiles admit requests against per-process counters (the memory
 *   backend): each process enforces the limits by itself, so N processes together may
 *   admit up to N times a limit until Redis returns. A meter's balance is read from the
 *   store before its first charge in an outage (RedisCounters.seedFallback); without the
 *   store, from the last value this process saw (start-up and every flush).
 * - Either way, units committed while Redis cannot take them (a settle that failed, or
 *   a request admitted by the fallback) are held here as increments and added to Redis
 *   when it answers again, so an outage loses no usage; a process that stops first saves
 *   them in the store for the next process that reaches Redis (RedisCounters.close).
 */
import type { Admission, AdmitRequest, HeldUnitTotals, MeterBalance, Reservation } from '../counters.js';
import type { MeterUsageRow } from '../../store/store.js';
import { MemoryCounters } from '../memory/memory-counters.js';

/** A meter's identity in one period. */
export interface MeterRef {
  accountId: string;
  meter: string;
  periodStart: string;
}

export function meterRefId(ref: MeterRef): string {
  return `${ref.accountId}\u0000${ref.meter}\u0000${ref.periodStart}`;
}

/** Units committed while Redis could not take them, for one meter. */
export interface HeldUnits {
  ref: MeterRef;
  units: number;
  /** The most the meter's usage may reach through them (a plan without overage). */
  cap?: number;
}

/** A reservation Redis holds that a settle made without Redis could not release (see releaseLater). */
export interface HeldRelease {
  ref: MeterRef;
  /** The admission batch that holds it. */
  batchId: string;
  reserved: number;
}

export class PerProcessFallback {
  private readonly memory: MemoryCounters;
  /** Reservations made here (not in Redis) are settled here. */
  private readonly local = new WeakSet<Reservation>();
  /** Units held for Redis, by meter and cap (units of one settle with a cap stop there, in Redis too). */
  private pending = new Map<string, HeldUnits>();
  /** Reservations to release in Redis once it answers, by meter and batch. */
  private releases = new Map<string, HeldRelease>();
  /** Units of the reservations made here not settled yet, and how many they are (for /metrics). */
  private inFlight = 0;
  private inFlightCount = 0;

  constructor(clock: () => number) {
    this.memory = new MemoryCounters(clock);
  }

  admit(request: AdmitRequest): Admission {
    const admission = this.memory.admitNow(request);
    if (admission.ok && admission.reservation) {
      this.local.add(admission.reservation);
      this.inFlight += admission.reservation.amount;
      this.inFlightCount += 1;
    }
    return admission;
  }

  /** Blocks this process keeps while Redis is away. */
  blocksInForce(ids: readonly string[], now: number): Map<string, number> {
    return this.memory.blocksInForceNow(ids, now);
  }

  /** Blocks this process keeps while Redis is away end too. */
  liftBlocks(ids: readonly string[], now: number): number {
    return this.memory.liftBlocksNow(ids, now);
  }

  owns(reservation: Reservation): boolean {
    return this.local.has(reservation);
  }

  /** Settles a reservation this fallback made; the units go to Redis later. */
  settle(reservation: Reservation, actual: number): number {
    this.local.delete(reservation);
    // Fractional costs leave a rounding error in the sum: none once nothing is in flight.
    this.inFlightCount -= 1;
    this.inFlight = this.inFlightCount === 0 ? 0 : this.inFlight - reservation.amount;
    const units = this.memory.settleNow(reservation, actual);
    this.holdForRedis(reservation, units, reservation.cap);
    return units;
  }

  /**
   * Units Redis could not take now (a reservation there whose settle was never sent is
   * released when they are delivered: releaseLater); negative for a charge made at
   * admission that is given back. With a `cap` (the plan's limit, overage off), Redis
   * takes them up to it and no further when they are delivered.
   */
  commitLater(ref: MeterRef, actual: number, cap?: number): void {
    this.countHere(ref, actual);
    this.deliverLater(ref, actual, cap);
  }

  /** Counts units in this process's balance (what it enforces and shows while Redis is away). */
  countHere(ref: MeterRef, actual: number): void {
    // As a charge of 0 made at admission: the units are added as they are.
    this.memory.settleNow({ ...ref, amount: 0, final: true }, actual);
  }

  /** Holds units, counted here already, for Redis (see commitLater). */
  deliverLater(ref: MeterRef, actual: number, cap?: number): void {
    this.holdForRedis(ref, actual, cap);
  }

  /**
   * A reservation in Redis that a settle could not release, because it was never sent
   * (no connection): released when Redis answers again, instead of holding its units
   * until it lapses (10 minutes), which refuses an account near its limit meanwhile. A
   * process that stops first leaves it to lapse.
   */
  releaseLater(ref: MeterRef, batchId: string, reserved: number): void {
    if (batchId === '' || reserved <= 0) return;
    const id = `${meterRefId(ref)}\u0000${batchId}`;
    const held = this.releases.get(id);
    if (held) held.reserved += reserved;
    else this.releases.set(id, { ref: { accountId: ref.accountId, meter: ref.meter, periodStart: ref.periodStart }, batchId, reserved });
  }

  /** Takes the releases held for Redis. */
  takeReleases(): HeldRelease[] {
    const taken = [...this.releases.values()];
    this.releases = new Map();
    return taken;
  }

  get hasReleases(): boolean {
    return this.releases.size > 0;
  }

  /** Takes the held increments; give back whatever could not be delivered. */
  takePending(): HeldUnits[] {
    const taken = [...this.pending.values()];
    this.pending = new Map();
    return taken;
  }

  giveBack(entries: readonly HeldUnits[]): void {
    for (const { ref, units, cap } of entries) this.holdForRedis(ref, units, cap);
  }

  get hasPending(): boolean {
    return this.pending.size > 0;
  }

  /** What is held now, for /metrics (see HeldUnitTotals); `undelivered` here is the held increments' alone. */
  held(): HeldUnitTotals {
    let undelivered = 0;
    for (const { units } of this.pending.values()) undelivered += Math.abs(units);
    let unreleased = 0;
    for (const { reserved } of this.releases.values()) unreleased += reserved;
    return { inFlight: this.inFlight, undelivered, unreleased };
  }

  /** Latest balances seen (start-up, flushes): the starting point during an outage. */
  async remember(rows: readonly MeterUsageRow[]): Promise<void> {
    await this.memory.restoreMeters(rows);
  }

  meterBalance(ref: MeterRef): Promise<MeterBalance> {
    return this.memory.meterBalance(ref.accountId, ref.meter, ref.periodStart);
  }

  close(): Promise<void> {
    return this.memory.close();
  }

  private holdForRedis(ref: MeterRef, units: number, cap?: number): void {
    if (units === 0) return;
    // Given back (negative) units are never capped.
    const capped = units > 0 ? cap : undefined;
    const id = capped === undefined ? meterRefId(ref) : `${meterRefId(ref)}\u0000${capped}`;
    const held = this.pending.get(id);
    if (held) held.units += units;
    else this.pending.set(id, { ref: { accountId: ref.accountId, meter: ref.meter, periodStart: ref.periodStart }, units, ...(capped === undefined ? {} : { cap: capped }) });
  }
}
