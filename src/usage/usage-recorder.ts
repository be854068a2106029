/**
 * Daily usage counters (requests by status class, denials by reason, units by meter)
 * and "last used" times, aggregated in memory and written to the store in batches by
 * the runtime's flusher — never on the request path.
 */
import type { Store, UsageDailyRow, UsageMetric } from '../store/store.js';
import { isoDay } from '../meters/period.js';

export class UsageRecorder {
  private daily = new Map<string, UsageDailyRow>();
  private lastUsed = new Map<string, number>();

  add(accountId: string, now: number, metric: UsageMetric, label: string, value = 1): void {
    const day = isoDay(now);
    const id = `${accountId}\u0000${day}\u0000${metric}\u0000${label}`;
    const row = this.daily.get(id);
    if (row) row.value += value;
    else this.daily.set(id, { accountId, day, metric, label, value });
  }

  touch(keyId: string, now: number): void {
    this.lastUsed.set(keyId, now);
  }

  /** Writes everything gathered so far; on failure the rows are kept for the next try. */
  async flush(store: Store): Promise<void> {
    const daily = this.daily;
    const lastUsed = this.lastUsed;
    this.daily = new Map();
    this.lastUsed = new Map();
    try {
      if (daily.size > 0) await store.addUsageDaily([...daily.values()]);
    } catch (error) {
      for (const row of daily.values()) this.add(row.accountId, Date.parse(row.day), row.metric, row.label, row.value);
      for (const [id, at] of lastUsed) if (!this.lastUsed.has(id)) this.lastUsed.set(id, at);
      throw error;
    }
    try {
      if (lastUsed.size > 0) await store.touchKeys(lastUsed);
    } catch (error) {
      for (const [id, at] of lastUsed) if (!this.lastUsed.has(id)) this.lastUsed.set(id, at);
      throw error;
    }
  }
}
