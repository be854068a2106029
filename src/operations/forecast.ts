/**
 * Cost forecasts: a list of planned calls priced with the profile's cost table, summed
 * per meter and compared with what the account has left — the arithmetic the SE Ranking
 * document asks its users to do by hand.
 */
import type { Runtime } from '../runtime.js';
import { OperationError } from './errors.js';
import { accountUsage } from './usage.js';
import { requestedRecords } from '../meters/cost.js';

export interface PlannedCall {
  method: string;
  path: string;
  /** How many calls. */
  count: number;
  /** Records per call, for per-record routes (default: what the path's query asks for, as the gateway reserves, or the route's reserveRecords). */
  records?: number;
}

export interface ForecastLine extends PlannedCall {
  meter: string | null;
  unitsPerCall: number;
  units: number;
}

export interface Forecast {
  lines: ForecastLine[];
  totals: Record<string, number>;
  total: number;
  /** Present when an account was given. */
  balance?: Record<string, { remaining: number; covered: boolean; overageAllowed: boolean }>;
  covered?: boolean;
}

export async function forecast(rt: Runtime, calls: readonly PlannedCall[], accountId?: string): Promise<Forecast> {
  const lines = calls.map((call, i): ForecastLine => {
    // Checked here, not only by the admin API's schema: the CLI reads calls from a file.
    if (call === null || typeof call !== 'object' || Array.isArray(call)) throw new OperationError('invalid', `calls[${i}] must be a mapping {method, path, count, records}`);
    if (typeof call.method !== 'string' || call.method === '') throw new OperationError('invalid', `calls[${i}].method must be a method such as GET`);
    if (typeof call.path !== 'string' || !call.path.startsWith('/')) throw new OperationError('invalid', `calls[${i}].path must be a path starting with /`);
    if (!Number.isInteger(call.count) || call.count < 0) throw new OperationError('invalid', `calls[${i}].count must be a whole number ≥ 0`);
    if (call.records !== undefined && (!Number.isInteger(call.records) || call.records < 1)) throw new OperationError('invalid', `calls[${i}].records must be a whole number ≥ 1`);
    const method = call.method.toUpperCase();
    const path = call.path.split('?')[0] as string;
    const match = rt.routes.match(method, path);
    if (!match) throw new OperationError('invalid', `calls[${i}]: no route for ${method} ${path}`);
    const cost = match.kind === 'proxy' ? match.route.cost : undefined;
    if (!cost) return { ...call, method, meter: null, unitsPerCall: 0, units: 0 };
    // As the gateway reserves: the query's count (`?limit=10`) when the route reads one.
    const records = cost.perRequest !== undefined ? cost.reserveRecords : (call.records ?? requestedRecords(cost, call.path));
    if (records === undefined) throw new OperationError('invalid', `calls[${i}]: ${cost.reserveFromQuery} in "${call.path}" is not a whole number (the gateway refuses such a request)`);
    const unitsPerCall = cost.perRequest ?? (cost.perRecord ?? 0) * records;
    return {
      ...call,
      method,
      ...(cost.perRecord !== undefined ? { records } : {}),
      meter: cost.meter,
      unitsPerCall,
      units: unitsPerCall * call.count,
    };
  });
  const totals: Record<string, number> = {};
  for (const line of lines) if (line.meter) totals[line.meter] = (totals[line.meter] ?? 0) + line.units;
  const total = Object.values(totals).reduce((a, b) => a + b, 0);
  if (accountId === undefined) return { lines, totals, total };

  const usage = await accountUsage(rt, accountId);
  const balance: NonNullable<Forecast['balance']> = {};
  for (const [meter, needed] of Object.entries(totals)) {
    const m = usage.meters[meter];
    const remaining = m?.remaining ?? 0;
    const overage = m?.overageAllowed ?? false;
    balance[meter] = { remaining, covered: needed <= remaining || overage, overageAllowed: overage };
  }
  return { lines, totals, total, balance, covered: Object.values(balance).every((b) => b.covered) };
}
