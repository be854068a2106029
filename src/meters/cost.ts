/**
 * What a route costs: a flat amount per request, or an amount per record where the
 * record count comes from the upstream's response. Before forwarding, keygate reserves
 * the flat amount, or `perRecord × reserveRecords`; after a 2xx it commits the real
 * amount; after anything else it releases the reservation.
 */
import type { Account } from '../pipeline/identity.js';
import type { Cost, Plan } from '../config/schema.js';

/** Most records a request may ask to reserve for (a guard against absurd `limit` values). */
const MAX_RESERVED_RECORDS = 1_000_000;

/**
 * Units to reserve before forwarding; `url` is read only for `reserveFromQuery`. A HEAD
 * is charged a per-request cost like the GET, and nothing per record: its answer has
 * no body, so it delivers no records. Undefined when the request asks for a number of
 * records keygate cannot read (see requestedRecords): it is refused as invalid_parameter.
 */
export function reserveAmount(cost: Cost, method: string, url?: string): number | undefined {
  if (cost.perRequest !== undefined) return cost.perRequest;
  if (method === 'HEAD') return 0;
  const records = requestedRecords(cost, url);
  return records === undefined ? undefined : (cost.perRecord ?? 0) * records;
}

/**
 * The records a request asks for: its `reserveFromQuery` parameter, or `reserveRecords`
 * without one (also when it is empty, or 0, which many upstreams read as their default
 * page). A value that is not a whole number (`1e2`, `0x64`, ` 60`, `-1`) is undefined:
 * the upstream may read it as a number keygate did not reserve for. Given more than
 * once, the largest counts (upstreams differ in which one they read).
 */
export function requestedRecords(cost: Cost, url: string | undefined): number | undefined {
  if (!cost.reserveFromQuery || url === undefined) return cost.reserveRecords;
  const q = url.indexOf('?');
  if (q === -1) return cost.reserveRecords;
  const values = new URLSearchParams(url.slice(q + 1)).getAll(cost.reserveFromQuery).filter((value) => value !== '');
  let largest = 0;
  for (const value of values) {
    if (!/^\d+$/.test(value)) return undefined;
    largest = Math.max(largest, Number(value));
  }
  return largest === 0 ? cost.reserveRecords : Math.min(MAX_RESERVED_RECORDS, largest);
}

/** Units a 2xx answer costs; `records` undefined: it could not be counted (charged the estimate). */
export function actualAmount(cost: Cost, method: string, records: number | undefined): number {
  if (cost.perRequest !== undefined) return cost.perRequest;
  if (method === 'HEAD') return 0;
  return (cost.perRecord ?? 0) * (records ?? cost.reserveRecords);
}

/** Whether the account may go past the meter's limit (the account's switch wins). */
export function overageAllowed(plan: Plan, meter: string, account: Pick<Account, 'overage'>): boolean {
  return account.overage ?? plan.meters[meter]?.overage ?? false;
}

/** The most digits a count or level an upstream reports may have: well inside a double's whole numbers. */
const REPORTED_DIGITS = 15;
const REPORTED_NUMBER = new RegExp(`^\\d{1,${REPORTED_DIGITS}}$`);
/** The highest count or level anyone may report (an upstream's header, an operator's gauge). */
export const MAX_REPORTED = 10 ** REPORTED_DIGITS - 1;

/** Whether `count` is a record count keygate takes: a whole number from 0 to MAX_REPORTED (a header's 15 digits). */
export function isReportedCount(count: number): boolean {
  return Number.isInteger(count) && count >= 0 && count <= MAX_REPORTED;
}

/**
 * Parses a record-count header; undefined when absent or not a non-negative integer. A
 * header sent twice is undefined too: it means what one header listing both values
 * means (`3, 400`, RFC 9110 §5.3), which is no count, and reading either one could
 * charge the smaller.
 */
export function parseRecordHeader(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? (value.length === 1 ? value[0] : undefined) : value;
  if (text === undefined || !REPORTED_NUMBER.test(text.trim())) return undefined;
  return Number(text.trim());
}
