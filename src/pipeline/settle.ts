/**
 * Step 9, shared by the gateway and the library: a 2xx commits the route's cost
 * (per-record costs from the records the response held), anything else releases the
 * reservation; committed units are added to the account's daily usage.
 */
import type { Route } from '../config/schema.js';
import type { Reservation } from '../counters/counters.js';
import type { Runtime } from '../runtime.js';
import { actualAmount } from '../meters/cost.js';

/** Settles one request; returns the units charged (0 for anything but a 2xx). */
export function settleCharge(
  rt: Pick<Runtime, 'counters' | 'usage' | 'clock' | 'log'>,
  accountId: string,
  route: Route | undefined,
  reservation: Reservation | undefined,
  status: number,
  records: number | undefined,
): number {
  const cost = route?.cost;
  const units = cost && status >= 200 && status < 300 ? actualAmount(cost, records) : 0;
  if (reservation) rt.counters.settle(reservation, units).catch((error: unknown) => rt.log.error({ err: error }, 'could not settle a reservation'));
  if (cost && units > 0) rt.usage.add(accountId, rt.clock(), 'units', cost.meter, units);
  return units;
}
