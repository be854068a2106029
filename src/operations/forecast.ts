/**
 * Cost forecasts: a list of planned calls priced with the profile's cost table, summed
 * per meter and compared with what the account has left — the arithmetic the SE Ranking
 * document asks its users to do by hand.
 */
import { z } from 'zod';
import type { Runtime } from '../runtime.js';
import { OperationError } from './errors.js';
import { accountUsage, round } from './usage.js';
import { requestedRecords } from '../meters/cost.js';
import { CONTROL, isRequestLineMethod, judgeTarget, normalBasePath, NOT_IN_REQUEST_LINE, type Target } from '../gateway/request-path.js';

/** JavaScript's largest exact integer, which is as far as a count can go (a larger one is refused, not rounded). */
const MOST = Number.MAX_SAFE_INTEGER;
const WHOLE = `must be a whole number from 0 to ${MOST}`;
const WHOLE_POSITIVE = `must be a whole number from 1 to ${MOST}`;

/** Methods a refusal without the values typed still names (any other text may be anything pasted there). */
const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** One planned call: the admin API's body and a CLI calls file are checked by this one schema. */
export const PlannedCallSchema = z.strictObject(
  {
    method: z.string('must be a method such as GET').min(1, 'must be a method such as GET'),
    // A pattern, not startsWith: that is written in the OpenAPI document as a format of zod's own, `starts_with`, which validators refuse.
    path: z.string('must be a path starting with /').regex(/^\//, 'must be a path starting with /'),
    /** How many calls. */
    // Left out is said so: "must be a whole number" reads as if the one given were wrong.
    count: z.number({ error: (issue) => (issue.input === undefined ? `must be given, ${WHOLE.replace(/^must be /, '')}` : WHOLE) }).int(WHOLE).nonnegative(WHOLE),
    /** Records per call, for per-record routes (default: what the path's query asks for, as the gateway reserves, or the route's reserveRecords). */
    records: z.number(WHOLE_POSITIVE).int(WHOLE_POSITIVE).positive(WHOLE_POSITIVE).optional(),
  },
  {
    error: (issue) =>
      issue.code === 'unrecognized_keys' ? `has no field ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}: a call is {method, path, count, records}` : 'must be a mapping {method, path, count, records}',
  },
);

export type PlannedCall = z.infer<typeof PlannedCallSchema>;

export interface ForecastLine extends PlannedCall {
  meter: string | null;
  unitsPerCall: number;
  units: number;
}

export interface Forecast {
  lines: ForecastLine[];
  totals: Record<string, number>;
  total: number;
  /** The account's plan, whose meters the balance is of: present when an account was given. */
  planId?: string;
  /** Present when an account was given. */
  balance?: Record<string, MeterBalance>;
  covered?: boolean;
}

/** What the account has left of one meter the calls spend, and whether that pays for them. */
export interface MeterBalance {
  remaining: number;
  covered: boolean;
  overageAllowed: boolean;
  /**
   * Whether the account's plan has the meter. Without it, `remaining` is 0 because there is
   * nothing to spend, not because it was spent: the gateway refuses every call that costs
   * units of it (insufficient_funds, "Your plan does not include …"), whatever is topped up.
   */
  inPlan: boolean;
}

/**
 * Why the gateway never serves `path`, in brackets, or undefined when it may. A space or a
 * character outside ASCII is no refusal of judgeTarget's (Node's parser answers 400 before
 * the gateway judges the target), so it is looked for here, as the library's check does.
 */
function whyRefused(path: string, target: Target): string | undefined {
  if (CONTROL.test(path)) return '(a control character, which no request line carries)';
  if (NOT_IN_REQUEST_LINE.test(path)) return '(a space or a character outside ASCII, which no request line carries: percent-encode it, as a client sends it)';
  // No request target carries a fragment (RFC 9112 §3.2): a client keeps `#…` to itself.
  if (path.includes('#')) return '(a fragment, "#…", which no request target carries: a client sends the path without it)';
  if (!target.ok && target.reason === 'bad_request') return '(a dot segment, a backslash or an escape it would read as another path)';
  return undefined;
}

/**
 * Why the gateway never serves a call with `method`, in brackets, or undefined when it may:
 * Node's parser answers 400 to a request line whose method it does not read, before any
 * route is matched.
 */
function whyMethodRefused(method: string): string | undefined {
  if (isRequestLineMethod(method)) return undefined;
  const upper = method.toUpperCase();
  if (isRequestLineMethod(upper)) return `(methods are case-sensitive, and Node's HTTP parser answers 400 to one not in upper case: write ${upper})`;
  return "(a method Node's HTTP parser does not read: it answers 400 before any route)";
}

export async function forecast(rt: Runtime, calls: readonly unknown[], accountId?: string): Promise<Forecast> {
  // Checked here too, not only by the admin API: the CLI reads calls from a file.
  const checked = z.array(PlannedCallSchema).safeParse(calls);
  if (!checked.success) {
    // A mistyped field (`cnt`) is named before the field it left out (`count`).
    const issue = (checked.error.issues.find((i) => i.code === 'unrecognized_keys') ?? checked.error.issues[0]) as z.core.$ZodIssue;
    throw new OperationError('invalid', `calls${issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')} ${issue.message}`);
  }
  const lines = checked.data.map((call, i): ForecastLine => {
    // Taken as a client sends it: the gateway refuses `get` (Node's parser reads methods
    // case-sensitively), so it is refused here rather than priced as GET.
    const { method } = call;
    const methodWhy = whyMethodRefused(method);
    if (methodWhy !== undefined) {
      throw new OperationError('invalid', `calls[${i}]: the gateway refuses the method ${JSON.stringify(method)} ${methodWhy}`, undefined, { field: 'calls', index: i, message: `the gateway refuses its method ${methodWhy}` });
    }
    // As the gateway judges the target: a path it refuses (`..`, `\\`, escapes of them; a
    // space or a character outside ASCII, which no request line carries) costs nothing
    // because it is never served.
    const target = judgeTarget(call.path, normalBasePath(rt.config.basePath), rt.config.upstream.caseSensitivePaths);
    const why = whyRefused(call.path, target);
    if (why !== undefined) {
      throw new OperationError('invalid', `calls[${i}]: the gateway refuses the path ${JSON.stringify(call.path)} ${why}`, undefined, { field: 'calls', index: i, message: `the gateway refuses its path ${why}` });
    }
    const path = target.ok ? target.path : (call.path.split('?')[0] as string);
    // Outside basePath nothing is routed, whatever a catch-all route would match.
    const match = target.ok ? rt.routes.match(method, path) : undefined;
    if (!match) {
      const methodNamed = HTTP_METHODS.has(method) ? `${method} on its path` : 'its method and path';
      throw new OperationError('invalid', `calls[${i}]: no route for ${method} ${path}`, undefined, { field: 'calls', index: i, message: `no route for ${methodNamed}` });
    }
    const cost = match.kind === 'proxy' ? match.route.cost : undefined;
    if (!cost) return { ...call, method, meter: null, unitsPerCall: 0, units: 0 };
    // As the gateway charges a HEAD: a per-request cost as the GET's, and nothing per record
    // (its answer delivers none), whatever count its query asks for.
    if (method === 'HEAD' && cost.perRequest === undefined) return { ...call, method, meter: cost.meter, unitsPerCall: 0, units: 0 };
    // As the gateway reserves: the query's count (`?limit=10`) when the route reads one.
    const records = cost.perRequest !== undefined ? cost.reserveRecords : (call.records ?? requestedRecords(cost, call.path));
    if (records === undefined) {
      const why = 'is not a whole number (the gateway refuses such a request)';
      throw new OperationError('invalid', `calls[${i}]: ${cost.reserveFromQuery} in "${call.path}" ${why}`, undefined, { field: 'calls', index: i, message: `${cost.reserveFromQuery} in its path ${why}` });
    }
    // Rounded as usage figures are: 3 calls of 0.1 are 0.3, which a balance of 0.3 covers
    // (0.30000000000000004 was said not to).
    const unitsPerCall = round(cost.perRequest ?? (cost.perRecord ?? 0) * records);
    if (!(unitsPerCall * call.count <= Number.MAX_SAFE_INTEGER)) throw new OperationError('invalid', `calls[${i}]: ${call.count} calls of ${unitsPerCall} units each are more than can be counted exactly`);
    return {
      ...call,
      method,
      ...(cost.perRecord !== undefined ? { records } : {}),
      meter: cost.meter,
      unitsPerCall,
      units: round(unitsPerCall * call.count),
    };
  });
  const totals: Record<string, number> = {};
  for (const line of lines) if (line.meter) totals[line.meter] = round((totals[line.meter] ?? 0) + line.units);
  const total = round(Object.values(totals).reduce((a, b) => a + b, 0));
  if (!(total <= Number.MAX_SAFE_INTEGER)) throw new OperationError('invalid', 'the calls add up to more units than can be counted exactly');
  if (accountId === undefined) return { lines, totals, total };

  const usage = await accountUsage(rt, accountId);
  const balance: NonNullable<Forecast['balance']> = {};
  for (const [meter, needed] of Object.entries(totals)) {
    const m = usage.meters[meter];
    const remaining = m?.remaining ?? 0;
    const overage = m?.overageAllowed ?? false;
    balance[meter] = { remaining, covered: needed <= remaining || overage, overageAllowed: overage, inPlan: m !== undefined };
  }
  return { lines, totals, total, planId: usage.planId, balance, covered: Object.values(balance).every((b) => b.covered) };
}
