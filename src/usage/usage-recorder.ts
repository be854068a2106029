/**
 * Daily usage counters (requests by status class, denials by reason, units by meter),
 * "last used" times and gauge levels the upstream reports, aggregated in memory and
 * written to the store in batches by the runtime's flusher — never on the request path.
 */
import type { GaugeRow, Store, UsageDailyRow, UsageMetric } from '../store/store.js';
import { isoDay } from '../meters/period.js';

/** Labels of the daily request counters, by `status / 100` (one string each, not one per request). */
const STATUS_CLASSES = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

/** The label a response's status is counted under: `2xx`, `4xx`, ... */
export function statusClass(status: number): string {
  return STATUS_CLASSES[Math.floor(status / 100)] ?? '5xx';
}

/** Rows by day, account, metric and label: lookups by strings that already exist, none built per request. */
type DailyRows = Map<string, Map<string, Map<UsageMetric, Map<string, UsageDailyRow>>>>;

export class UsageRecorder {
  private daily: DailyRows = new Map();
  private lastUsed = new Map<string, number>();
  private gauges = new Map<string, GaugeRow>();

  /** The row `add` counted last (in `lastDaily`): a busy account's next request counts on it again without four lookups. */
  private lastRow: UsageDailyRow | undefined;
  private lastDaily: DailyRows | undefined;

  add(accountId: string, now: number, metric: UsageMetric, label: string, value = 1): void {
    const day = isoDay(now);
    const last = this.lastRow;
    if (last && this.lastDaily === this.daily && last.label === label && last.metric === metric && last.accountId === accountId && last.day === day) {
      last.value += value;
      return;
    }
    const rows = inner(inner(inner(this.daily, day), accountId), metric);
    let row = rows.get(label);
    if (row) row.value += value;
    else rows.set(label, (row = { accountId, day, metric, label, value }));
    this.lastRow = row;
    this.lastDaily = this.daily;
  }

  touch(keyId: string, now: number): void {
    this.lastUsed.set(keyId, now);
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
    for (const row of dailyRows(this.daily)) sums[row.metric] += row.value;
    return { ...sums, keysLastUsed: this.lastUsed.size, gauges: this.gauges.size };
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
