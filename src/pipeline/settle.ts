/**
 * Step 9, shared by the gateway and the library: a 2xx commits the route's cost
 * (per-record costs from the records the response held), anything else releases the
 * reservation; committed units are added to the account's daily usage.
 */
import type { Cost, Route } from '../config/schema.js';
import type { Reservation } from '../counters/counters.js';
import type { Runtime } from '../runtime.js';
import { actualAmount } from '../meters/cost.js';

type SettleRuntime = Pick<Runtime, 'counters' | 'usage' | 'clock' | 'log'>;

/** Told the units charged for a request, once they are known. */
export type OnCharged = (units: number, meter: string) => void;

/**
 * Settles one request. A per-record charge is known only once the counters have applied
 * the plan's cap (no overage: the balance stops at the limit), so its usage is recorded
 * when they answer, and the promise returned waits for that; every other charge is
 * recorded at once (undefined returned).
 */
export function settleCharge(
  rt: SettleRuntime,
  accountId: string,
  method: string,
  route: Route | undefined,
  reservation: Reservation | undefined,
  status: number,
  records: number | undefined,
  onCharged?: OnCharged,
): Promise<void> | undefined {
  const cost = route?.cost;
  const units = cost && status >= 200 && status < 300 ? chargeFor(cost, method, records, reservation) : 0;
  if (!reservation) {
    recordCharge(rt, accountId, cost?.meter, units, onCharged);
    return undefined;
  }
  // A backend that needs no I/O settles at once, sparing the request two promises.
  if (rt.counters.settleNow) {
    recordCharge(rt, accountId, cost?.meter, rt.counters.settleNow(reservation, units), onCharged);
    return undefined;
  }
  const settling = rt.counters.settle(reservation, units);
  if (reservation.final || reservation.cap === undefined || units === 0) {
    settling.catch((error: unknown) => rt.log.error({ err: error }, 'could not settle a reservation'));
    recordCharge(rt, accountId, cost?.meter, units, onCharged);
    return undefined;
  }
  return settling.then(
    (committed) => recordCharge(rt, accountId, cost?.meter, committed, onCharged),
    (error: unknown) => rt.log.error({ err: error }, 'could not settle a reservation'),
  );
}

/** A 2xx's charge: records counted, or, when they could not be, what the request reserved. */
function chargeFor(cost: Cost, method: string, records: number | undefined, reservation: Reservation | undefined): number {
  if (records === undefined && cost.perRecord !== undefined && method !== 'HEAD' && reservation) return reservation.amount;
  return actualAmount(cost, method, records);
}

function recordCharge(rt: SettleRuntime, accountId: string, meter: string | undefined, units: number, onCharged: OnCharged | undefined): void {
  if (meter === undefined || units <= 0) return;
  rt.usage.add(accountId, rt.clock(), 'units', meter, units);
  onCharged?.(units, meter);
}
