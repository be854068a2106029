/**
 * Counters opened the first time they are asked something, for a CLI command: most
 * commands (`accounts list`, `plans list`, `members …`, `audit`) never ask, and against
 * a Redis that is unreachable or stalled they would otherwise wait for its connection for
 * nothing. What a runtime does with counters as it starts (balances and blocks taken from
 * the store, a broadcast handler) is kept and done once they open.
 */
import type { LimitStateRow, MeterUsageRow } from '../store/store.js';
import type { Admission, AdmitRequest, CacheEvent, Counters, MeterBalance, Reservation } from './counters.js';

export function countersOnDemand(kind: Counters['kind'], open: () => Promise<Counters>): Counters {
  let opened: Promise<Counters> | undefined;
  let counters: Counters | undefined;
  const meterRows: MeterUsageRow[] = [];
  const limitRows: LimitStateRow[] = [];
  const handlers: ((event: CacheEvent) => void)[] = [];
  /** The counters, opened on the first call (one opening for calls that come together), with what was kept for them done. */
  const real = (): Promise<Counters> =>
    (opened ??= (async () => {
      const c = await open();
      for (const handler of handlers) c.onBroadcast(handler);
      if (meterRows.length > 0) await c.restoreMeters(meterRows);
      if (limitRows.length > 0) await c.restoreLimits?.(limitRows);
      counters = c;
      return c;
    })());
  return {
    kind,
    get roundTrips() {
      return counters?.roundTrips;
    },
    // Not opened: nothing was asked of them, so nothing failed.
    isReachable: () => counters?.isReachable() ?? true,
    refusal: () => counters?.refusal?.(),
    admissionRefusal: () => counters?.admissionRefusal?.(),
    admit: async (request: AdmitRequest): Promise<Admission> => (await real()).admit(request),
    settle: async (reservation: Reservation, actual: number) => (await real()).settle(reservation, actual),
    meterBalance: async (accountId: string, meter: string, periodStart: string): Promise<MeterBalance> => (await real()).meterBalance(accountId, meter, periodStart),
    async restoreMeters(rows) {
      if (opened) return (await real()).restoreMeters(rows);
      meterRows.push(...rows);
    },
    // Unopened counters changed nothing.
    drainMeterChanges: async () => (opened ? (await real()).drainMeterChanges() : []),
    handOverBalances: async (rows) => (opened ? ((await (await real()).handOverBalances?.(rows)) ?? false) : false),
    handOverBlocks: async (rows) => (opened ? ((await (await real()).handOverBlocks?.(rows)) ?? { blocks: 0, held: false }) : { blocks: 0, held: false }),
    drainLimitChanges: async (windows: boolean) => (opened ? ((await (await real()).drainLimitChanges?.(windows)) ?? []) : []),
    async restoreLimits(rows) {
      if (opened) return (await (await real()).restoreLimits?.(rows)) ?? 0;
      limitRows.push(...rows);
      return 0;
    },
    liftBlocks: async (ids: readonly string[], now: number) => (await real()).liftBlocks(ids, now),
    blocksInForce: async (ids: readonly string[], now: number) => (await real()).blocksInForce(ids, now),
    broadcast: async (event: CacheEvent) => (await real()).broadcast(event),
    onBroadcast(handler) {
      if (counters) counters.onBroadcast(handler);
      else handlers.push(handler);
    },
    hearsOthers: () => counters?.hearsOthers() ?? false,
    async close() {
      if (!opened) return;
      const c = await opened.catch(() => undefined);
      await c?.close();
    },
  };
}
