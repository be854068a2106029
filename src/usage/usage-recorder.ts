/**
 * Daily usage counters (requests by status class, denials by reason, units by meter,
 * admitted requests by key), "last used" times and gauge levels the upstream reports,
 * aggregated in memory and written to the store in batches by the runtime's flusher —
 * never on the request path.
 */
import type { GaugeRow, Store, UsageDailyRow, UsageMetric } from '../store/store.js';
import { isoDay } from '../meters/period.js';
import { DAY_MS } from '../config/duration.js';

/** Labels of the daily request counters, by `status / 100` (one string each, not one per request). */
const STATUS_CLASSES = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

/** The label a response's status is counted under: `2xx`, `4xx`, ... */
export function statusClass(status: number): string {
  return STATUS_CLASSES[Math.floor(status / 100)] ?? '5xx';
}

/** Rows by day, account, metric and label: lookups by strings that already exist, none built per request. */
type DailyRows = Map<string, Map<string, Map<UsageMetric, Map<string, UsageDailyRow>>>>;

/**
 * A key's use since the last write: when it was last used and how many requests it had
 * admitted on one UTC day. One entry per key, found by the one lookup "last used" needed
 * anyway, so counting per key costs the request an addition and a comparison; an
 * earlier day's count moves into the daily rows when the day turns.
 */
interface KeyUse {
  accountId: string;
  at: number;
  /** The day counted: [dayStart, dayStart + DAY_MS). */
  dayStart: number;
  dayEnd: number;
  requests: number;
}

export class UsageRecorder {
  private daily: DailyRows = new Map();
  private keyUses = new Map<string, KeyUse>();
  /** "Last used" times a failed write gave back, to be written with the next. */
  private lastUsed = new Map<string, number>();
  private gauges = new Map<string, GaugeRow>();

  /**
   * Writes started so far, and the one under way: a reader of the store and of what is
   * pending (`keyRequests` in operations/usage.ts) reads again when a write started
   * meanwhile, as rows in flight are in neither.
   */
  flushesStarted = 0;
  private flushing: Promise<void> | undefined;

  /**
   * The rows `add` counted last and the one before (both in `lastDaily`): a busy account's
   * next request counts on them again without four lookups each. Two, because a request
   * with a cost counts two rows (its status class and its units), one after the other.
   */
  private lastRow: UsageDailyRow | undefined;
  private rowBefore: UsageDailyRow | undefined;
  private lastDaily: DailyRows | undefined;

  add(accountId: string, now: number, metric: UsageMetric, label: string, value = 1): void {
    const day = isoDay(now);
    if (this.lastDaily === this.daily) {
      const last = this.lastRow;
      if (last && last.label === label && last.metric === metric && last.accountId === accountId && last.day === day) {
        last.value += value;
        return;
      }
      const before = this.rowBefore;
      if (before && before.label === label && before.metric === metric && before.accountId === accountId && before.day === day) {
        before.value += value;
        this.rowBefore = last;
        this.lastRow = before;
        return;
      }
    }
    const rows = inner(inner(inner(this.daily, day), accountId), metric);
    let row = rows.get(label);
    if (row) row.value += value;
    else rows.set(label, (row = { accountId, day, metric, label, value }));
    // Rows kept from another `daily` (before a write took it) are not kept further.
    this.rowBefore = this.lastDaily === this.daily ? this.lastRow : undefined;
    this.lastRow = row;
    this.lastDaily = this.daily;
  }

  /** A request the key's account admitted at `now`: the key's last use, and one more of its requests that day. */
  touch(keyId: string, accountId: string, now: number): void {
    const use = this.keyUses.get(keyId);
    if (use !== undefined && now >= use.dayStart && now < use.dayEnd) {
      use.at = now;
      use.requests += 1;
      return;
    }
    this.touchOtherDay(keyId, accountId, now, use);
  }

  /** A key's first request since the last write, or the first of another day (midnight passed, or a request admitted just before it). */
  private touchOtherDay(keyId: string, accountId: string, now: number, use: KeyUse | undefined): void {
    const dayStart = Math.floor(now / DAY_MS) * DAY_MS;
    if (use === undefined) {
      this.keyUses.set(keyId, { accountId, at: now, dayStart, dayEnd: dayStart + DAY_MS, requests: 1 });
      return;
    }
    this.add(use.accountId, use.dayStart, 'key_requests', keyId, use.requests);
    use.at = now;
    use.dayStart = dayStart;
    use.dayEnd = dayStart + DAY_MS;
    use.requests = 1;
  }

  /** The keys' counts held in `keyUses` moved into the daily rows, and their last use into `lastUsed`. */
  private foldKeyUses(): void {
    // An idle second (most of them, on a quiet gateway) allocates nothing.
    if (this.keyUses.size === 0) return;
    for (const [keyId, use] of this.keyUses) {
      this.add(use.accountId, use.dayStart, 'key_requests', keyId, use.requests);
      const held = this.lastUsed.get(keyId);
      if (held === undefined || held < use.at) this.lastUsed.set(keyId, use.at);
    }
    this.keyUses = new Map();
  }

  /** The latest level of a gauge; a report older than the one held is ignored. */
  gauge(accountId: string, meter: string, value: number, now: number): void {
    const id = `${accountId}\u0000${meter}`;
    const held = this.gauges.get(id);
    if (!held || held.updatedAt <= now) this.gauges.set(id, { accountId, meter, value, updatedAt: now });
  }

  /**
   * What is gathered and not yet written: the daily counts summed by metric (requests,
   * denials, units), and how many keys' last use and gauge levels wait.
   */
  pending(): { requests: number; denials: number; units: number; keysLastUsed: number; gauges: number } {
    const sums = { requests: 0, denials: 0, units: 0 };
    // Requests by key are the same requests again, counted by status class already.
    for (const row of dailyRows(this.daily)) if (row.metric !== 'key_requests') sums[row.metric] += row.value;
    const keys = new Set([...this.lastUsed.keys(), ...this.keyUses.keys()]);
    return { ...sums, keysLastUsed: keys.size, gauges: this.gauges.size };
  }

  /** An account's requests by key (`key_requests` rows) from `fromDay` to `toDay` not yet written to the store. */
  pendingKeyRequests(accountId: string, fromDay: string, toDay: string): UsageDailyRow[] {
    const rows: UsageDailyRow[] = [];
    for (const [day, accounts] of this.daily) {
      if (day < fromDay || day > toDay) continue;
      for (const row of accounts.get(accountId)?.get('key_requests')?.values() ?? []) rows.push({ ...row });
    }
    for (const [keyId, use] of this.keyUses) {
      const day = isoDay(use.dayStart);
      if (use.accountId === accountId && day >= fromDay && day <= toDay) rows.push({ accountId, day, metric: 'key_requests', label: keyId, value: use.requests });
    }
    return rows;
  }

  /** A key's last use not yet written to the store, if any. */
  pendingLastUse(keyId: string): number | undefined {
    const inUse = this.keyUses.get(keyId)?.at;
    const held = this.lastUsed.get(keyId);
    return inUse === undefined ? held : held === undefined ? inUse : Math.max(inUse, held);
  }

  /** Resolves once no write is under way (at once when none is). */
  async idle(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  /** Gauge levels of an account not yet written to the store. */
  pendingGauges(accountId: string): GaugeRow[] {
    return [...this.gauges.values()].filter((row) => row.accountId === accountId);
  }

  /**
   * Writes everything gathered so far. What could not be written is kept for the next
   * try; what was written is never written twice (daily counters are additive). `now`:
   * the time of the write, for gauge levels (Store.setGauge).
   */
  async flush(store: Store, now?: number): Promise<void> {
    this.flushesStarted += 1;
    const written = this.write(store, now);
    const flushing = written.then(
      () => undefined,
      () => undefined,
    );
    this.flushing = flushing;
    try {
      await written;
    } finally {
      if (this.flushing === flushing) this.flushing = undefined;
    }
  }

  private async write(store: Store, now: number | undefined): Promise<void> {
    this.foldKeyUses();
    const daily = this.daily;
    const lastUsed = this.lastUsed;
    const gauges = this.gauges;
    this.daily = new Map();
    this.lastUsed = new Map();
    this.gauges = new Map();
    const rows = dailyRows(daily);
    const keepDaily = () => {
      for (const row of rows) this.add(row.accountId, Date.parse(row.day), row.metric, row.label, row.value);
    };
    const keepLastUsed = () => {
      // A use since (in `keyUses`) is later, and written with it next time.
      for (const [id, at] of lastUsed) if (!this.lastUsed.has(id)) this.lastUsed.set(id, at);
    };
    const keepGauges = () => {
      for (const row of gauges.values()) this.gauge(row.accountId, row.meter, row.value, row.updatedAt);
    };
    try {
      if (rows.length > 0) await store.addUsageDaily(rows);
    } catch (error) {
      keepDaily();
      keepLastUsed();
      keepGauges();
      throw error;
    }
    try {
      if (lastUsed.size > 0) await store.touchKeys(lastUsed);
    } catch (error) {
      keepLastUsed();
      keepGauges();
      throw error;
    }
    try {
      for (const row of gauges.values()) await store.setGauge(row, now);
    } catch (error) {
      keepGauges();
      throw error;
    }
  }
}

/** The map under `key`, made on first use. */
function inner<K, V>(outer: Map<K, Map<string, V>>, key: K): Map<string, V> {
  let map = outer.get(key);
  if (!map) {
    map = new Map();
    outer.set(key, map);
  }
  return map;
}

function dailyRows(daily: DailyRows): UsageDailyRow[] {
  const rows: UsageDailyRow[] = [];
  for (const accounts of daily.values()) for (const metrics of accounts.values()) for (const labels of metrics.values()) rows.push(...labels.values());
  return rows;
}
